package archive

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// OpenZip reads the central directory of the zip archive data with the
// walk's decompressors (deflate, bzip2). Data before the first entry (the
// launcher script of an executable jar) is allowed, and entries with
// insecure names are kept (they are only displayed, never extracted).
// ok is false when data is not a readable zip archive.
func OpenZip(data []byte) (zr *zip.Reader, ok bool) {
	return openZip(bytes.NewReader(data), int64(len(data)))
}

func openZip(r io.ReaderAt, size int64) (zr *zip.Reader, ok bool) {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, false
	}
	zr.RegisterDecompressor(zip.Deflate, newFlateReader)
	zr.RegisterDecompressor(12, func(r io.Reader) io.ReadCloser { return io.NopCloser(bzip2.NewReader(r)) })
	return zr, true
}

// flatePool keeps klauspost's deflate decompressors (the walk's since
// before WalkZip) for reuse, as archive/zip pools the standard library's:
// each holds a 32 KiB window and tables, and archives are read an entry
// at a time.
var flatePool sync.Pool

// byteReaderPool keeps the buffered readers given to the decompressors:
// given a reader without ReadByte (archive/zip's section reader), the
// decompressor would allocate a new bufio.Reader for every entry, which
// on images full of jars was the largest allocation of a scan.
var byteReaderPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

func newFlateReader(r io.Reader) io.ReadCloser {
	br := byteReaderPool.Get().(*bufio.Reader)
	br.Reset(r)
	fr, ok := flatePool.Get().(io.ReadCloser)
	if ok {
		if err := fr.(flate.Resetter).Reset(br, nil); err != nil {
			fr = flate.NewReader(br)
		}
	} else {
		fr = flate.NewReader(br)
	}
	return &pooledFlateReader{fr: fr, br: br}
}

// pooledFlateReader returns its decompressor to flatePool and its
// buffered reader to byteReaderPool on Close.
type pooledFlateReader struct {
	fr io.ReadCloser
	br *bufio.Reader
}

var errClosed = errors.New("archive: read after close")

func (r *pooledFlateReader) Read(p []byte) (int, error) {
	if r.fr == nil {
		return 0, errClosed
	}
	return r.fr.Read(p)
}

func (r *pooledFlateReader) Close() error {
	if r.fr == nil {
		return nil
	}
	err := r.fr.Close()
	flatePool.Put(r.fr)
	r.br.Reset(nil)
	byteReaderPool.Put(r.br)
	r.fr, r.br = nil, nil
	return err
}

// stored returns where the content of a stored (uncompressed,
// unencrypted) zip entry starts in its archive of size bytes: it is
// taken from there as is, without archive/zip's reader (and so without
// checking its CRC-32).
func stored(f *zip.File, size int64) (int64, bool) {
	if f.Method != zip.Store || f.Flags&0x1 != 0 || f.CompressedSize64 != f.UncompressedSize64 {
		return 0, false
	}
	off, err := f.DataOffset()
	if err != nil || off < 0 || off > size || f.CompressedSize64 > uint64(size-off) {
		return 0, false
	}
	return off, true
}

// ErrLimit is returned by ZipArchive.Read and ZipArchive.Open for an entry that a limit
// keeps from being read or opened.
var ErrLimit = errors.New("archive: limit reached")

// ZipArchive is one zip archive of a WalkZip: the top-level file or an archive
// nested in it.
type ZipArchive struct {
	// Path is the display path ("app.war!/WEB-INF/lib/x.jar").
	Path string
	// Depth is 0 for the top-level file, 1 inside it, and so on.
	Depth int
	// Files are the archive's entries, in central directory order, up to
	// what the entry limit leaves (none once it is reached).
	Files []*zip.File

	w  *walker
	fn func(*ZipArchive) error
}

// WalkZip walks the zip archive data, whose display path is name, for a
// reader of a zip-based format (jar, war, ear) that chooses which entries
// to read, in which order, and which nested archives to open: fn is
// called with the archive, and with every nested archive it opens with
// ZipArchive.Open, depth first. data that is not a readable zip archive yields
// no call (and nil).
//
// The limits are admission limits: an entry is read only when its
// declared size fits both the caller's limit and what is left of
// MaxTotalBytes, which counts every byte read (stored entries too), and
// reading stops one byte past the limit (a declared size that lies).
// Nothing is a bomb here: an entry over a limit is not read, and the walk
// goes on. MaxDepth bounds ZipArchive.Depth+1 (1: the top-level archive only),
// MaxEntries the Files of all archives together, MaxArchives the nested
// archives opened. Entries are read through archive/zip, which checks
// their CRC-32. Unlike Walk, nothing is sniffed: the caller decides by
// name what is an archive.
func WalkZip(ctx context.Context, name string, data []byte, lim Limits, fn func(*ZipArchive) error) (Stats, error) {
	return WalkZipAt(ctx, name, bytes.NewReader(data), int64(len(data)), lim, fn)
}

// WalkZipAt is WalkZip for an archive of size bytes read through r (a
// file on disk).
func WalkZipAt(ctx context.Context, name string, r io.ReaderAt, size int64, lim Limits, fn func(*ZipArchive) error) (Stats, error) {
	w := &walker{ctx: ctx, lim: lim.resolve()}
	if w.lim.MaxDepth < 1 {
		return w.st, nil
	}
	defer w.done()
	err := w.zipTree(name, r, size, 0, fn)
	return w.st, err
}

// zipTree lists the archive (size bytes at r) at depth and hands it to fn.
func (w *walker) zipTree(name string, r io.ReaderAt, size int64, depth int, fn func(*ZipArchive) error) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	zr, ok := openZip(r, size)
	if !ok {
		return nil
	}
	z := &ZipArchive{Path: name, Depth: depth, w: w, fn: fn}
	for i := range zr.File {
		if err := w.entry(); err != nil {
			if !errors.Is(err, errStop) {
				return err
			}
			z.Files = zr.File[:i]
			return fn(z)
		}
	}
	z.Files = zr.File
	return fn(z)
}

// Read returns the content of f, an entry of z, when its declared size is
// at most limit and what is left of MaxTotalBytes (ErrLimit otherwise,
// and when it holds more than declared). The content is valid until the
// next Read or Open of an entry of z.
func (z *ZipArchive) Read(f *zip.File, limit int64) ([]byte, error) {
	w := z.w
	limit = min(limit, w.lim.MaxTotalBytes-w.st.Bytes)
	if limit <= 0 || f.UncompressedSize64 > uint64(limit) {
		return nil, ErrLimit
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf, ok, err := w.readAll(z.Depth, rc, limit, int64(f.UncompressedSize64), 0, "", blob{})
	w.st.Bytes += int64(len(buf))
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, ErrLimit
	}
	return buf, nil
}

// Open reads f, an entry of z, within MaxEntryBytes (as Read) and walks
// it as a zip archive, calling the walk's fn with it: ErrLimit without
// reading when MaxDepth or MaxArchives does not allow another archive.
// An entry that was read but is not a zip archive is no error: it is
// just not walked.
func (z *ZipArchive) Open(f *zip.File) error {
	w := z.w
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if z.Depth+1 >= w.lim.MaxDepth || w.archives >= w.lim.MaxArchives {
		return ErrLimit
	}
	w.archives++
	b, err := z.Read(f, w.lim.MaxEntryBytes)
	if err != nil {
		return err
	}
	return w.zipTree(z.Path+"!/"+f.Name, bytes.NewReader(b), int64(len(b)), z.Depth+1, z.fn)
}
