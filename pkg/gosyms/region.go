package gosyms

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

// region is a part of the pclntab: bytes in memory (an executable read
// whole), or a range of a reader read through a small buffer. The
// pclntab is a third of a Go binary (8 MB of a 25 MB one) and Read walks
// its tables mostly in order, so a buffer per table is enough: memory no
// longer grows with the binary.
type region struct {
	data []byte // in memory; nil: read through r

	r      io.ReaderAt
	off    int64  // of the region in r
	size   uint64 // of the region
	buf    []byte // holds [bufOff, bufOff+len(buf)) of the region
	bufOff uint64
}

// regionChunk is how much a region reads at once (a variable for tests,
// which make it small so that every boundary is crossed).
var regionChunk = 64 << 10

// maxName bounds a function name read through a buffer.
const maxName = 1 << 20

var errRange = errors.New("gosyms: pclntab offset out of range")

func memRegion(b []byte) region { return region{data: b, size: uint64(len(b))} }

func readerRegion(r io.ReaderAt, off int64, size uint64) region {
	return region{r: r, off: off, size: size}
}

// sub is the region from off to the end; a buffered one gets its own
// buffer.
func (g *region) sub(off uint64) (region, error) {
	if off > g.size {
		return region{}, errRange
	}
	if g.data != nil {
		return memRegion(g.data[off:]), nil
	}
	return readerRegion(g.r, g.off+int64(off), g.size-off), nil
}

// at returns n bytes at off, valid until the region is read again.
func (g *region) at(off, n uint64) ([]byte, error) {
	if off > g.size || n > g.size-off {
		return nil, errRange
	}
	if g.data != nil {
		return g.data[off : off+n : off+n], nil
	}
	if off >= g.bufOff && off+n <= g.bufOff+uint64(len(g.buf)) {
		b := g.buf[off-g.bufOff:]
		return b[:n:n], nil
	}
	want := min(max(n, uint64(regionChunk)), g.size-off)
	if uint64(cap(g.buf)) < want {
		g.buf = make([]byte, want)
	}
	g.buf = g.buf[:want]
	if _, err := g.r.ReadAt(g.buf, g.off+int64(off)); err != nil {
		g.buf = g.buf[:0]
		return nil, err
	}
	g.bufOff = off
	return g.buf[:n:n], nil
}

// upTo returns at least one and at most n bytes at off (fewer only at
// the end of the region).
func (g *region) upTo(off, n uint64) ([]byte, error) {
	if off >= g.size {
		return nil, errRange
	}
	return g.at(off, min(n, g.size-off))
}

func (g *region) u32(bo binary.ByteOrder, off uint64) (uint32, error) {
	b, err := g.at(off, 4)
	if err != nil {
		return 0, errors.New("gosyms: truncated _func record")
	}
	return bo.Uint32(b), nil
}

// cstring returns the NUL-terminated string at off, without the NUL.
func (g *region) cstring(off uint64) ([]byte, error) {
	if off >= g.size {
		return nil, errors.New("gosyms: function name out of range")
	}
	if g.data != nil {
		b := g.data[off:]
		end := bytes.IndexByte(b, 0)
		if end < 0 {
			return nil, errors.New("gosyms: unterminated function name")
		}
		return b[:end:end], nil
	}
	for n := uint64(256); ; n *= 2 {
		b, err := g.upTo(off, n)
		if err != nil {
			return nil, err
		}
		if end := bytes.IndexByte(b, 0); end >= 0 {
			return b[:end:end], nil
		}
		if uint64(len(b)) < n || n >= maxName {
			return nil, errors.New("gosyms: unterminated function name")
		}
	}
}
