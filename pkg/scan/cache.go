package scan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// LayerCache stores what a layer contributes to a scan (analyzer results,
// entries, whiteouts), keyed by the layer's diff_id and a fingerprint of
// everything that shapes that contribution, so that an image sharing base
// layers with one scanned before only downloads its new layers.
// pkg/layercache has a JetStream object store and a directory.
//
// Keys are "<diff_id hex>.<fingerprint>" (hex digits and one dot). Values
// are opaque, versioned and at most a few MiB for ordinary layers.
// Implementations must be safe for concurrent use. Whoever can write to
// the cache decides what scans of cached layers report: it must be as
// trusted as the scanner.
type LayerCache interface {
	// Get returns the value stored under key; ok is false (and err nil)
	// when there is none.
	Get(ctx context.Context, key string) (data []byte, ok bool, err error)
	// Put stores data under key, replacing any earlier value.
	Put(ctx context.Context, key string, data []byte) error
}

// cacheFormat versions the encoding below and the walker's per-layer
// semantics (what an entry, a whiteout, a file result is): bump it with
// any change of either. It is part of every key, so old entries are
// simply never asked for again.
const cacheFormat = 1

// cacheMagic starts every value, followed by the cacheFormat byte.
const cacheMagic = "CSLC"

const (
	// maxCachedDigests bounds the compressed digests remembered per entry.
	maxCachedDigests = 8
	// maxCacheEntryBytes bounds a decoded entry (2M paths of ~100 bytes).
	maxCacheEntryBytes = 256 << 20
)

// cachedLayer is the encoded form of a layerOut. Paths are stored, not
// the walker's path hashes: those are seeded per scan (maphash) so that a
// hostile layer cannot craft a whiteout whose hash collides with a base
// layer's package database, and are recomputed when an entry is decoded.
type cachedLayer struct {
	Format int
	DiffID string
	// Digests are the compressed digests that were seen to decompress to
	// DiffID. Only these may use the entry: a config can claim any
	// diff_id, and a hit skips the download that would have checked it.
	Digests []string
	// Entries and Bytes are what the layer counts against MaxFiles and
	// MaxUncompressedBytes, which are limits of the whole image.
	Entries int64
	Bytes   int64
	Files   []cachedFile // sorted by path
	// Paths and Dirs are the non-directory and directory entries,
	// Whiteouts the deleted paths, Opaques the opaque directories; each
	// sorted and without duplicates.
	Paths, Dirs, Whiteouts, Opaques []string
	// Links are the layer's symlinks in stream order (links.go resolves
	// them at merge time, with the other layers'). Entries written before
	// this field existed are never read: the field changed cacheSchema,
	// hence every key.
	Links []cachedLink
}

type cachedLink struct{ Path, Target string }

type cachedFile struct {
	Path    string
	Results []cachedResult // in analyzer order
}

// cachedResult is an analyzer.Result and its analyzer's name (indices
// differ between processes). OS is a value and HasOS a flag because gob
// drops zero values and a pointer to a zero OS must survive.
type cachedResult struct {
	Analyzer   string
	Packages   []report.Package
	Findings   []report.Finding
	HasOS      bool
	OS         report.OS
	OSPriority int
}

// cacheSchema describes the encoded types: adding a field to
// report.Package or report.Finding changes the keys, so entries written
// before the field existed (without its values) are not read.
var cacheSchema = sync.OnceValue(func() string {
	var b strings.Builder
	typeShape(&b, reflect.TypeFor[cachedLayer](), map[reflect.Type]bool{})
	return b.String()
})

