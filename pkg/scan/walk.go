package scan

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

const (
	bufSize = 64 << 10
	// progressEntries and progressBytes pace the progress callback.
	progressEntries = 1024
	progressBytes   = 16 << 20
	// ratioFloor is the layer size below which MaxLayerRatio is not checked.
	ratioFloor = 1 << 20
	// keepBuf is the largest file buffer a layer walker keeps for reuse
	// (charged with the stream: Memory); larger files lease theirs.
	keepBuf = 256 << 10
	// zstdMaxWindow bounds the memory a zstd frame may ask for.
	zstdMaxWindow = 128 << 20
	// zstdBlockBytes is the largest zstd block.
	zstdBlockBytes = 128 << 10
)

// layerOut is what one layer contributes, before whiteouts of upper layers
// and attribution are applied (see merge.go).
type layerOut struct {
	index int
	// files are the analyzed regular files with a non-empty result.
	files map[string]*fileOut
	// entries holds every entry path of the layer as hash<<1|isDir,
	// sorted; used to find what this layer replaces in lower layers (nil
	// for the bottom layer, which has nothing below it).
	entries []uint64
	// whiteouts are paths deleted from lower layers (".wh.<name>");
	// opaques are directories whose lower-layer children are hidden
	// (".wh..wh..opq"), "." for the root.
	whiteouts map[uint64]struct{}
	opaques   map[uint64]struct{}
	// links are the layer's symlinks in stream order, without those a
	// later entry at the same path replaced (links.go resolves them).
	links []link
	// dirs holds, sorted, the hashes of the directories holding the
	// layer's non-directory entries and of all their ancestors ("."
	// included): which symlinked directories the layer wrote through. A
	// layer from the cache has its sorted non-directory paths instead.
	dirs   []uint64
	paths  []string
	cached bool
	// bytes is the layer's decompressed size: a second read must yield
	// exactly as much.
	bytes int64
	// aliased holds, by physical path, what anchored analyzers found in
	// regular files this layer wrote through a symlinked directory (a
	// second read, links.go); nil for most layers.
	aliased map[string]*fileOut
}

// link is a symlink entry: its path and its target, as written.
type link struct{ path, target string }

// below reports whether the layer has a non-directory entry below dir
// ("." for the root).
func (l *layerOut) below(seed maphash.Seed, dir string) bool {
	if !l.cached || l.dirs != nil {
		_, ok := slices.BinarySearch(l.dirs, maphash.String(seed, dir))
		return ok
	}
	if dir == "." {
		return len(l.paths) > 0
	}
	prefix := dir + "/"
	i, _ := slices.BinarySearch(l.paths, prefix)
	return i < len(l.paths) && strings.HasPrefix(l.paths[i], prefix)
}

type fileOut struct {
	results []fileResult
}

type fileResult struct {
	analyzer int // index in options.analyzers
	res      *analyzer.Result
}

func (f *fileOut) result(analyzer int) *analyzer.Result {
	if f == nil {
		return nil
	}
	for _, r := range f.results {
		if r.analyzer == analyzer {
			return r.res
		}
	}
	return nil
}

// layerWalk is the state of streaming one layer.
type layerWalk struct {
	s       *imageScan
	m       *layerMeta
	ctx     context.Context
	out     *layerOut
	src     *sourceReader
	dec     *decodeReader
	content *contentReader
	// pipe, when set, runs content on its own goroutine, and srcPipe
	// reads and hashes the compressed stream on another (pipe.go).
	pipe    *layerPipe
	srcPipe *layerPipe

	head    [analyzer.SniffLen]byte
	buf     []byte
	matched []int
	jobs    []fileJob

	// linkIdx indexes out.links by path while walking; dirSet collects
	// out.dirs, lastDir is the directory of the previous entry.
	linkIdx map[string]int
	dirSet  map[uint64]struct{}
	lastDir string
	// holding is set while the layer holds a charge of its own (a zstd
	// frame's window): its files then never wait for the budget (see
	// Memory.lease).
	holding bool
	// reread is set for a second read of a layer (links.go): the bytes
	// are not charged to the image's limits again, and must be exactly
	// out.bytes.
	reread bool

	// nEntries counts the layer's tar entries (as MaxFiles does); rec,
	// when the layer is to be cached, collects its paths.
	nEntries int64
	rec      *layerRecord
}

func (s *imageScan) walkLayer(ctx context.Context, m *layerMeta) (*layerOut, error) {
	s.progress()
	defer s.progress()
	lw := &layerWalk{
		s:   s,
		m:   m,
		ctx: ctx,
		out: &layerOut{index: m.index, files: map[string]*fileOut{}},

		dirSet: map[uint64]struct{}{},
	}
	if m.index > 0 {
		lw.out.whiteouts = map[uint64]struct{}{}
		lw.out.opaques = map[uint64]struct{}{}
	}
	// These checks come first so that a cached layer is refused exactly
	// as a streamed one would be.
	digestHash, diffHash, err := lw.check()
	if err != nil {
		return nil, err
	}
	var prev *cachedLayer
	if s.cacheFP != "" {
		var out *layerOut
		if out, prev, err = s.cacheGet(ctx, lw); err != nil || out != nil {
			return out, err
		}
		lw.rec = &layerRecord{}
	}
	if err := lw.run(digestHash, diffHash, lw.walkTar); err != nil {
		return nil, err
	}
	slices.Sort(lw.out.entries)
	lw.finishLinks()
	lw.out.bytes = lw.content.n
	if lw.rec != nil {
		s.cachePut(ctx, lw, prev)
	}
	return lw.out, nil
}

