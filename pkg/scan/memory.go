package scan

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"golang.org/x/sync/semaphore"
)

// Memory is the byte budget of what scans hold besides the analyzers'
// own state: the content of files given to analyzers (and the copies
// their parsers declare, analyzer.MemoryUser), windows of large files,
// the buffers of every layer stream (compressed and decompressed read
// buffers, the decompressor, the pipe between the decompressing and the
// walking goroutine, a zstd frame's window) and the buffers of archives
// opened inside files (archive.Limits.Memory). It also bounds the layer
// streams in flight.
//
// One Memory is meant to be shared by every scan of a process
// (WithMemory): ten concurrent scans then cost one budget, not ten, and
// an image twice as large needs no more memory than one half its size.
// A Scanner built without WithMemory has one of its own
// (DefaultMemoryBytes; twice the CPUs as streams, at least 4).
//
// A file larger than the budget is still analyzed (the per-file limit is
// Limits.MaxAnalyzedFileSize): it is charged the whole budget, so nothing
// else is held while it is, and peak memory stays near max(budget,
// largest such file) instead of growing with the image.
type Memory struct {
	max      int64
	streams  *semaphore.Weighted // layer streams in flight, across scans
	nStreams int
	files    *semaphore.Weighted // max − nStreams × streamBytes
	filesMax int64

	inUse     atomic.Int64 // charged now (streams and files), pooled buffers included
	peak      atomic.Int64
	overdrawn atomic.Int64

	mu        sync.Mutex
	pool      [][]byte // released buffers kept for reuse; their bytes stay charged
	poolBytes int64
	waiting   int // acquisitions blocked on files: pooled bytes go back to them
}

const (
	// gzipStateBytes is what a gzip reader holds (flate's 32 KiB window,
	// Huffman tables, its bufio), rounded up.
	gzipStateBytes = 64 << 10
	// minFileBytes is the least the budget leaves for file contents.
	minFileBytes = 4 << 20
)

// defaultStreams is how many layers are streamed at once across the scans
// sharing a Memory when NewMemory is given 0: twice the CPUs, at least 4,
// so that a scan waiting on a slow registry leaves decoders to the others.
func defaultStreams() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// streamBytes is what one layer stream holds, whatever its size: two read
// buffers, the gzip state, the two pipes' chunks and the walker's reusable
// buffer for small files (keepBuf).
const streamBytes = 2*bufSize + gzipStateBytes + pipeChunks*(pipeChunkSize+sourceChunkSize) + keepBuf

// DefaultMemoryBytes is the budget NewMemory(0, streams) gives: twice
// what the streams' fixed buffers take (streams 0: defaultStreams()), at
// least 8 MiB; 9.5 MiB for the 4 streams of a 2-CPU machine. The other
// half holds file contents: files over half of it go to TMPDIR when
// their analyzers read them from there, and windows of large files are
// that size. Measured on the images of scripts/bench/compare.sh,
// alternating: 13.5 MiB (4 streams of 1.7 MiB) scans as fast as 32 MiB
// (medians within −4 % and +3 %, the noise of those runs) with 5–21 MiB
// less peak RSS, and 9.5 MiB (128 KiB pipe chunks) as fast again with
// 3–4 MiB less; fewer streams would save more, but a large image would
// then hold every decoder while small ones wait.
func DefaultMemoryBytes(streams int) int64 {
	if streams <= 0 {
		streams = defaultStreams()
	}
	return max(8<<20, 2*int64(streams)*streamBytes)
}

// NewMemory returns a budget of maxBytes (0: DefaultMemoryBytes(streams))
// for at most streams layer streams at once (0: defaultStreams(), within
// half the budget). Each stream reserves its fixed buffers (about 1.2
// MiB) out of maxBytes; at least 4 MiB are left for file contents, fewer
// streams are allowed otherwise. maxBytes below 8 MiB or a negative
// value is an error.
func NewMemory(maxBytes int64, streams int) (*Memory, error) {
	if maxBytes == 0 {
		maxBytes = DefaultMemoryBytes(streams)
	}
	if maxBytes < 8<<20 || streams < 0 {
		return nil, fmt.Errorf("scan: memory budget of %d bytes for %d streams: want at least 8 MiB and 0 or more streams", maxBytes, streams)
	}
	if streams == 0 {
		// Default streams take at most half the budget: the rest is for
		// files, also on machines with many CPUs.
		streams = max(1, min(defaultStreams(), int(maxBytes/2/streamBytes)))
	}
	streams = int(min(int64(streams), (maxBytes-minFileBytes)/streamBytes))
	m := &Memory{
		max:      maxBytes,
		nStreams: streams,
		streams:  semaphore.NewWeighted(int64(streams)),
		filesMax: maxBytes - int64(streams)*streamBytes,
	}
	m.files = semaphore.NewWeighted(m.filesMax)
	return m, nil
}