func typeShape(b *strings.Builder, t reflect.Type, seen map[reflect.Type]bool) {
	switch t.Kind() {
	case reflect.Struct:
		if seen[t] {
			b.WriteString(t.String())
			return
		}
		seen[t] = true
		b.WriteString("struct{")
		for i := range t.NumField() {
			f := t.Field(i)
			b.WriteString(f.Name)
			b.WriteByte(' ')
			typeShape(b, f.Type, seen)
			b.WriteByte(';')
		}
		b.WriteByte('}')
	case reflect.Slice, reflect.Array, reflect.Pointer:
		fmt.Fprintf(b, "%s[", t.Kind())
		typeShape(b, t.Elem(), seen)
		b.WriteByte(']')
	case reflect.Map:
		b.WriteString("map[")
		typeShape(b, t.Key(), seen)
		b.WriteByte(']')
		typeShape(b, t.Elem(), seen)
	default:
		b.WriteString(t.Kind().String())
	}
}

// cacheFingerprint returns the key suffix shared by every layer of a
// scan: the cache format, the encoded types, the per-layer limits and
// modes, and each analyzer's name, version and configuration fingerprint
// (sorted by name). ok is false when an analyzer is Uncacheable.
//
// MaxFiles and MaxUncompressedBytes are not in it: they bound the whole
// image, so a hit counts the layer's stored totals against them instead.
// MaxFileSize and MaxLayerRatio fail a layer without changing what a
// passing layer yields, but a layer that passed under a looser limit must
// not pass a stricter scan: they are in it.
func cacheFingerprint(o *options) (fp string, ok bool) {
	h := sha256.New()
	fmt.Fprintf(h, "customs layer cache %d\nschema %s\n", cacheFormat, cacheSchema())
	l := o.limits
	fmt.Fprintf(h, "analyzed %d file %d ratio %d absolute %t sniff %d\n",
		l.MaxAnalyzedFileSize, l.MaxFileSize, l.MaxLayerRatio, !o.rejectAbsolute, analyzer.SniffLen)
	as := slices.Clone(o.analyzers)
	slices.SortFunc(as, func(a, b analyzer.Analyzer) int { return strings.Compare(a.Name(), b.Name()) })
	for _, a := range as {
		var afp string
		if f, ok := a.(analyzer.Fingerprinter); ok {
			if afp = f.Fingerprint(); afp == analyzer.Uncacheable {
				return "", false
			}
		}
		fmt.Fprintf(h, "analyzer %q %d %q\n", a.Name(), a.Version(), afp)
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), true
}

func (s *imageScan) cacheKey(m *layerMeta) string { return m.diffID.Hex + "." + s.cacheFP }

func (s *imageScan) cacheError(err error) {
	if s.o.cacheErrors == nil {
		return
	}
	s.cacheErrMu.Lock()
	defer s.cacheErrMu.Unlock()
	s.o.cacheErrors(err)
}

// layerRecord collects, while a layer is streamed, what its cache entry
// needs beyond the layerOut: paths rather than hashes, and the entries of
// the bottom layer too (an entry is reused at any position).
type layerRecord struct {
	paths, dirs, whiteouts, opaques []string
}