// check refuses what cannot be scanned and returns the hashes verifying
// the digest and the diff_id.
func (lw *layerWalk) check() (digestHash, diffHash hash.Hash, err error) {
	m := lw.m
	mt, err := m.layer.MediaType()
	if err != nil {
		return nil, nil, lw.fetchErr("media type", err)
	}
	if !supportedMediaType(mt) {
		return nil, nil, lw.reject(nil, "unsupported layer media type %q", mt)
	}
	digestHash, ok := newHasher(m.digest)
	if !ok {
		return nil, nil, lw.reject(nil, "unsupported digest algorithm %q", m.digest.Algorithm)
	}
	diffHash, ok = newHasher(m.diffID)
	if !ok {
		return nil, nil, lw.reject(nil, "unsupported diff_id algorithm %q", m.diffID.Algorithm)
	}
	return digestHash, diffHash, nil
}

// run streams the layer, giving its tar stream to walk, then drains and
// verifies both streams.
func (lw *layerWalk) run(digestHash, diffHash hash.Hash, walk func(*tar.Reader) error) error {
	m := lw.m
	// A stream slot bounds the layers decoded at once across every scan
	// sharing the Memory, and charges the stream's fixed buffers.
	if err := lw.s.mem.acquireStream(lw.ctx); err != nil {
		return err
	}
	defer lw.s.mem.releaseStream()
	rc, err := m.layer.Compressed()
	if err != nil {
		if lw.ctx.Err() != nil {
			return lw.ctx.Err()
		}
		if isVerifyError(err) {
			return lw.reject(err, "compressed content does not match the layer digest")
		}
		return lw.fetchErr("fetch", err)
	}
	// Closing the stream unblocks a read stuck on the network when the
	// scan is cancelled (or another layer failed).
	closeRC := sync.OnceValue(rc.Close)
	defer closeRC()
	stop := context.AfterFunc(lw.ctx, func() { _ = closeRC() })
	defer stop()

	lw.src = &sourceReader{r: rc, h: digestHash}
	if !sequentialWalk {
		// Read and hashed on its own goroutine, ahead of the decompressor
		// (pipe.go); sourceReader only counts and keeps the error.
		lw.srcPipe = startPipe(func(b []byte) (int, error) {
			n, err := rc.Read(b)
			digestHash.Write(b[:n])
			return n, err
		}, nil, sourceChunkSize)
		lw.src = &sourceReader{r: lw.srcPipe}
		// Deferred before the content pipe's teardown, so run after it:
		// that pipe's producer may be reading from this one.
		defer func() {
			lw.srcPipe.signal()
			_ = closeRC()
			lw.srcPipe.stop()
		}()
	}
	br := bufio.NewReaderSize(lw.src, bufSize)
	head, _ := br.Peek(6) // short: empty or tiny layer, or a source error (recorded in src.err)
	if lw.src.err != nil {
		return lw.classify(lw.src.err, "read layer")
	}

	var (
		dec      io.Reader
		closeDec = func() {}
		kind     string
	)
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		kind = "gzip"
		zr, err := gzip.NewReader(br)
		if err != nil {
			return lw.classify(err, "corrupt gzip header")
		}
		dec, closeDec = zr, func() { _ = zr.Close() }
	case len(head) >= 4 && isZstd(head):
		kind = "zstd"
		// The decoder allocates the frame's window: charge it first.
		win := zstdWindow(br) + 2*zstdBlockBytes // and its block buffers
		if err := lw.s.mem.Acquire(lw.ctx, win); err != nil {
			return err
		}
		lw.holding = true
		defer func() {
			lw.holding = false
			lw.s.mem.Release(win)
		}()
		zr, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecoderLowmem(true))
		if err != nil {
			return lw.classify(err, "corrupt zstd data")
		}
		dec, closeDec = zr, zr.Close
	case len(head) >= 6 && bytes.Equal(head[:6], []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return lw.reject(nil, "xz-compressed layers are not supported")
	case len(head) >= 3 && bytes.Equal(head[:3], []byte("BZh")):
		return lw.reject(nil, "bzip2-compressed layers are not supported")
	default:
		kind = "tar"
		dec = br
	}
	defer closeDec()
	// An uncompressed layer whose digest is its diff_id (classic docker
	// save, some registries): both hashes would cover the same bytes, so
	// the digest check alone verifies both.
	if kind == "tar" && m.digest == m.diffID {
		diffHash = nil
	}
	lw.dec = &decodeReader{r: dec, kind: kind}
	lw.content = &contentReader{lw: lw, r: lw.dec, h: diffHash}
	var stream io.Reader = lw.content
	if !sequentialWalk {
		// The consumer hashes (pipe.go); the content reader only counts.
		lw.content.h = nil
		lw.pipe = startPipe(lw.content.Read, diffHash, pipeChunkSize)
		stream = lw.pipe
		// Before closeDec: the producer may be inside the decoder. The
		// source is closed first so that a producer stuck in a read
		// returns (the error path; at the end it has exited already).
		defer func() {
			lw.pipe.signal()
			_ = closeRC()
			lw.pipe.stop()
		}()
	}
	tb := bufio.NewReaderSize(stream, bufSize)

	if err := walk(tar.NewReader(tb)); err != nil {
		return err
	}

	// Drain both streams to EOF: the diff_id covers every decompressed
	// byte (padding after the end marker included), and registries'
	// readers verify the compressed digest only at EOF.
	if _, err := io.Copy(io.Discard, tb); err != nil {
		return lw.classify(err, "invalid data after the tar end marker")
	}
	if lw.pipe != nil {
		lw.pipe.stop() // at EOF: has exited or is about to
	}
	closeDec()
	if _, err := io.Copy(io.Discard, br); err != nil {
		return lw.classify(err, "invalid data after the compressed stream")
	}
	if lw.srcPipe != nil {
		lw.srcPipe.stop() // at EOF: has hashed everything and exited
	}
	if got := hex.EncodeToString(digestHash.Sum(nil)); got != m.digest.Hex {
		return lw.reject(nil, "compressed content has digest %s:%s, not the layer digest", m.digest.Algorithm, got)
	}
	if diffHash == nil {
		return nil // the digest was the diff_id
	}
	if got := hex.EncodeToString(diffHash.Sum(nil)); got != m.diffID.Hex {
		return lw.reject(nil, "uncompressed content has digest %s:%s, but the config's diff_id is %s", m.diffID.Algorithm, got, m.diffID)
	}
	return nil
}

