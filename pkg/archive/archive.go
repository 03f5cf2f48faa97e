// Package archive walks archives found inside image layers — zip (and
// jar, war, ear), tar, tar.gz/tgz and single-file gzip — to a bounded
// nesting depth, in memory, for analyzers that look inside them. It has
// two walks over the same zip reading, buffers and limits:
//
//   - Walk, for content scanners (the malware analyzer): every format,
//     recognized by magic number, each entry handed to a Visitor, nested
//     archives opened as they come, decompression bombs detected.
//   - WalkZip, for readers of zip-based formats (the java analyzer): the
//     caller chooses which entries of each archive to read, in which
//     order, and which nested archives to open; limits admit or refuse an
//     entry before it is read, and nothing is a bomb.
//
// The rest of this comment is about Walk. Every decompressed byte is counted as it is produced, and the limits
// are enforced right there, so a decompression bomb stops the walk early
// and is reported in Stats.Bomb instead of exhausting memory or time.
// Nothing is extracted to disk and links are never followed.
//
// Memory: entries of a plain tar and stored zip entries are slices of
// their archive; others are decompressed into one reusable buffer per
// nesting level. What a walk holds beyond the top-level archive is thus
// bounded by MaxTotalBytes (and by MaxDepth × MaxEntryBytes).
//
// A walk never fails because of the archive's content: a corrupt or
// unsupported archive (or entry) is skipped and the walk goes on with
// what can be read. Walk returns an error only when the context is done
// or the visitor returns one.
package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// Format is an archive format recognized from its first bytes.
type Format int

// Formats.
const (
	None Format = iota
	Zip
	Tar
	Gzip
)

func (f Format) String() string {
	switch f {
	case Zip:
		return "zip"
	case Tar:
		return "tar"
	case Gzip:
		return "gzip"
	}
	return "none"
}

// SniffLen is how many leading bytes Sniff needs to recognize every
// format (the tar magic is at offset 257).
const SniffLen = 512

// Sniff returns the format of data from its magic bytes (data may be just
// the first SniffLen bytes).
func Sniff(data []byte) Format {
	switch {
	case len(data) >= 4 && data[0] == 'P' && data[1] == 'K' &&
		((data[2] == 3 && data[3] == 4) || (data[2] == 5 && data[3] == 6) || (data[2] == 7 && data[3] == 8)):
		// local file header, empty archive (end of central directory),
		// spanned archive marker
		return Zip
	case len(data) >= 3 && data[0] == 0x1f && data[1] == 0x8b && data[2] == 8:
		return Gzip
	case len(data) >= 262 && string(data[257:262]) == "ustar":
		return Tar
	}
	return None
}

// HasArchiveName reports whether name (a path) ends with an archive
// extension: .zip .jar .war .ear .tar .tgz .tar.gz .gz (any case). It
// does not allocate.
func HasArchiveName(name string) bool {
	for _, ext := range archiveExts {
		if hasSuffixFold(name, ext) {
			return true
		}
	}
	return false
}

var archiveExts = [...]string{".zip", ".jar", ".war", ".ear", ".tar", ".tgz", ".gz"}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// Limits bound one walk (one top-level archive, all nesting levels
// together).
type Limits struct {
	// MaxDepth is how many archive levels are opened: 1 opens only the
	// top-level archive, 2 also archives inside it, and so on.
	MaxDepth int
	// MaxEntryBytes bounds the decompressed size of one entry that is
	// read; larger entries are skipped (or reported as a bomb, see Bomb).
	MaxEntryBytes int64
	// MaxTotalBytes bounds the decompressed bytes produced during the
	// walk, skipped entries of compressed tar streams included.
	MaxTotalBytes int64
	// MaxEntries bounds the entries visited (all levels together).
	MaxEntries int
	// MaxArchives bounds the nested archives opened (all levels
	// together); 0 or negative: no limit.
	MaxArchives int
	// Memory, when set, is charged for the walk's entry buffers as they
	// grow, and given them back when the walk ends.
	Memory Memory
}