// cacheGet looks the layer up. It returns the layer's output on a hit;
// on a miss it returns nil and the entry found, if any, whose digests the
// Put after streaming keeps. Only a context error is returned: a cache
// that fails is a miss.
func (s *imageScan) cacheGet(ctx context.Context, lw *layerWalk) (*layerOut, *cachedLayer, error) {
	m := lw.m
	key := s.cacheKey(m)
	data, ok, err := s.o.cache.Get(ctx, key)
	if cerr := ctx.Err(); cerr != nil {
		return nil, nil, cerr
	}
	if err != nil {
		s.cacheError(fmt.Errorf("scan: layer cache: get %s: %w", key, err))
		return nil, nil, nil
	}
	if !ok {
		return nil, nil, nil
	}
	c, err := decodeLayer(data)
	if err == nil && c.DiffID != m.diffID.String() {
		err = fmt.Errorf("entry is for diff_id %s", c.DiffID)
	}
	if err != nil {
		s.cacheError(fmt.Errorf("scan: layer cache: %s: %w", key, err))
		return nil, nil, nil
	}
	if !slices.Contains(c.Digests, m.digest.String()) {
		return nil, c, nil
	}
	out, err := s.layerFromCache(c, m.index)
	if err != nil {
		s.cacheError(fmt.Errorf("scan: layer cache: %s: %w", key, err))
		return nil, nil, nil
	}
	if total := s.entries.Add(c.Entries); total > s.lim.MaxFiles {
		return nil, nil, lw.limit("the image has more than %d tar entries", s.lim.MaxFiles)
	}
	if total := s.uncompressed.Add(c.Bytes); total > s.lim.MaxUncompressedBytes {
		return nil, nil, lw.limit("uncompressed size exceeds limit of %d bytes", s.lim.MaxUncompressedBytes)
	}
	if b := s.o.budget; b != nil && (b.files.Add(c.Entries) > b.MaxFiles || b.bytes.Add(c.Bytes) > b.MaxBytes) {
		return nil, nil, lw.limit("the job's images together exceed %d tar entries or %d uncompressed bytes", b.MaxFiles, b.MaxBytes)
	}
	var nb int64
	for _, l := range c.Links {
		nb += int64(len(l.Path) + len(l.Target) + linkOverhead)
	}
	if s.linkBytes.Add(nb) > maxLinkBytes {
		return nil, nil, lw.limit("the image's symlinks take more than %d bytes", maxLinkBytes)
	}
	zerolog.Ctx(ctx).Debug().Str("layer", m.digest.String()).Msg("scan: layer results from the cache")
	return out, nil, nil
}

// cachePut stores the output of a layer that was streamed and verified.
// Failures are reported, never returned.
func (s *imageScan) cachePut(ctx context.Context, lw *layerWalk, prev *cachedLayer) {
	key := s.cacheKey(lw.m)
	digests := []string{lw.m.digest.String()}
	if prev != nil {
		for _, d := range prev.Digests {
			if len(digests) < maxCachedDigests && !slices.Contains(digests, d) {
				digests = append(digests, d)
			}
		}
	}
	data, err := encodeLayer(s.cachedLayer(lw, digests))
	if err != nil {
		s.cacheError(fmt.Errorf("scan: layer cache: encode %s: %w", key, err))
		return
	}
	if err := s.o.cache.Put(ctx, key, data); err != nil && ctx.Err() == nil {
		s.cacheError(fmt.Errorf("scan: layer cache: put %s: %w", key, err))
	}
}

// cachedLayer turns the output of a streamed layer into its entry.
func (s *imageScan) cachedLayer(lw *layerWalk, digests []string) *cachedLayer {
	rec := lw.rec
	c := &cachedLayer{
		Format:    cacheFormat,
		DiffID:    lw.m.diffID.String(),
		Digests:   digests,
		Entries:   lw.nEntries,
		Bytes:     lw.content.n,
		Files:     make([]cachedFile, 0, len(lw.out.files)),
		Paths:     sortedUnique(rec.paths),
		Dirs:      sortedUnique(rec.dirs),
		Whiteouts: sortedUnique(rec.whiteouts),
		Opaques:   sortedUnique(rec.opaques),
	}
	for _, l := range lw.out.links {
		c.Links = append(c.Links, cachedLink{Path: l.path, Target: l.target})
	}
	for p, fo := range lw.out.files {
		f := cachedFile{Path: p, Results: make([]cachedResult, len(fo.results))}
		for i, fr := range fo.results {
			r := fr.res
			cr := cachedResult{
				Analyzer:   s.o.analyzers[fr.analyzer].Name(),
				Packages:   r.Packages,
				Findings:   r.Findings,
				OSPriority: r.OSPriority,
			}
			if r.OS != nil {
				cr.HasOS, cr.OS = true, *r.OS
			}
			f.Results[i] = cr
		}
		c.Files = append(c.Files, f)
	}
	slices.SortFunc(c.Files, func(a, b cachedFile) int { return strings.Compare(a.Path, b.Path) })
	return c
}

// encodeLayer encodes an entry: cacheMagic, the format byte, then the
// gob encoding gzip-compressed.
func encodeLayer(c *cachedLayer) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(cacheMagic)
	buf.WriteByte(cacheFormat)
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if err := gob.NewEncoder(zw).Encode(c); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