func (lw *layerWalk) walkTar(tr *tar.Reader) error {
	s, lim := lw.s, &lw.s.lim
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return lw.classify(err, "invalid tar archive")
		}
		if total := s.entries.Add(1); total > lim.MaxFiles {
			return lw.limit("the image has more than %d tar entries", lim.MaxFiles)
		}
		if b := s.o.budget; b != nil && b.files.Add(1) > b.MaxFiles {
			return lw.limit("the job has more than %d tar entries across its images", b.MaxFiles)
		}
		if lw.nEntries++; lw.nEntries%progressEntries == 0 {
			if err := lw.ctx.Err(); err != nil {
				return err
			}
			s.progress()
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // PAX global header: metadata, not a file
		}
		if hdr.Size > lim.MaxFileSize {
			return lw.limit("tar entry %q is %d bytes, more than the limit of %d bytes", hdr.Name, hdr.Size, lim.MaxFileSize)
		}
		name, problem := cleanName(hdr.Name, !s.o.rejectAbsolute)
		if problem != "" {
			return lw.reject(nil, "tar entry %q %s", hdr.Name, problem)
		}
		if name == "." {
			continue // the root itself
		}
		if base := path.Base(name); strings.HasPrefix(base, ".wh.") {
			if err := lw.whiteout(hdr.Name, name, base); err != nil {
				return err
			}
			continue
		}
		// A later entry at the same path replaces an earlier one.
		if len(lw.out.files) > 0 {
			delete(lw.out.files, name)
		}
		if len(lw.linkIdx) > 0 {
			lw.unlink(name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			lw.addEntry(name, true)
		case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
			lw.addEntry(name, false)
			if err := lw.regular(tr, hdr, name); err != nil {
				return err
			}
		case tar.TypeLink:
			if _, problem := cleanName(hdr.Linkname, !s.o.rejectAbsolute); problem != "" {
				return lw.reject(nil, "tar entry %q is a hardlink to %q, which %s", hdr.Name, hdr.Linkname, problem)
			}
			lw.addEntry(name, false)
		case tar.TypeSymlink:
			lw.addEntry(name, false) // never analyzed; resolved in links.go
			if err := lw.addLink(name, hdr.Linkname); err != nil {
				return err
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			lw.addEntry(name, false) // never analyzed
		default:
			// Other types (GNU volume headers…) do not create files.
		}
	}
}

// cleanName returns name cleaned and relative to the root ("." for the
// root), or why it is not acceptable.
func cleanName(name string, allowAbsolute bool) (string, string) {
	if name == "" {
		return "", "has an empty name"
	}
	if strings.HasPrefix(name, "/") {
		if !allowAbsolute {
			return "", "is an absolute path"
		}
		// path.Clean of a rooted path cannot climb above the root.
		p := strings.TrimPrefix(path.Clean(name), "/")
		if p == "" {
			p = "."
		}
		return p, ""
	}
	p := path.Clean(name)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", "escapes the image root"
	}
	return p, ""
}