// Memory is a byte budget a walk charges its buffers to (the scanner's,
// shared by everything a process scans). Reserve must not block: a walk
// runs inside an analyzer that holds the file it walks, and waiting there
// for memory held by other such walks could wait forever. A budget that
// cannot grant n bytes returns false (and may count them as overdrawn);
// the walk goes on, never skipping content because of it, and gives back
// only what was granted.
type Memory interface {
	Reserve(n int64) bool
	Unreserve(n int64)
}

// DefaultLimits: depth 4, 64 MiB per entry, 256 MiB in total, 100,000
// entries.
func DefaultLimits() Limits {
	return Limits{MaxDepth: 4, MaxEntryBytes: 64 << 20, MaxTotalBytes: 256 << 20, MaxEntries: 100_000}
}

// BombRatio is the decompressed:compressed ratio from which exceeding a
// size limit is a decompression bomb rather than a large archive. Text
// compresses about 3-10:1 and repetitive logs or JSON up to about 50:1;
// deflate cannot exceed about 1032:1, which zip bombs reach (zeros).
const BombRatio = 100

// Entry is one regular file inside an archive.
type Entry struct {
	// Path is the display path: the archive's path, "!/", then the
	// entry's name, repeated for each nesting level
	// ("app.war!/WEB-INF/lib/x.jar!/config.json").
	Path string
	// Name is the cleaned name inside its own archive, without a
	// leading slash ("WEB-INF/lib/x.jar").
	Name string
	// Mode holds the permission bits recorded in the archive (zip
	// archives made on Windows record none: 0666).
	Mode fs.FileMode
	// Size is the size the archive declares.
	Size int64
	// Depth is 1 for entries of the top-level archive, 2 inside an
	// archive inside it, and so on.
	Depth int
}

// Visitor receives the entries of a walk.
type Visitor struct {
	// Want reports whether Visit needs the content of e. Entries that
	// look like archives (by name) are read anyway while the depth limit
	// allows opening them. Want must not retain e. Nil wants nothing.
	Want func(e *Entry) bool
	// Visit is given every entry that was read (wanted ones, and nested
	// archives before they are opened). data is only valid during the
	// call. Returning an error stops the walk with that error.
	Visit func(e *Entry, data []byte) error
}

// Bomb describes a decompression bomb.
type Bomb struct {
	// Path is the display path of the archive, or of the entry, that
	// expands beyond the limits.
	Path string
	// Reason says what was exceeded, in words.
	Reason string
	// SHA256 is the hex SHA-256 of the archive holding Path (the
	// top-level file, or the nested archive's bytes).
	SHA256 string
}

// Stats is what a walk did.
type Stats struct {
	// Entries is the number of entries seen (all types, all levels).
	Entries int
	// Bytes is the number of decompressed bytes produced.
	Bytes int64
	// Bomb is set when a decompression bomb was found; the walk stopped
	// there.
	Bomb *Bomb
	// Truncated says why the walk stopped before the end, or skipped
	// part of the content, because of a limit that is not a bomb (a
	// large archive). Empty when everything within the depth limit was
	// seen.
	Truncated string
}

// errStop ends a walk early (a limit or a bomb); not returned to callers.
var errStop = errors.New("archive: walk stopped")

// Walk walks the archive data whose display path is name. data that is
// not an archive (Sniff returns None) yields empty Stats.
func Walk(ctx context.Context, name string, data []byte, lim Limits, v Visitor) (Stats, error) {
	return walk(ctx, name, inMemory(data), lim, v)
}

// WalkAt is Walk for an archive of size bytes read through r (a file on
// disk): the same entries, visits and limits; what Walk takes as slices
// of data (stored zip entries, members of a plain tar) is read into the
// walk's buffers instead.
func WalkAt(ctx context.Context, name string, r io.ReaderAt, size int64, lim Limits, v Visitor) (Stats, error) {
	return walk(ctx, name, blob{r: r, size: size}, lim, v)
}

func walk(ctx context.Context, name string, b blob, lim Limits, v Visitor) (Stats, error) {
	w := &walker{ctx: ctx, lim: lim.resolve(), v: v}
	if w.lim.MaxDepth < 1 {
		return w.st, nil
	}
	defer w.done()
	err := w.archive(name, b, 1)
	if errors.Is(err, errStop) {
		err = nil
	}
	return w.st, err
}