var errCacheEntry = errors.New("not a layer cache entry of this version")

// decodeLayer decodes a value written by encodeLayer.
func decodeLayer(data []byte) (c *cachedLayer, err error) {
	if len(data) < len(cacheMagic)+1 || string(data[:len(cacheMagic)]) != cacheMagic || data[len(cacheMagic)] != cacheFormat {
		return nil, errCacheEntry
	}
	zr, err := gzip.NewReader(bytes.NewReader(data[len(cacheMagic)+1:]))
	if err != nil {
		return nil, fmt.Errorf("corrupt entry: %w", err)
	}
	// Read to EOF first: gzip checks its CRC there, before gob sees a
	// byte of a damaged entry.
	raw, err := io.ReadAll(io.LimitReader(zr, maxCacheEntryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("corrupt entry: %w", err)
	}
	if len(raw) > maxCacheEntryBytes {
		return nil, fmt.Errorf("corrupt entry: more than %d bytes", maxCacheEntryBytes)
	}
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("corrupt entry: %v", r)
		}
	}()
	c = &cachedLayer{}
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(c); err != nil {
		return nil, fmt.Errorf("corrupt entry: %w", err)
	}
	if c.Format != cacheFormat {
		return nil, errCacheEntry
	}
	return c, nil
}

// layerFromCache rebuilds the layerOut of layer index from an entry,
// hashing its paths with this scan's seed.
func (s *imageScan) layerFromCache(c *cachedLayer, index int) (*layerOut, error) {
	byName := make(map[string]int, len(s.o.analyzers))
	for i, a := range s.o.analyzers {
		byName[a.Name()] = i
	}
	out := &layerOut{index: index, files: make(map[string]*fileOut, len(c.Files)), bytes: c.Bytes, paths: c.Paths, cached: true}
	if !slices.IsSorted(c.Paths) {
		return nil, fmt.Errorf("corrupt entry: paths not sorted")
	}
	for _, l := range c.Links {
		if l.Path == "" {
			return nil, fmt.Errorf("corrupt entry: empty symlink path")
		}
		out.links = append(out.links, link{path: l.Path, target: l.Target})
	}
	for _, f := range c.Files {
		if _, dup := out.files[f.Path]; dup || f.Path == "" || len(f.Results) == 0 {
			return nil, fmt.Errorf("corrupt entry: file %q", f.Path)
		}
		fo := &fileOut{results: make([]fileResult, 0, len(f.Results))}
		for _, r := range f.Results {
			i, ok := byName[r.Analyzer]
			if !ok {
				return nil, fmt.Errorf("corrupt entry: unknown analyzer %q", r.Analyzer)
			}
			res := &analyzer.Result{Packages: r.Packages, Findings: r.Findings, OSPriority: r.OSPriority}
			if r.HasOS {
				os := r.OS
				res.OS = &os
			}
			fo.results = append(fo.results, fileResult{analyzer: i, res: res})
		}
		slices.SortFunc(fo.results, func(a, b fileResult) int { return a.analyzer - b.analyzer })
		out.files[f.Path] = fo
	}
	if index == 0 {
		return out, nil // as walkLayer: nothing below the bottom layer to hide
	}
	hash := func(p string) uint64 { return maphash.String(s.seed, p) }
	out.entries = make([]uint64, 0, len(c.Paths)+len(c.Dirs))
	for _, p := range c.Paths {
		out.entries = append(out.entries, hash(p)<<1)
	}
	for _, p := range c.Dirs {
		out.entries = append(out.entries, hash(p)<<1|1)
	}
	slices.Sort(out.entries)
	out.whiteouts = make(map[uint64]struct{}, len(c.Whiteouts))
	for _, p := range c.Whiteouts {
		out.whiteouts[hash(p)] = struct{}{}
	}
	out.opaques = make(map[uint64]struct{}, len(c.Opaques))
	for _, p := range c.Opaques {
		out.opaques[hash(p)] = struct{}{}
	}
	return out, nil
}
