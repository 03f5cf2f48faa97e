package scan

import (
	"errors"
	"hash"
	"sync"
)

// The decompressor and the tar walk run on separate goroutines: on a
// single layer, wall time would otherwise be the sum of inflating, hashing
// and analyzing instead of roughly the largest of them. The producer reads
// and hashes the compressed stream (digest), inflates and enforces the
// byte limits (contentReader); the consumer hashes the decompressed stream
// (diff_id), walks the tar and runs the analyzers. The buffer between them
// is bounded (pipeChunks × pipeChunkSize, 512 KiB per layer walk) and its
// chunks are recycled; large chunks keep hand-overs rare, each costing a
// goroutine wake-up. A second, smaller pipe feeds the decompressor: its
// producer reads the compressed stream and hashes it (digest), so the
// decompressor does nothing but inflate, and a registry's latency overlaps
// inflating. sequentialWalk keeps the old single-goroutine path for the
// tests that compare the two.
const (
	pipeChunks = 4
	// 128 KiB: as fast as 256 KiB in alternating runs of the three
	// benchmark images, and 3–4 MiB less peak RSS through the budget.
	pipeChunkSize = 128 << 10
	// The compressed side carries a third or less of the bytes.
	sourceChunkSize = 64 << 10
)

var errPipeStopped = errors.New("scan: layer stream stopped")

// sequentialWalk turns the pipeline off (tests compare both paths).
var sequentialWalk = false

type pipeChunk struct {
	buf []byte // a whole chunk, returned to free once consumed
	n   int
	err error
}

// layerPipe carries the decompressed stream from the producer goroutine
// (contentReader) to the tar walk.
// The producer owns the source, decoder and content readers until it has
// exited: whoever reads their state (classify, the digest checks) calls
// stop first.
type layerPipe struct {
	free     chan []byte
	chunks   chan pipeChunk
	done     chan struct{}
	stopOnce sync.Once
	exited   chan struct{}

	// h, when set, hashes the stream (diff_id) on the consumer's side:
	// inflating is the longest stage, so it should do nothing else.
	h hash.Hash

	cur  []byte // unread part of the current chunk
	held []byte // the current chunk, to recycle
	err  error  // sticky: the producer's final error (io.EOF at the end)
}

// startPipe runs read (the content or source reader) on a new goroutine,
// filling chunks of chunkSize bytes, until it returns an error or stop is
// called.
func startPipe(read func([]byte) (int, error), h hash.Hash, chunkSize int) *layerPipe {
	p := &layerPipe{
		h:      h,
		free:   make(chan []byte, pipeChunks),
		chunks: make(chan pipeChunk, pipeChunks),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	for range pipeChunks {
		p.free <- make([]byte, chunkSize)
	}
	go p.produce(read)
	return p
}

func (p *layerPipe) produce(read func([]byte) (int, error)) {
	defer close(p.exited)
	for {
		var b []byte
		select {
		case b = <-p.free:
		case <-p.done:
			return
		}
		// Fill the chunk: a decompressor returns a few KB per Read, and
		// each hand-over costs a goroutine wake-up.
		n, err := 0, error(nil)
		for n < len(b) && err == nil {
			var k int
			k, err = read(b[n:])
			n += k
		}
		select {
		case p.chunks <- pipeChunk{buf: b, n: n, err: err}:
		case <-p.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// Read gives the decompressed stream; the producer's error comes after
// the bytes read with it, as from the content reader itself.
func (p *layerPipe) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.held != nil {
			p.free <- p.held // cannot block: at most pipeChunks buffers exist
			p.held = nil
		}
		if p.err != nil {
			return 0, p.err
		}
		var c pipeChunk
		select {
		case c = <-p.chunks:
		case <-p.exited:
			// Exited after a final chunk still queued, or stopped.
			select {
			case c = <-p.chunks:
			default:
				c.err = errPipeStopped
			}
		}
		p.held, p.cur, p.err = c.buf, c.buf[:c.n], c.err
		if p.h != nil {
			p.h.Write(p.cur)
		}
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// stop ends the producer and waits for it to exit. A producer blocked in
// a read of the source returns when that read does (run's deferred close
// of the source unblocks it on the way out).
func (p *layerPipe) stop() {
	p.signal()
	<-p.exited
}

// signal asks the producer to stop without waiting for it.
func (p *layerPipe) signal() { p.stopOnce.Do(func() { close(p.done) }) }