func (l Limits) resolve() Limits {
	d := DefaultLimits()
	const unlimited = int64(1) << 62
	i64 := func(v, def int64) int64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return unlimited
		}
		return v
	}
	out := Limits{
		MaxDepth:      l.MaxDepth,
		MaxEntryBytes: i64(l.MaxEntryBytes, d.MaxEntryBytes),
		MaxTotalBytes: i64(l.MaxTotalBytes, d.MaxTotalBytes),
		MaxEntries:    l.MaxEntries,
		MaxArchives:   l.MaxArchives,
		Memory:        l.Memory,
	}
	if out.MaxDepth == 0 {
		out.MaxDepth = d.MaxDepth
	}
	switch {
	case out.MaxEntries == 0:
		out.MaxEntries = d.MaxEntries
	case out.MaxEntries < 0:
		out.MaxEntries = int(^uint(0) >> 1)
	}
	if out.MaxArchives <= 0 {
		out.MaxArchives = int(^uint(0) >> 1)
	}
	return out
}

type walker struct {
	ctx context.Context
	lim Limits
	v   Visitor
	st  Stats
	// bufs[d] holds the content of the entry being read at depth d
	// (which may be the archive walked at depth d+1).
	bufs [][]byte
	// archives counts the nested archives opened.
	archives int
	// granted is what lim.Memory granted for bufs.
	granted int64
}

// charge records that bufs grew by n bytes of capacity.
func (w *walker) charge(n int) {
	if m := w.lim.Memory; m != nil && n > 0 && m.Reserve(int64(n)) {
		w.granted += int64(n)
	}
}

// done gives the walk's buffers back to the budget.
func (w *walker) done() {
	if w.lim.Memory != nil && w.granted > 0 {
		w.lim.Memory.Unreserve(w.granted)
		w.granted = 0
	}
}

// archive walks b, whose entries are at depth.
func (w *walker) archive(name string, b blob, depth int) error {
	switch Sniff(b.head()) {
	case Zip:
		return w.zip(name, b, depth)
	case Gzip:
		return w.gzip(name, b, depth)
	case Tar:
		return w.tar(name, b, b.reader(), depth)
	}
	return nil
}

// blob is an archive being walked: in memory (data set; nested archives
// always are) or read through r (the top-level file, on disk).
type blob struct {
	data []byte
	r    io.ReaderAt
	size int64
}

func inMemory(data []byte) blob {
	return blob{data: data, r: bytes.NewReader(data), size: int64(len(data))}
}

// head returns the first SniffLen bytes (fewer in a shorter blob).
func (b blob) head() []byte {
	if b.data != nil {
		return b.data[:min(len(b.data), SniffLen)]
	}
	h := make([]byte, min(b.size, SniffLen))
	n, _ := b.r.ReadAt(h, 0)
	return h[:n]
}

// reader reads b from its start.
func (b blob) reader() io.Reader {
	if b.data != nil {
		return bytes.NewReader(b.data)
	}
	return io.NewSectionReader(b.r, 0, b.size)
}

// sha256 is the hex SHA-256 of b ("" when it cannot be read).
func (b blob) sha256() string {
	h := sha256.New()
	if _, err := io.Copy(h, b.reader()); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// bomb records a bomb found in the archive b (display path where) and
// stops the walk.
func (w *walker) bomb(where string, b blob, format string, args ...any) error {
	w.st.Bomb = &Bomb{Path: where, Reason: fmt.Sprintf(format, args...), SHA256: b.sha256()}
	return errStop
}

func (w *walker) truncate(format string, args ...any) {
	if w.st.Truncated == "" {
		w.st.Truncated = fmt.Sprintf(format, args...)
	}
}

// count adds n bytes produced by a decompressor to the walk's total and
// enforces MaxTotalBytes. produced and compressed are the bytes produced
// so far by the stream being decompressed and its compressed size: their
// ratio tells a bomb from a large archive. where and archive name the
// stream and the archive holding it (for the report).
func (w *walker) count(n int, produced, compressed int64, where string, archive blob) error {
	w.st.Bytes += int64(n)
	if w.st.Bytes <= w.lim.MaxTotalBytes {
		return nil
	}
	if ratio := produced / max(compressed, 1); ratio >= BombRatio {
		return w.bomb(where, archive, "expands to more than %d bytes from %d compressed bytes (at least %d:1), over the %d-byte limit",
			produced, compressed, ratio, w.lim.MaxTotalBytes)
	}
	w.truncate("stopped after %d decompressed bytes (limit %d)", w.st.Bytes, w.lim.MaxTotalBytes)
	return errStop
}

// entry counts one more entry and checks the context.
func (w *walker) entry() error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	w.st.Entries++
	if w.st.Entries > w.lim.MaxEntries {
		w.truncate("stopped after %d entries (limit %d)", w.lim.MaxEntries, w.lim.MaxEntries)
		return errStop
	}
	return nil
}