// whiteout records ".wh.<name>" (delete <name> from lower layers) and
// ".wh..wh..opq" (hide the lower layers' children of the directory).
func (lw *layerWalk) whiteout(raw, name, base string) error {
	dir := path.Dir(name)
	if base == ".wh..wh..opq" {
		if lw.rec != nil {
			lw.rec.opaques = append(lw.rec.opaques, dir)
		}
		if lw.out.opaques != nil {
			lw.out.opaques[lw.hash(dir)] = struct{}{}
		}
		return nil
	}
	if strings.HasPrefix(base, ".wh..wh.") {
		return nil // other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): ignored, as docker does
	}
	target := base[len(".wh."):]
	if target == "" || target == "." || target == ".." {
		return lw.reject(nil, "tar entry %q is an invalid whiteout", raw)
	}
	p := path.Join(dir, target)
	if lw.rec != nil {
		lw.rec.whiteouts = append(lw.rec.whiteouts, p)
	}
	if lw.out.whiteouts != nil {
		lw.out.whiteouts[lw.hash(p)] = struct{}{}
	}
	return nil
}

func (lw *layerWalk) hash(p string) uint64 { return maphash.String(lw.s.seed, p) }

func (lw *layerWalk) addEntry(name string, dir bool) {
	if r := lw.rec; r != nil {
		if dir {
			r.dirs = append(r.dirs, name)
		} else {
			r.paths = append(r.paths, name)
		}
	}
	if !dir {
		lw.addDirs(name)
	}
	if lw.m.index == 0 {
		return // nothing below the bottom layer to replace
	}
	h := lw.hash(name) << 1
	if dir {
		h |= 1
	}
	lw.out.entries = append(lw.out.entries, h)
}

// addDirs records the directory of a non-directory entry and its
// ancestors in dirSet. Entries come grouped by directory, and a
// directory already there has its ancestors there too: usually one
// string comparison.
func (lw *layerWalk) addDirs(name string) {
	d := path.Dir(name)
	if d == lw.lastDir {
		return
	}
	lw.lastDir = d
	addDirs(lw.dirSet, lw.s.seed, d)
}

func addDirs(set map[uint64]struct{}, seed maphash.Seed, d string) {
	for {
		h := maphash.String(seed, d)
		if _, ok := set[h]; ok {
			return
		}
		set[h] = struct{}{}
		if d == "." {
			return
		}
		d = path.Dir(d)
	}
}

// addLink records a symlink, charging its names to the scan's budget.
func (lw *layerWalk) addLink(name, target string) error {
	if lw.s.linkBytes.Add(int64(len(name)+len(target)+linkOverhead)) > maxLinkBytes {
		return lw.limit("the image's symlinks take more than %d bytes", maxLinkBytes)
	}
	if lw.linkIdx == nil {
		lw.linkIdx = map[string]int{}
	}
	lw.linkIdx[name] = len(lw.out.links)
	lw.out.links = append(lw.out.links, link{path: name, target: target})
	return nil
}

// unlink forgets the symlink at name, replaced by a later entry.
func (lw *layerWalk) unlink(name string) {
	if i, ok := lw.linkIdx[name]; ok {
		lw.out.links[i].path = ""
		delete(lw.linkIdx, name)
	}
}

// finishLinks drops replaced links and turns dirSet into out.dirs.
func (lw *layerWalk) finishLinks() {
	lw.out.links = slices.DeleteFunc(lw.out.links, func(l link) bool { return l.path == "" })
	lw.linkIdx = nil
	lw.out.dirs = sortedKeys(lw.dirSet)
	lw.dirSet = nil
}