// Max is the budget in bytes.
func (m *Memory) Max() int64 { return m.max }

// Streams is how many layers may be streamed at once.
func (m *Memory) Streams() int { return m.nStreams }

// InUse is what is charged now: held buffers, streams in flight and
// buffers kept for reuse.
func (m *Memory) InUse() int64 { return m.inUse.Load() }

// Kept is the part of InUse held by buffers kept for reuse (given back
// to any acquisition that would otherwise wait).
func (m *Memory) Kept() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.poolBytes
}

// Peak is the most ever charged at once. It never exceeds Max.
func (m *Memory) Peak() int64 { return m.peak.Load() }

func (m *Memory) charge(n int64) {
	now := m.inUse.Add(n)
	for {
		p := m.peak.Load()
		if now <= p || m.peak.CompareAndSwap(p, now) {
			return
		}
	}
}

// acquireStream waits for a stream slot; its fixed buffers are charged
// until releaseStream.
func (m *Memory) acquireStream(ctx context.Context) error {
	if err := m.streams.Acquire(ctx, 1); err != nil {
		return err
	}
	m.charge(streamBytes)
	return nil
}

func (m *Memory) releaseStream() {
	m.inUse.Add(-streamBytes)
	m.streams.Release(1)
}

// weight caps a charge at what the file pool holds: a larger request is
// served alone.
func (m *Memory) weight(n int64) int64 { return max(min(n, m.filesMax), 1) }

// Acquire charges n bytes (at most the budget's file share; more is
// charged as all of it), waiting until they are free. Memory implements
// archive.Memory with Acquire and Release.
func (m *Memory) Acquire(ctx context.Context, n int64) error {
	w := m.weight(n)
	if n > w {
		m.overdrawn.Add(n - w)
	}
	if m.files.TryAcquire(w) {
		m.charge(w)
		return nil
	}
	// Buffers kept for reuse must not starve a waiter: give their bytes
	// back first, and keep none while anyone waits.
	m.mu.Lock()
	m.waiting++
	m.dropPoolLocked()
	m.mu.Unlock()
	err := m.files.Acquire(ctx, w)
	m.mu.Lock()
	m.waiting--
	m.mu.Unlock()
	if err != nil {
		return err
	}
	m.charge(w)
	return nil
}

// Reserve charges n bytes if they are free now, without waiting
// (analyzer.Memory, archive.Memory: archive walks inside analyzers); what
// it cannot grant is counted in Overdrawn and not charged.
func (m *Memory) Reserve(n int64) bool {
	if n <= 0 {
		return true
	}
	if m.files.TryAcquire(n) {
		m.charge(n)
		return true
	}
	m.mu.Lock()
	freed := m.poolBytes >= n
	if freed {
		m.dropPoolLocked()
	}
	m.mu.Unlock()
	if freed && m.files.TryAcquire(n) {
		m.charge(n)
		return true
	}
	m.overdrawn.Add(n)
	return false
}

// Unreserve gives back n bytes granted by Reserve.
func (m *Memory) Unreserve(n int64) {
	if n <= 0 {
		return
	}
	m.inUse.Add(-n)
	m.files.Release(n)
}

// Overdrawn is what was held beyond the budget, in total: what Reserve
// could not grant (archive buffers: a walk never waits nor skips
// content) and the part of a file read whole that exceeds the budget's
// file share (such a file is charged all of the share).
func (m *Memory) Overdrawn() int64 { return m.overdrawn.Load() }

// Release gives back n bytes acquired with Acquire(n).
func (m *Memory) Release(n int64) {
	w := m.weight(n)
	m.inUse.Add(-w)
	m.files.Release(w)
}

func (m *Memory) dropPoolLocked() {
	if m.poolBytes == 0 {
		return
	}
	m.inUse.Add(-m.poolBytes)
	m.files.Release(m.poolBytes)
	m.pool, m.poolBytes = nil, 0
}

// lease is a buffer and the bytes charged for it.
type lease struct {
	buf    []byte
	charge int64
}