// wantsContent decides whether an entry is read: the visitor wants it, or
// it is named like an archive that may still be opened.
func (w *walker) wantsContent(e *Entry) bool {
	if e.Depth < w.lim.MaxDepth && HasArchiveName(e.Name) {
		return true
	}
	return w.v.Want != nil && w.v.Want(e)
}

// got hands a read entry to the visitor and opens it when it is an
// archive and the depth allows.
func (w *walker) got(e *Entry, data []byte) error {
	if w.v.Visit != nil {
		if err := w.v.Visit(e, data); err != nil {
			return err
		}
	}
	if Sniff(data) == None {
		return nil
	}
	if e.Depth >= w.lim.MaxDepth {
		w.truncate("archive %s not opened: depth limit %d", e.Path, w.lim.MaxDepth)
		return nil
	}
	if w.archives >= w.lim.MaxArchives {
		w.truncate("archive %s not opened: limit of %d archives", e.Path, w.lim.MaxArchives)
		return nil
	}
	w.archives++
	return w.archive(e.Path, inMemory(data), e.Depth+1)
}

// buffer returns the reusable buffer of depth d with length 0.
func (w *walker) buffer(d int) []byte {
	for len(w.bufs) <= d {
		w.bufs = append(w.bufs, nil)
	}
	return w.bufs[d][:0]
}

// readAll reads r to EOF into depth d's buffer; it stops and returns
// ok=false after more than limit bytes. sizeHint (the declared size,
// 0 when unknown) sizes the buffer. When compressed > 0, r is a
// decompressor of that many bytes whose output is counted here; otherwise
// r's bytes are counted where they are produced (or are plain bytes
// already in memory).
func (w *walker) readAll(d int, r io.Reader, limit, sizeHint, compressed int64, where string, archive blob) (data []byte, ok bool, err error) {
	buf := w.buffer(d)
	defer func() { w.bufs[d] = buf[:0] }()
	grow := func(n int) {
		c := cap(buf)
		buf = slices.Grow(buf, n)
		w.charge(cap(buf) - c)
	}
	if sizeHint > 0 && sizeHint <= limit {
		grow(int(sizeHint) + 1)
	}
	for {
		if int64(len(buf)) > limit {
			return buf, false, nil
		}
		if len(buf) == cap(buf) {
			grow(max(min(cap(buf), 8<<20), 32<<10))
		}
		n, rerr := r.Read(buf[len(buf):min(int64(cap(buf)), limit+1)])
		buf = buf[:len(buf)+n]
		if n > 0 && compressed > 0 {
			if err := w.count(n, int64(len(buf)), compressed, where, archive); err != nil {
				return buf, false, err
			}
		}
		if rerr == io.EOF {
			return buf, int64(len(buf)) <= limit, nil
		}
		if rerr != nil {
			return buf, false, rerr
		}
		if n == 0 {
			if err := w.ctx.Err(); err != nil {
				return buf, false, err
			}
		}
	}
}