func sortedKeys(set map[uint64]struct{}) []uint64 {
	out := make([]uint64, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// regular offers a regular file to the analyzers.
func (lw *layerWalk) regular(tr *tar.Reader, hdr *tar.Header, name string) error {
	s := lw.s
	mode := hdr.FileInfo().Mode()
	lw.matched = lw.matched[:0]
	var large []fileJob
	tooBig := hdr.Size > s.lim.MaxAnalyzedFileSize
	for i, a := range s.o.analyzers {
		w, windowed := a.(analyzer.Windowed)
		switch {
		case a.Match(name, mode, hdr.Size) && !(tooBig && windowed):
			lw.matched = append(lw.matched, i)
		case windowed && (w.MatchLarge(name, mode, hdr.Size) || tooBig && a.Match(name, mode, hdr.Size)):
			large = append(large, fileJob{analyzer: i, path: name})
		}
	}
	if len(lw.matched) == 0 && len(large) == 0 {
		return nil
	}
	lw.jobs = lw.jobs[:0]
	for _, i := range lw.matched {
		lw.jobs = append(lw.jobs, fileJob{analyzer: i, path: name})
	}
	results, err := lw.analyzeFile(tr, hdr, name, mode, lw.jobs, large)
	if err != nil || len(results) == 0 {
		return err
	}
	fo := &fileOut{results: make([]fileResult, len(results))}
	for k, r := range results {
		fo.results[k] = r.fileResult
	}
	lw.out.files[name] = fo
	return nil
}

// fileJob is one analyzer to run on a file, and the path it is given
// (the entry's name, or the name a symlink gives the file: links.go).
type fileJob struct {
	analyzer int
	path     string
}

type jobResult struct {
	fileResult
	path string
}

// analyzeFile reads the regular file hdr (name is its cleaned entry name)
// into memory, within MaxAnalyzedFileSize and the memory budget, and runs
// the jobs whose analyzer's Sniff accepts it. It returns the non-empty
// results, in jobs order.
func (lw *layerWalk) analyzeFile(tr io.Reader, hdr *tar.Header, name string, mode fs.FileMode, jobs, large []fileJob) ([]jobResult, error) {
	s := lw.s
	tooBig := hdr.Size > s.lim.MaxAnalyzedFileSize
	if tooBig && len(large) == 0 {
		zerolog.Ctx(lw.ctx).Debug().Str("layer", lw.m.digest.String()).Str("path", name).Int64("size", hdr.Size).
			Msg("scan: file larger than MaxAnalyzedFileSize not analyzed")
		return nil, nil
	}
	headLen := min(hdr.Size, int64(len(lw.head)))
	head := lw.head[:headLen]
	if _, err := io.ReadFull(tr, head); err != nil {
		return nil, lw.classify(err, "invalid tar archive")
	}
	sniffed := func(jobs []fileJob) []fileJob {
		keep := jobs[:0]
		for _, j := range jobs {
			if sn := s.sniffers[j.analyzer]; sn == nil || sn.Sniff(j.path, head) {
				keep = append(keep, j)
			}
		}
		return keep
	}
	large = sniffed(large)
	var keep []fileJob
	if !tooBig {
		keep = sniffed(jobs)
	}
	if len(keep) == 0 {
		if len(large) == 0 {
			return nil, nil
		}
		// Only window-by-window analyzers want it: stream it through them.
		return lw.analyzeWindows(io.MultiReader(bytes.NewReader(head), tr), hdr.Size, mode, large)
	}

	// Parsers that copy the file count their copies too; one whose
	// copies would exceed the per-file bound does not get the file.
	budget := max(s.lim.MaxAnalyzedFileSize, 1<<20)
	copies := int64(0)
	fits := keep[:0]
	for _, j := range keep {
		c := int64(0)
		if mu, ok := s.o.analyzers[j.analyzer].(analyzer.MemoryUser); ok {
			c = int64(max(mu.ParseCopies(j.path), 0))
		}
		if hdr.Size > budget/(1+c) {
			zerolog.Ctx(lw.ctx).Debug().Str("layer", lw.m.digest.String()).Str("path", name).Int64("size", hdr.Size).
				Str("analyzer", s.o.analyzers[j.analyzer].Name()).Msg("scan: file too large for its parser within the memory budget; not analyzed")
			continue
		}
		copies = max(copies, c)
		fits = append(fits, j)
	}
	keep = fits
	if len(keep) == 0 {
		if len(large) == 0 {
			return nil, nil
		}
		return lw.analyzeWindows(io.MultiReader(bytes.NewReader(head), tr), hdr.Size, mode, large)
	}
	if s.spillable(hdr.Size, head, keep) {
		results, spilled, err := lw.analyzeSpilled(tr, hdr, head, mode, keep, large)
		if spilled || err != nil {
			return results, err
		}
	}
	var data []byte
	if hdr.Size <= keepBuf && copies == 0 {
		data = lw.buffer(hdr.Size) // charged with the stream
	} else {
		l, err := s.mem.lease(lw.ctx, hdr.Size, hdr.Size*(1+copies), !lw.holding)
		if err != nil {
			return nil, err
		}
		defer s.mem.giveBack(l)
		data = l.buf
	}
	copy(data, head)
	if _, err := io.ReadFull(tr, data[headLen:]); err != nil {
		return nil, lw.classify(err, "invalid tar archive")
	}
	results, err := lw.runWhole(keep, mode, hdr.Size, data, nil)
	if err != nil {
		return nil, err
	}
	if len(large) > 0 {
		// The file is in memory already: its windows are slices of it.
		more, err := lw.windows(data, hdr.Size, mode, large)
		if err != nil {
			return nil, err
		}
		results = append(results, more...)
	}
	return results, nil
}

// runWhole runs the jobs on a whole file, data in memory or (data nil)
// at on disk, and returns the non-empty results in jobs order.
func (lw *layerWalk) runWhole(jobs []fileJob, mode fs.FileMode, size int64, data []byte, at io.ReaderAt) ([]jobResult, error) {
	s := lw.s
	var results []jobResult
	for _, j := range jobs {
		a := s.o.analyzers[j.analyzer]
		f := &analyzer.File{Path: j.path, Mode: mode, Size: size, Data: data, At: at, Memory: s.mem}
		res, err := analyze(lw.ctx, a, f)
		if err != nil {
			if cerr := lw.ctx.Err(); cerr != nil {
				return nil, cerr
			}
			// An engine that cannot answer (clamd down) must not turn into
			// a clean report: fail the scan so the job is retried.
			var fe *analyzer.FatalError
			if errors.As(err, &fe) {
				return nil, fmt.Errorf("scan: analyzer %s on %s: %w", a.Name(), j.path, err)
			}
			lw.analyzerFailed(a, j.path, err, "scan: analyzer failed; file skipped")
			continue
		}
		if res.Empty() {
			continue
		}
		analyzer.Normalize(a, j.path, res)
		results = append(results, jobResult{fileResult: fileResult{analyzer: j.analyzer, res: res}, path: j.path})
	}
	return results, nil
}

// spillable reports whether a file of size bytes starting with head may
// be written to disk instead of memory for jobs: it is larger than a
// window (smaller files are cheaper in memory, within the budget) and
// every job's analyzer reads it only through File.ReaderAt.
func (s *imageScan) spillable(size int64, head []byte, jobs []fileJob) bool {
	if size <= s.windowSize() {
		return false
	}
	for _, j := range jobs {
		u, ok := s.o.analyzers[j.analyzer].(analyzer.ReaderAtUser)
		if !ok || !u.ReadsAt(j.path, head) {
			return false
		}
	}
	return true
}

// analyzeSpilled writes the rest of the file (head is read already) to a
// temporary file as it streams, through the windowed jobs in large when
// there are any, then runs jobs on the temporary file (File.At). Memory:
// one window, or a copy buffer. spilled is false, and nothing more is
// read, when no temporary file can be written: the caller then reads the
// file into memory.
func (lw *layerWalk) analyzeSpilled(tr io.Reader, hdr *tar.Header, head []byte, mode fs.FileMode, jobs, large []fileJob) (results []jobResult, spilled bool, err error) {
	f, err := os.CreateTemp("", "customs-file-*")
	if err != nil {
		zerolog.Ctx(lw.ctx).Debug().Err(err).Msg("scan: no temporary file for a large file; it is read into memory")
		return nil, false, nil
	}
	// Unlinked at once: the open file is all that is needed, and nothing
	// is left behind by a crash. Where an open file cannot be removed
	// (Windows), it is removed once closed.
	removed := os.Remove(f.Name()) == nil
	defer func() {
		_ = f.Close()
		if !removed {
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(head); err != nil {
		zerolog.Ctx(lw.ctx).Debug().Err(err).Msg("scan: no temporary file for a large file; it is read into memory")
		return nil, false, nil
	}
	w := &spillWriter{f: f}
	rest := io.TeeReader(tr, w)
	var windowed []jobResult
	if len(large) > 0 {
		windowed, err = lw.analyzeWindows(io.MultiReader(bytes.NewReader(head), rest), hdr.Size, mode, large)
		if err != nil {
			return nil, true, err
		}
	} else if _, err := io.CopyBuffer(w, tr, lw.buffer(keepBuf)); err != nil {
		return nil, true, lw.classify(err, "invalid tar archive")
	}
	if w.err != nil {
		// Not the image's fault (a full disk): the scan fails and is retried.
		return nil, true, fmt.Errorf("scan: writing %s to a temporary file: %w", hdr.Name, w.err)
	}
	results, err = lw.runWhole(jobs, mode, hdr.Size, nil, f)
	if err != nil {
		return nil, true, err
	}
	return append(results, windowed...), true, nil
}

// spillWriter writes to the temporary file and keeps its first error for
// later: a write failure is the machine's, and must not read as a corrupt
// tar entry (io.TeeReader would return it from Read).
type spillWriter struct {
	f   *os.File
	err error
}

func (w *spillWriter) Write(p []byte) (int, error) {
	if w.err == nil {
		_, w.err = w.f.Write(p)
	}
	return len(p), nil
}

// windowSize is the window Windowed analyzers get: a quarter of the
// per-file limit, at most 16 MiB and half the budget's file share (a
// window larger than the share would be held beyond the budget, and one
// half its size leaves the other layers room), at least 4×overlap.
func (s *imageScan) windowSize() int64 {
	return max(min(s.lim.MaxAnalyzedFileSize/4, 16<<20, s.mem.filesMax/2), 4*analyzer.WindowOverlap)
}

// analyzeWindows streams a file of size bytes from r through the jobs'
// analyzers in overlapping windows (File.Window set). Memory: one window,
// counted against the scan's budget.
func (lw *layerWalk) analyzeWindows(r io.Reader, size int64, mode fs.FileMode, jobs []fileJob) ([]jobResult, error) {
	s := lw.s
	w := int(min(s.windowSize(), size))
	if w <= 0 {
		return nil, nil
	}
	l, err := s.mem.lease(lw.ctx, int64(w), int64(w), !lw.holding)
	if err != nil {
		return nil, err
	}
	defer s.mem.giveBack(l)
	buf := l.buf
	m := newWindowMerge(lw, size, mode, jobs)
	filled := 0
	var offset int64 // of buf[0] in the file
	lines := 0       // newlines before offset
	for first := true; ; first = false {
		n, err := io.ReadFull(r, buf[filled:])
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			return nil, lw.classify(err, "invalid tar archive")
		}
		filled += n
		if n > 0 || (first && filled > 0) {
			if err := m.add(buf[:filled], offset, lines); err != nil {
				return nil, err
			}
		}
		if eof || filled < w {
			return m.results(), nil
		}
		// Keep the tail: a match across the boundary is whole in the next window.
		keep := min(analyzer.WindowOverlap, filled)
		lines += bytes.Count(buf[:filled-keep], []byte{'\n'})
		offset += int64(filled - keep)
		copy(buf, buf[filled-keep:filled])
		filled = keep
		if err := lw.ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// windows runs the jobs over overlapping windows of data, a file already
// in memory (the windows are slices of it).
func (lw *layerWalk) windows(data []byte, size int64, mode fs.FileMode, jobs []fileJob) ([]jobResult, error) {
	w := int(lw.s.windowSize())
	m := newWindowMerge(lw, size, mode, jobs)
	lines := 0
	for start := 0; ; start += w - analyzer.WindowOverlap {
		end := min(start+w, len(data))
		if err := m.add(data[start:end], int64(start), lines); err != nil {
			return nil, err
		}
		if end == len(data) {
			return m.results(), nil
		}
		lines += bytes.Count(data[start:end-analyzer.WindowOverlap], []byte{'\n'})
	}
}

// windowMerge gives windows of one file to the jobs' analyzers and keeps
// one finding per rule per analyzer (the first window's), or every
// finding of analyzers whose windows are exact (analyzer.WindowExact).
type windowMerge struct {
	lw     *layerWalk
	size   int64
	mode   fs.FileMode
	jobs   []fileJob
	head   []byte // the file's first bytes (File.Head)
	merged []*analyzer.Result
	seen   []map[string]bool
}

func newWindowMerge(lw *layerWalk, size int64, mode fs.FileMode, jobs []fileJob) *windowMerge {
	return &windowMerge{lw: lw, size: size, mode: mode, jobs: jobs,
		merged: make([]*analyzer.Result, len(jobs)), seen: make([]map[string]bool, len(jobs))}
}

func (m *windowMerge) add(win []byte, offset int64, lines int) error {
	lw := m.lw
	first := offset == 0
	if first {
		m.head = bytes.Clone(win[:min(len(win), analyzer.HeadLen)])
	}
	for k, j := range m.jobs {
		a := lw.s.o.analyzers[j.analyzer]
		res, err := analyze(lw.ctx, a, &analyzer.File{Path: j.path, Mode: m.mode, Size: m.size, Data: win, Window: true, Memory: lw.s.mem,
			Offset: offset, Line: lines, Head: m.head})
		if err != nil {
			if cerr := lw.ctx.Err(); cerr != nil {
				return cerr
			}
			lw.analyzerFailed(a, j.path, err, "scan: analyzer failed on a window; window skipped")
			continue
		}
		if res.Empty() {
			continue
		}
		if m.merged[k] == nil {
			m.merged[k], m.seen[k] = &analyzer.Result{}, map[string]bool{}
		}
		if we, ok := a.(analyzer.WindowExact); ok && we.ExactWindows() {
			m.merged[k].Findings = append(m.merged[k].Findings, res.Findings...)
			continue
		}
		for _, f := range res.Findings {
			if m.seen[k][f.Rule] {
				continue
			}
			m.seen[k][f.Rule] = true
			if !first {
				f.Line = 0 // counted from the window, not the file
			}
			m.merged[k].Findings = append(m.merged[k].Findings, f)
		}
	}
	return nil
}

func (m *windowMerge) results() []jobResult {
	var out []jobResult
	for k, j := range m.jobs {
		if m.merged[k] == nil {
			continue
		}
		analyzer.Normalize(m.lw.s.o.analyzers[j.analyzer], j.path, m.merged[k])
		out = append(out, jobResult{fileResult: fileResult{analyzer: j.analyzer, res: m.merged[k]}, path: j.path})
	}
	return out
}

// analyzerFailed logs an analyzer error that skips a file (or a window)
// and hands it to WithAnalyzerErrors' callback.
func (lw *layerWalk) analyzerFailed(a analyzer.Analyzer, path string, err error, msg string) {
	zerolog.Ctx(lw.ctx).Warn().Err(err).Str("analyzer", a.Name()).Str("layer", lw.m.digest.String()).
		Str("path", path).Msg(msg)
	if fn := lw.s.o.analyzerErrors; fn != nil {
		fn(a.Name(), err)
	}
}

// analyze calls a.Analyze, turning a panic into an error.
func analyze(ctx context.Context, a analyzer.Analyzer, f *analyzer.File) (res *analyzer.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	return a.Analyze(ctx, f)
}

// buffer returns the walker's own buffer for a file of n ≤ keepBuf bytes.
func (lw *layerWalk) buffer(n int64) []byte {
	if int64(cap(lw.buf)) < n {
		lw.buf = make([]byte, n, keepBuf)
	}
	return lw.buf[:n]
}

// classify turns a read failure into the right error: cancellation, a
// limit, a registry/network failure (retryable) or a rejection (corrupt
// or mismatching content).
func (lw *layerWalk) classify(err error, during string) error {
	if cerr := lw.ctx.Err(); cerr != nil {
		return cerr
	}
	if lw.pipe != nil {
		// The producer's readers are read below: it must have exited.
		lw.pipe.stop()
	}
	if lw.content != nil && lw.content.err != nil {
		return lw.content.err
	}
	var re *RejectedError
	if errors.As(err, &re) {
		return err
	}
	if lw.src != nil && lw.src.err != nil {
		if isVerifyError(lw.src.err) {
			return lw.reject(lw.src.err, "compressed content does not match the layer digest")
		}
		return lw.fetchErr("read", lw.src.err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if lw.dec != nil && lw.dec.err != nil && lw.dec.kind != "tar" {
		return lw.reject(lw.dec.err, "corrupt %s data", lw.dec.kind)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return lw.reject(err, "%s: truncated", during)
	}
	return lw.reject(err, "%s", during)
}

func (lw *layerWalk) reject(cause error, format string, args ...any) error {
	return &RejectedError{
		Layer:      lw.m.digest.String(),
		LayerIndex: lw.m.index,
		Reason:     fmt.Sprintf(format, args...),
		Err:        cause,
	}
}

func (lw *layerWalk) limit(format string, args ...any) error {
	return &RejectedError{
		Layer:      lw.m.digest.String(),
		LayerIndex: lw.m.index,
		Reason:     fmt.Sprintf(format, args...),
		Limit:      true,
	}
}

func (lw *layerWalk) fetchErr(what string, err error) error {
	return fmt.Errorf("scan: layer %s (#%d): %s: %w", lw.m.digest, lw.m.index+1, what, err)
}

// sourceReader hashes (unless h is nil: r is then the source pipe, whose
// producer hashes) and counts the compressed bytes, and remembers the
// first error of the underlying (registry) stream.
type sourceReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		if s.h != nil {
			s.h.Write(p[:n])
		}
		s.n += int64(n)
	}
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// decodeReader remembers the first error of the decompressor.
type decodeReader struct {
	r    io.Reader
	kind string
	err  error
}

func (d *decodeReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF && d.err == nil {
		d.err = err
	}
	return n, err
}

// contentReader hashes (diff_id) and counts the decompressed bytes as
// they are produced, and enforces the byte limits right there.
type contentReader struct {
	lw           *layerWalk
	r            io.Reader
	h            hash.Hash
	n            int64
	lastProgress int64
	err          error // sticky limit rejection
}

func (c *contentReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if err := c.lw.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if n <= 0 {
		return n, err
	}
	if c.h != nil {
		c.h.Write(p[:n])
	}
	c.n += int64(n)
	lim := &c.lw.s.lim
	if c.lw.reread {
		// A second read (links.go): the layer was charged to the limits
		// already, and the registry must serve the same bytes.
		if c.n > c.lw.out.bytes {
			c.err = c.lw.reject(nil, "the layer's content changed between two reads")
			return 0, c.err
		}
		return n, err
	}
	if total := c.lw.s.uncompressed.Add(int64(n)); total > lim.MaxUncompressedBytes {
		c.err = c.lw.limit("uncompressed size exceeds limit of %d bytes", lim.MaxUncompressedBytes)
		return 0, c.err
	}
	if b := c.lw.s.o.budget; b != nil && b.bytes.Add(int64(n)) > b.MaxBytes {
		c.err = c.lw.limit("the job's images together exceed %d uncompressed bytes", b.MaxBytes)
		return 0, c.err
	}
	if r := lim.MaxLayerRatio; r > 0 && c.n > ratioFloor && c.n/r > c.lw.src.n {
		c.err = c.lw.limit("uncompressed:compressed ratio exceeds limit of %d:1 (%d bytes from %d)", r, c.n, c.lw.src.n)
		return 0, c.err
	}
	if c.n-c.lastProgress >= progressBytes {
		c.lastProgress = c.n
		c.lw.s.progress()
	}
	return n, err
}

// zstdWindow is the window the first zstd frame of br declares (bounded
// by zstdMaxWindow, which the decoder enforces); a skippable frame first,
// or a header too short to read, counts as the largest allowed.
func zstdWindow(br *bufio.Reader) int64 {
	h, _ := br.Peek(14)
	if len(h) < 6 || h[0] != 0x28 {
		return zstdMaxWindow
	}
	fhd := h[4]
	if fhd&0x20 == 0 { // a window descriptor follows
		wd := h[5]
		base := int64(1) << (10 + wd>>3)
		return min(base+base/8*int64(wd&7), zstdMaxWindow)
	}
	// Single segment: the window is the content size, which follows the
	// dictionary id.
	off := 5 + [4]int{0, 1, 2, 4}[fhd&3]
	var n int
	switch fhd >> 6 {
	case 0:
		n = 1
	case 1:
		n = 2
	case 2:
		n = 4
	case 3:
		n = 8
	}
	if len(h) < off+n {
		return zstdMaxWindow
	}
	var size uint64
	for i := n - 1; i >= 0; i-- {
		size = size<<8 | uint64(h[off+i])
	}
	if n == 2 {
		size += 256
	}
	return int64(min(size, zstdMaxWindow))
}

func isZstd(b []byte) bool {
	if b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd {
		return true
	}
	// A skippable frame (magic 0x184D2A5?) may come first.
	return b[0]&0xf0 == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18
}

// supportedMediaType accepts OCI and Docker layer media types (any
// compression: the content is sniffed) and an empty media type; it
// refuses everything else (artifacts, encrypted layers).
func supportedMediaType(mt types.MediaType) bool {
	s := string(mt)
	switch {
	case s == "":
		return true
	case strings.Contains(s, "+encrypted"):
		return false
	case strings.HasPrefix(s, "application/vnd.oci.image.layer."),
		strings.HasPrefix(s, "application/vnd.docker.image.rootfs."):
		return true
	}
	return false
}