// lease returns a buffer of length n with charge bytes (≥ n, e.g. a
// parser's copies on top) held for it: a kept buffer when one fits,
// else a new one. Give it back with giveBack.
//
// With wait false it does not wait: what is not free now is held beyond
// the budget (Overdrawn). A layer that holds a charge of its own while
// it asks for more (a zstd window) must not wait: the semaphore serves
// waiters in order, and one waiting for what that layer holds would
// wait forever, and the layer behind it.
func (m *Memory) lease(ctx context.Context, n, charge int64, wait bool) (lease, error) {
	w := m.weight(max(charge, n))
	if over := max(charge, n) - w; over > 0 {
		m.overdrawn.Add(over)
	}
	m.mu.Lock()
	best := -1
	for i, b := range m.pool {
		if int64(cap(b)) >= n && (best < 0 || cap(b) < cap(m.pool[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := m.pool[best]
		m.pool = append(m.pool[:best], m.pool[best+1:]...)
		c := int64(cap(b))
		m.poolBytes -= c
		// The kept buffer's bytes are charged already; charge only the rest.
		if w <= c || m.files.TryAcquire(w-c) {
			if w > c {
				m.charge(w - c)
			}
			m.mu.Unlock()
			return lease{buf: b[:n], charge: max(w, c)}, nil
		}
		// Not enough: let the buffer go and wait like anyone else.
		m.inUse.Add(-c)
		m.files.Release(c)
	}
	m.mu.Unlock()
	switch {
	case wait:
		if err := m.Acquire(ctx, w); err != nil {
			return lease{}, err
		}
	case m.files.TryAcquire(w):
		m.charge(w)
	default:
		m.overdrawn.Add(w)
		w = 0
	}
	return lease{buf: make([]byte, n), charge: w}, nil
}

// giveBack returns a lease: its buffer is kept for reuse (its bytes stay
// charged) while nobody waits and kept buffers stay within poolMax;
// otherwise its bytes are released.
func (m *Memory) giveBack(l lease) {
	c := int64(cap(l.buf))
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.waiting > 0 || c > l.charge || m.poolBytes+c > poolMax(m.filesMax) {
		m.inUse.Add(-l.charge)
		m.files.Release(l.charge)
		return
	}
	if extra := l.charge - c; extra > 0 {
		m.inUse.Add(-extra)
		m.files.Release(extra)
	}
	m.pool = append(m.pool, l.buf)
	m.poolBytes += c
}

// WithMemory makes the Scanner charge its scans to m (see Memory). Share
// one m between the Scanners of a process.
func WithMemory(m *Memory) Option {
	return func(o *options) error {
		if m == nil {
			return errors.New("scan: WithMemory(nil)")
		}
		o.memory = m
		return nil
	}
}

// SetMemoryLimit sets the Go runtime's soft memory limit from m unless
// the GOMEMLIMIT environment variable sets one (the operator's wins): the
// budget, plus twice the heap the process holds now (its engine and
// vulnerability data, measured after a collection) but at least floor —
// room for a database reload holding old and new at once. A limit keeps
// the heap from growing to twice what is live while big files come and
// go; set too low it would only cost collections, never a failure. In a
// memory-limited cgroup (a container) it is also at most the cgroup's
// limit less codeReserve, and at least half of it (see memoryLimit). It
// returns the limit in force and whether it was set here. Call it once
// the process has loaded what it keeps.
func SetMemoryLimit(m *Memory, floor int64) (limit int64, set bool) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), false
	}
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	var live int64
	if s[0].Value.Kind() == metrics.KindUint64 {
		live = int64(s[0].Value.Uint64())
	}
	var cgroup int64
	if l, err := memlimit.FromCgroup(); err == nil && l < math.MaxInt64 {
		cgroup = int64(l) // no cgroup, or no limit: an error
	}
	limit = memoryLimit(m.Max(), live, floor, cgroup)
	debug.SetMemoryLimit(limit)
	return limit, true
}

// codeReserve is what a memory-limited cgroup keeps beyond the Go
// runtime's memory: the pages of the binary the process runs (a Customs
// binary touches about 30 MiB) count against the cgroup's limit, and a
// heap that leaves them no room makes the kernel evict code as fast as it
// runs. Measured on the 450 MB benchmark image in a 96 MiB cgroup: 42 s
// with a 64 MiB GOMEMLIMIT, 14 s with 32–48 MiB, against 6 s
// unlimited (deploy/operations.md).
const codeReserve = 64 << 20

// memoryLimit is SetMemoryLimit's arithmetic: budget + max(2×live,
// floor), within a cgroup limit of cgroup bytes (0: none) at most
// cgroup − codeReserve, and never below cgroup/2 (a small limit is
// better spent collecting than evicting code, but not at any price).
func memoryLimit(budget, live, floor, cgroup int64) int64 {
	limit := budget + max(2*live, floor)
	if cgroup > 0 {
		limit = min(limit, max(cgroup/2, cgroup-codeReserve))
	}
	return limit
}

// poolMax is how much the buffers kept for reuse may hold: a quarter of
// the file share (with GOMEMLIMIT set, the collector reclaims the rest
// soon enough; without it, reuse keeps a run of large files from growing
// the heap one allocation each).
func poolMax(filesMax int64) int64 { return filesMax / 4 }