func (w *walker) zip(name string, b blob, depth int) error {
	zr, ok := openZip(b.r, b.size)
	if !ok {
		return nil // corrupt or not really a zip: nothing to walk
	}

	// Declared sizes first: a bomb is visible in the central directory
	// before anything is decompressed.
	var sumU, sumC uint64
	for _, f := range zr.File {
		sumU += f.UncompressedSize64
		sumC += f.CompressedSize64
		if f.Mode().IsRegular() && f.UncompressedSize64 > uint64(w.lim.MaxEntryBytes) {
			if ratio := f.UncompressedSize64 / max(f.CompressedSize64, 1); ratio >= BombRatio {
				return w.bomb(name+"!/"+cleanName(f.Name), b,
					"zip entry declares %d bytes compressed into %d (%d:1), over the %d-byte entry limit",
					f.UncompressedSize64, f.CompressedSize64, ratio, w.lim.MaxEntryBytes)
			}
		}
	}
	if sumC > uint64(b.size) && sumU/uint64(max(b.size, 1)) >= BombRatio {
		return w.bomb(name, b,
			"zip entries declare %d compressed bytes in a %d-byte file, expanding to %d bytes: overlapping entries (a non-recursive zip bomb)",
			sumC, b.size, sumU)
	}
	if sumU > uint64(w.lim.MaxTotalBytes) {
		if ratio := sumU / uint64(max(b.size, 1)); ratio >= BombRatio {
			return w.bomb(name, b,
				"zip entries declare %d bytes in total from a %d-byte file (%d:1), over the %d-byte limit",
				sumU, b.size, ratio, w.lim.MaxTotalBytes)
		}
	}

	for _, f := range zr.File {
		if err := w.entry(); err != nil {
			return err
		}
		if !f.Mode().IsRegular() {
			continue
		}
		e := &Entry{
			Path:  name + "!/" + cleanName(f.Name),
			Name:  cleanName(f.Name),
			Mode:  f.Mode(),
			Size:  int64(min(f.UncompressedSize64, 1<<62)),
			Depth: depth,
		}
		if f.UncompressedSize64 > uint64(w.lim.MaxEntryBytes) {
			w.truncate("entry %s skipped: %d bytes (limit %d)", e.Path, f.UncompressedSize64, w.lim.MaxEntryBytes)
			continue
		}
		if !w.wantsContent(e) {
			continue
		}
		if off, ok := stored(f, b.size); ok {
			// Stored (not compressed), e.g. the nested jars of a Spring
			// Boot jar: the content is part of the archive, nothing to
			// decompress or count (nor copy, in memory).
			end := off + int64(f.CompressedSize64)
			var content []byte
			if b.data != nil {
				content = b.data[off:end:end]
			} else {
				var err error
				if content, _, err = w.readAll(depth, io.NewSectionReader(b.r, off, end-off), w.lim.MaxEntryBytes, e.Size, 0, e.Path, b); err != nil {
					if w.ctx.Err() != nil {
						return w.ctx.Err()
					}
					continue // the file could not be read there: as a corrupt entry
				}
			}
			if err := w.got(e, content); err != nil {
				return err
			}
			continue
		}
		rc, err := f.Open()
		if err != nil {
			continue // unsupported method (deflate64, implode…) or corrupt
		}
		buf, ok, err := w.readAll(depth, rc, w.lim.MaxEntryBytes, e.Size, int64(max(f.CompressedSize64, 1)), e.Path, b)
		_ = rc.Close()
		if err != nil {
			if errors.Is(err, errStop) || w.ctx.Err() != nil {
				return err
			}
			continue // corrupt entry (bad CRC, truncated…): skip it
		}
		if !ok {
			continue // cannot happen: the declared size was checked and archive/zip enforces it
		}
		if err := w.got(e, buf); err != nil {
			return err
		}
	}
	return nil
}

// countingReader counts what r produces into the walk's total.
type countingReader struct {
	w       *walker
	r       io.Reader
	where   string
	archive blob
	n       int64
	err     error
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		if cerr := c.w.count(n, c.n, c.archive.size, c.where, c.archive); cerr != nil {
			c.err = cerr
			return 0, cerr
		}
	}
	return n, err
}

func (w *walker) gzip(name string, b blob, depth int) error {
	zr, err := gzip.NewReader(b.reader())
	if err != nil {
		return nil
	}
	defer zr.Close()
	cr := &countingReader{w: w, r: zr, where: name, archive: b}
	br := bufio.NewReaderSize(cr, 64<<10)
	head, _ := br.Peek(SniffLen)
	if errors.Is(cr.err, errStop) {
		return cr.err
	}
	if Sniff(head) == Tar {
		// tar.gz: one level, the tar is streamed, never held whole.
		err := w.tar(name, b, br, depth)
		if cr.err != nil {
			return cr.err
		}
		return err
	}
	// A single compressed file.
	inner := zr.Name
	if inner != "" {
		inner = cleanName(path.Base(strings.ReplaceAll(inner, "\\", "/")))
	}
	if inner == "" || inner == "." || inner == ".." {
		inner = path.Base(name)
		for _, ext := range []string{".gz", ".GZ", ".tgz", ".TGZ"} {
			if s := strings.TrimSuffix(inner, ext); s != inner {
				inner = s
				if ext == ".tgz" || ext == ".TGZ" {
					inner += ".tar"
				}
				break
			}
		}
	}
	if err := w.entry(); err != nil {
		return err
	}
	// ISIZE, the trailer's uncompressed size modulo 2^32, as declared size.
	var size int64
	var isize [4]byte
	if b.size >= 4 {
		if _, err := b.r.ReadAt(isize[:], b.size-4); err == nil {
			size = int64(binary.LittleEndian.Uint32(isize[:]))
		}
	}
	e := &Entry{Path: name + "!/" + inner, Name: inner, Mode: 0o644, Size: size, Depth: depth}
	if !w.wantsContent(e) && Sniff(head) == None {
		return nil
	}
	buf, ok, err := w.readAll(depth, br, w.lim.MaxEntryBytes, 0, 0, e.Path, b)
	if err != nil {
		if errors.Is(err, errStop) || w.ctx.Err() != nil {
			return err
		}
		return nil // corrupt stream
	}
	if !ok {
		n := int64(len(buf))
		if ratio := n / max(b.size, 1); ratio >= BombRatio {
			return w.bomb(e.Path, b, "gzip stream expands to more than %d bytes (entry limit %d) from %d: at least %d:1",
				n, w.lim.MaxEntryBytes, b.size, ratio)
		}
		w.truncate("entry %s skipped: more than %d bytes", e.Path, w.lim.MaxEntryBytes)
		return nil
	}
	e.Size = int64(len(buf))
	return w.got(e, buf)
}

// tar walks a tar stream r whose bytes come from b (the archive itself,
// or the compressed file it is decompressed from).
func (w *walker) tar(name string, b blob, r io.Reader, depth int) error {
	data := b.data
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err != nil {
			if errors.Is(err, errStop) || w.ctx.Err() != nil {
				return err
			}
			return nil // io.EOF, or corrupt: stop this archive
		}
		if err := w.entry(); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeGNUSparse && hdr.Typeflag != 0 && hdr.Typeflag != '7' {
			continue
		}
		e := &Entry{
			Path:  name + "!/" + cleanName(hdr.Name),
			Name:  cleanName(hdr.Name),
			Mode:  hdr.FileInfo().Mode(),
			Size:  hdr.Size,
			Depth: depth,
		}
		if hdr.Size > w.lim.MaxEntryBytes {
			w.truncate("entry %s skipped: %d bytes (limit %d)", e.Path, hdr.Size, w.lim.MaxEntryBytes)
			continue // tr.Next skips it (decompressing, and counting, a compressed stream)
		}
		if !w.wantsContent(e) {
			continue
		}
		if br, ok := r.(*bytes.Reader); ok && !sparse(hdr) && br.Size() == int64(len(data)) {
			// A tar in memory: after the header, the reader is at the
			// content, a slice of data (the next call to Next seeks
			// past it).
			pos := int64(len(data)) - int64(br.Len())
			if hdr.Size <= int64(len(data))-pos {
				if err := w.got(e, data[pos:pos+hdr.Size]); err != nil {
					return err
				}
				continue
			}
		}
		buf, ok, err := w.readAll(depth, tr, w.lim.MaxEntryBytes, hdr.Size, 0, e.Path, b)
		if err != nil {
			if errors.Is(err, errStop) || w.ctx.Err() != nil {
				return err
			}
			return nil // truncated or corrupt
		}
		if !ok {
			continue
		}
		if err := w.got(e, buf); err != nil {
			return err
		}
	}
}

// sparse reports whether hdr is a sparse file, whose content is not
// stored as is.
func sparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// cleanName returns an entry name cleaned, slash-separated and relative:
// never empty, never starting with "/" (".." components are kept: the
// name is only displayed and classified, never extracted).
func cleanName(n string) string {
	n = strings.ReplaceAll(n, "\\", "/")
	n = path.Clean("/" + n)[1:]
	if n == "" {
		return "."
	}
	return n
}
