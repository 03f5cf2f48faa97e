package scan_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/layercache"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/malware"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// memCache is a LayerCache in a map.
type memCache struct {
	mu         sync.Mutex
	m          map[string][]byte
	gets, puts int
	// onGet, when set, runs at the start of every Get.
	onGet func()
}

func newMemCache() *memCache { return &memCache{m: map[string][]byte{}} }

func (c *memCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if c.onGet != nil {
		c.onGet()
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets++
	b, ok := c.m[key]
	return slices.Clone(b), ok, nil
}

func (c *memCache) Put(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puts++
	c.m[key] = slices.Clone(data)
	return nil
}

func (c *memCache) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var k []string
	for key := range c.m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

// fetchCounting counts the calls that would fetch a layer's blob.
type fetchCounting struct {
	v1.Layer
	fetches atomic.Int64
}

func (l *fetchCounting) Compressed() (io.ReadCloser, error) {
	l.fetches.Add(1)
	return l.Layer.Compressed()
}

func (l *fetchCounting) Uncompressed() (io.ReadCloser, error) {
	l.fetches.Add(1)
	return l.Layer.Uncompressed()
}

func counting(ls ...v1.Layer) []*fetchCounting {
	out := make([]*fetchCounting, len(ls))
	for i, l := range ls {
		out[i] = &fetchCounting{Layer: l}
	}
	return out
}

func layersOf(cs []*fetchCounting) []v1.Layer {
	out := make([]v1.Layer, len(cs))
	for i, c := range cs {
		out[i] = c
	}
	return out
}

func fetches(cs []*fetchCounting) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.fetches.Load()
	}
	return out
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Two files the malware analyzer reports through its hash list: its
// findings are persistent, so they stay when later layers delete them.
const (
	payload1 = "#!/bin/sh\necho first payload of the layer cache test\n"
	payload2 = "#!/bin/sh\necho second payload of the layer cache test\n"
)

// cacheAnalyzers are the default analyzers and a malware analyzer that
// knows the two payloads.
func cacheAnalyzers(t testing.TB) []scan.Analyzer {
	t.Helper()
	m, err := malware.New(malware.WithHashList(strings.NewReader(sha256Hex(payload1) + " payload1\n" + sha256Hex(payload2) + " payload2\n")))
	if err != nil {
		t.Fatal(err)
	}
	return append(inspect.PackageAnalyzers(), m)
}

// cacheLayers returns the layers of image A (base, update) and the layer
// image B adds on top of them.
func cacheLayers(t testing.TB) (base, update, top v1.Layer) {
	t.Helper()
	base = scantest.Layer(t, append(scantest.DebianRootfs(t),
		scantest.Reg("app/node_modules/ms/package.json", `{"name": "ms", "version": "2.1.3"}`),
		scantest.Reg("app/node_modules/debug/package.json", `{"name": "debug", "version": "4.3.4"}`),
		scantest.Exec("tmp/payload1.sh", []byte(payload1)),
		scantest.Exec("tmp/payload2.sh", []byte(payload2)),
	)...)
	update = scantest.Layer(t,
		scantest.Reg(scantest.DpkgStatusPath, scantest.DebianStatus(t, "base-files", "bash", "libc6", "zlib1g")),
		scantest.Reg("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n\nbody\n"),
		scantest.Whiteout("tmp/payload1.sh"),
	)
	top = scantest.Layer(t,
		scantest.Reg(scantest.DpkgStatusPath, scantest.DebianStatus(t, "base-files", "bash", "libc6", "zlib1g", "tzdata")),
		scantest.Whiteout("app/node_modules/ms"),
		scantest.Whiteout("tmp/payload2.sh"),
		scantest.Opaque("usr/lib/python3/dist-packages"),
		scantest.Reg("app/Gemfile.lock", "GEM\n  remote: https://rubygems.org/\n  specs:\n    rack (3.0.8)\n\nPLATFORMS\n  ruby\n"),
	)
	return base, update, top
}

func sameResult(t *testing.T, got, want *scan.Result) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cached scan differs from an uncached one:\n got %+v\nwant %+v", got, want)
	}
}

// An image sharing its base layers with one scanned before downloads only
// its new layer, and its result is exactly an uncached scan's, whiteouts
// of the new layer applying to cached ones included.
func TestLayerCacheReusesSharedLayers(t *testing.T) {
	base, update, top := cacheLayers(t)
	analyzers := cacheAnalyzers(t)
	want := mustScan(t, scantest.Image(t, base, update, top), scan.WithAnalyzers(analyzers...))

	// What the uncached result must hold, so that the comparison below
	// covers attribution, whiteouts and persistent findings.
	pk := byName(t, want.Packages)
	for name, l := range map[string]v1.Layer{"base-files": base, "bash": base, "libc6": base, "zlib1g": update, "tzdata": top, "debug": base, "rack": top} {
		if p, ok := pk[name]; !ok || p.Layer != layerDigest(t, l) {
			t.Errorf("package %s: %+v, want it attributed to %s", name, p, layerDigest(t, l))
		}
	}
	for _, name := range []string{"ms", "six"} {
		if p, ok := pk[name]; ok {
			t.Errorf("package %s deleted by the top layer is reported: %+v", name, p)
		}
	}
	var persistent []string
	for _, f := range want.Findings {
		if f.Rule == "known-bad-sha256" && f.Layer == layerDigest(t, base) {
			persistent = append(persistent, f.Path)
		}
	}
	if !slices.Equal(persistent, []string{"tmp/payload1.sh", "tmp/payload2.sh"}) {
		t.Errorf("persistent findings in the base layer: %v (findings %+v)", persistent, want.Findings)
	}

	cache := newMemCache()
	var cacheErrs []error
	opts := []scan.Option{scan.WithAnalyzers(analyzers...), scan.WithLayerCache(cache), scan.WithCacheErrors(func(err error) { cacheErrs = append(cacheErrs, err) })}

	// Image A fills the cache with its two layers.
	a := counting(base, update)
	mustScan(t, scantest.Image(t, layersOf(a)...), opts...)
	if got := fetches(a); !slices.Equal(got, []int64{1, 1}) {
		t.Fatalf("cold scan of A fetched %v times", got)
	}
	if n := len(cache.keys()); n != 2 {
		t.Fatalf("cache holds %d entries after A, want 2", n)
	}

	// Image B = A + top: only top is downloaded.
	b := counting(base, update, top)
	got := mustScan(t, scantest.Image(t, layersOf(b)...), opts...)
	if f := fetches(b); !slices.Equal(f, []int64{0, 0, 1}) {
		t.Errorf("warm scan of B fetched the layers %v times, want [0 0 1]", f)
	}
	sameResult(t, got, want)

	// Again: everything comes from the cache.
	b = counting(base, update, top)
	got = mustScan(t, scantest.Image(t, layersOf(b)...), opts...)
	if f := fetches(b); !slices.Equal(f, []int64{0, 0, 0}) {
		t.Errorf("second warm scan of B fetched the layers %v times, want none", f)
	}
	sameResult(t, got, want)

	// And A, from the cache, is what A is uncached.
	a = counting(base, update)
	got = mustScan(t, scantest.Image(t, layersOf(a)...), opts...)
	if f := fetches(a); !slices.Equal(f, []int64{0, 0}) {
		t.Errorf("warm scan of A fetched the layers %v times", f)
	}
	sameResult(t, got, mustScan(t, scantest.Image(t, base, update), scan.WithAnalyzers(analyzers...)))

	if len(cacheErrs) > 0 {
		t.Errorf("cache errors: %v", cacheErrs)
	}
	for _, k := range cache.keys() {
		diffID, fp, ok := strings.Cut(k, ".")
		if !ok || len(diffID) != 64 || fp == "" || strings.Trim(diffID+fp, "0123456789abcdef") != "" {
			t.Errorf("key %q is not <diff_id hex>.<hex fingerprint>", k)
		}
	}
}

// A layer's entry is the same at any position in an image: one cached as
// the bottom layer still hides (whiteouts, replacements) what lies below
// it in another image.
func TestLayerCacheEntryAtAnotherPosition(t *testing.T) {
	debian := scantest.Layer(t, scantest.DebianRootfs(t)...)
	patch := scantest.Layer(t,
		scantest.Whiteout(scantest.DpkgStatusPath),
		scantest.Symlink("app", "/srv"),
		scantest.Reg("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n\nbody\n"),
	)
	lower := scantest.Layer(t, scantest.Reg("app/node_modules/ms/package.json", `{"name": "ms", "version": "2.1.3"}`))
	cache := newMemCache()
	opts := []scan.Option{scan.WithLayerCache(cache)}

	mustScan(t, scantest.Image(t, patch), opts...) // patch cached as layer #1

	want := mustScan(t, scantest.Image(t, debian, lower, patch))
	if len(want.Packages) != 1 || want.Packages[0].Name != "six" {
		t.Fatalf("uncached packages: %s, want six only", names(want))
	}
	ls := counting(debian, lower, patch)
	got := mustScan(t, scantest.Image(t, layersOf(ls)...), opts...)
	if f := fetches(ls); !slices.Equal(f, []int64{1, 1, 0}) {
		t.Errorf("fetched %v, want [1 1 0]", f)
	}
	sameResult(t, got, want)

	// And the reverse: lower, cached as layer #2 just now, at the bottom.
	ls = counting(lower, patch)
	got = mustScan(t, scantest.Image(t, layersOf(ls)...), opts...)
	if f := fetches(ls); !slices.Equal(f, []int64{0, 0}) {
		t.Errorf("fetched %v, want [0 0]", f)
	}
	sameResult(t, got, mustScan(t, scantest.Image(t, lower, patch)))
}

// A damaged entry is a miss: the layer is streamed again, the result is
// the same, the error is reported and the entry rewritten.
func TestLayerCacheCorruptEntry(t *testing.T) {
	base, update, top := cacheLayers(t)
	analyzers := cacheAnalyzers(t)
	want := mustScan(t, scantest.Image(t, base, update, top), scan.WithAnalyzers(analyzers...))
	for _, tc := range []struct {
		name    string
		corrupt func([]byte) []byte
	}{
		{"garbage", func([]byte) []byte { return []byte("not a cache entry") }},
		{"empty", func([]byte) []byte { return nil }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }},
		{"other format version", func(b []byte) []byte { b[4]++; return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := newMemCache()
			var errs []error
			opts := []scan.Option{scan.WithAnalyzers(analyzers...), scan.WithLayerCache(cache), scan.WithCacheErrors(func(err error) { errs = append(errs, err) })}
			mustScan(t, scantest.Image(t, base, update, top), opts...)
			for k, v := range cache.m {
				cache.m[k] = tc.corrupt(v)
			}
			ls := counting(base, update, top)
			got := mustScan(t, scantest.Image(t, layersOf(ls)...), opts...)
			if f := fetches(ls); !slices.Equal(f, []int64{1, 1, 1}) {
				t.Errorf("fetched %v, want every layer again", f)
			}
			sameResult(t, got, want)
			if len(errs) != 3 {
				t.Errorf("cache errors: %v, want one per layer", errs)
			}
			// Rewritten: the next scan hits.
			ls = counting(base, update, top)
			sameResult(t, mustScan(t, scantest.Image(t, layersOf(ls)...), opts...), want)
			if f := fetches(ls); !slices.Equal(f, []int64{0, 0, 0}) {
				t.Errorf("after the rewrite fetched %v, want none", f)
			}
		})
	}
}

// marker is a configurable analyzer: it reports a finding for every file
// named "marker".
type marker struct {
	version     int
	fingerprint string // "" = not a Fingerprinter
}

func (m *marker) Name() string                                { return "marker" }
func (m *marker) Version() int                                { return m.version }
func (m *marker) Match(p string, _ fs.FileMode, _ int64) bool { return filepath.Base(p) == "marker" }
func (m *marker) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	return &analyzer.Result{Findings: []report.Finding{{Kind: report.KindMisconfig, Rule: "marker", Title: string(f.Data)}}}, nil
}

type fingerprintedMarker struct{ *marker }

func (m fingerprintedMarker) Fingerprint() string { return m.fingerprint }

func markerAnalyzer(version int, fingerprint string) scan.Analyzer {
	m := &marker{version: version, fingerprint: fingerprint}
	if fingerprint != "" {
		return fingerprintedMarker{m}
	}
	return m
}

// Everything that may change a layer's output changes the key: analyzer
// versions and configuration, the analyzers present, per-layer limits
// and modes. What does not, keeps it.
func TestLayerCacheKey(t *testing.T) {
	l := scantest.Layer(t, scantest.Reg("etc/marker", "hello"), scantest.Reg("/abs/marker", "absolute"))
	img := scantest.Image(t, l)
	base := []scan.Option{scan.WithAnalyzers(markerAnalyzer(1, ""))}
	keyOf := func(t *testing.T, opts ...scan.Option) (string, int64) {
		t.Helper()
		cache := newMemCache()
		mustScan(t, img, append(append(slices.Clone(base), opts...), scan.WithLayerCache(cache))...)
		keys := cache.keys()
		if len(keys) != 1 {
			t.Fatalf("keys %v, want one", keys)
		}
		// A scan with the same options hits the entry.
		ls := counting(l)
		mustScan(t, scantest.Image(t, layersOf(ls)...), append(append(slices.Clone(base), opts...), scan.WithLayerCache(cache))...)
		return keys[0], ls[0].fetches.Load()
	}
	ref, fetched := keyOf(t)
	if fetched != 0 {
		t.Fatalf("second identical scan fetched the layer")
	}
	for _, tc := range []struct {
		name    string
		opts    []scan.Option
		changes bool
	}{
		{"same options", nil, false},
		{"concurrency and progress", []scan.Option{scan.WithConcurrency(1), scan.WithProgress(func() {})}, false},
		{"image-wide limits", []scan.Option{scan.WithLimits(scan.Limits{MaxLayers: 3, MaxFiles: 100, MaxUncompressedBytes: 1 << 20, MaxConfigBytes: 1 << 20})}, false},
		{"analyzer version", []scan.Option{scan.WithAnalyzers(markerAnalyzer(2, ""))}, true},
		{"analyzer fingerprint", []scan.Option{scan.WithAnalyzers(markerAnalyzer(1, "rules-a"))}, true},
		{"another analyzer", []scan.Option{scan.WithAnalyzers(markerAnalyzer(1, ""), malwareAnalyzer(t))}, true},
		{"MaxAnalyzedFileSize", []scan.Option{scan.WithLimits(scan.Limits{MaxAnalyzedFileSize: 3})}, true},
		{"MaxFileSize", []scan.Option{scan.WithLimits(scan.Limits{MaxFileSize: 1 << 20})}, true},
		{"MaxLayerRatio", []scan.Option{scan.WithLimits(scan.Limits{MaxLayerRatio: 5000})}, true},
		{"absolute paths", []scan.Option{scan.WithAbsolutePaths(false)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "absolute paths" {
				// Strict mode rejects this layer: nothing is cached.
				cache := newMemCache()
				_, err := scanErr(t, img, append(slices.Clone(base), scan.WithAbsolutePaths(false), scan.WithLayerCache(cache))...)
				if !errors.Is(err, scan.ErrRejected) || len(cache.keys()) != 0 {
					t.Fatalf("err %v, cache %v: want a rejection and no entry", err, cache.keys())
				}
				// Nor may a permissive scan's entry let it pass.
				cache = newMemCache()
				mustScan(t, img, append(slices.Clone(base), scan.WithLayerCache(cache))...)
				_, err = scanErr(t, img, append(slices.Clone(base), scan.WithAbsolutePaths(false), scan.WithLayerCache(cache))...)
				if !errors.Is(err, scan.ErrRejected) {
					t.Fatalf("err %v, want a rejection", err)
				}
				return
			}
			k, fetched := keyOf(t, tc.opts...)
			if fetched != 0 {
				t.Errorf("second identical scan fetched the layer")
			}
			diff, _, _ := strings.Cut(k, ".")
			refDiff, _, _ := strings.Cut(ref, ".")
			if diff != refDiff {
				t.Errorf("key %s does not start with the diff_id %s", k, refDiff)
			}
			if (k != ref) != tc.changes {
				t.Errorf("key %s, reference %s: want changed=%t", k, ref, tc.changes)
			}
		})
	}

	// A version change is a miss that downloads the layer again.
	cache := newMemCache()
	mustScan(t, img, scan.WithAnalyzers(markerAnalyzer(1, "")), scan.WithLayerCache(cache))
	ls := counting(l)
	res := mustScan(t, scantest.Image(t, layersOf(ls)...), scan.WithAnalyzers(markerAnalyzer(2, "")), scan.WithLayerCache(cache))
	if ls[0].fetches.Load() != 1 || len(res.Findings) != 2 || len(cache.keys()) != 2 {
		t.Errorf("fetches %d, findings %+v, keys %v: want a miss, two findings, two entries", ls[0].fetches.Load(), res.Findings, cache.keys())
	}
}

func malwareAnalyzer(t testing.TB) scan.Analyzer {
	t.Helper()
	m, err := malware.New()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// An analyzer whose output depends on state it cannot name turns the
// cache off for the scan: no Get, no Put.
func TestLayerCacheUncacheableAnalyzer(t *testing.T) {
	img := scantest.Image(t, scantest.Layer(t, scantest.Reg("etc/marker", "hello")))
	cache := newMemCache()
	for range 2 {
		mustScan(t, img, scan.WithAnalyzers(markerAnalyzer(1, analyzer.Uncacheable)), scan.WithLayerCache(cache))
	}
	if cache.gets != 0 || cache.puts != 0 {
		t.Errorf("gets %d, puts %d, want none", cache.gets, cache.puts)
	}
}

// A config that claims a cached layer's diff_id for other content does
// not get the cached result: only compressed digests seen to decompress
// to the diff_id use the entry, so the layer is streamed, and rejected.
func TestLayerCacheLyingDiffID(t *testing.T) {
	clean := scantest.Layer(t, scantest.DebianRootfs(t)...)
	evil := scantest.Layer(t, scantest.Exec("tmp/payload1.sh", []byte(payload1)))
	analyzers := cacheAnalyzers(t)
	cache := newMemCache()
	opts := []scan.Option{scan.WithAnalyzers(analyzers...), scan.WithLayerCache(cache)}
	mustScan(t, scantest.Image(t, clean), opts...)

	cleanDiff, err := clean.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	cfg := scantest.Config(t, evil)
	cfg.RootFS.DiffIDs = []v1.Hash{cleanDiff}
	ls := counting(evil)
	_, err = scanErr(t, scantest.ImageWithConfig(t, scantest.MarshalConfig(t, cfg), layersOf(ls)...), opts...)
	wantRejected(t, err, false, "diff_id")
	if ls[0].fetches.Load() != 1 {
		t.Errorf("the layer was fetched %d times, want 1", ls[0].fetches.Load())
	}

	// The same content recompressed (another digest, same diff_id) is
	// streamed once, then served from the cache too.
	zstdClean := scantest.LayerWith(t, scantest.Zstd, scantest.DebianRootfs(t)...)
	for i, want := range []int64{1, 0} {
		ls := counting(zstdClean)
		mustScan(t, scantest.Image(t, layersOf(ls)...), opts...)
		if got := ls[0].fetches.Load(); got != want {
			t.Errorf("zstd scan #%d fetched %d times, want %d", i+1, got, want)
		}
	}
	// Both digests now use the entry.
	ls = counting(clean)
	mustScan(t, scantest.Image(t, layersOf(ls)...), opts...)
	if got := ls[0].fetches.Load(); got != 0 {
		t.Errorf("gzip scan after the zstd one fetched %d times, want 0", got)
	}
}

// Limits of the whole image count cached layers too.
func TestLayerCacheImageLimits(t *testing.T) {
	base, update, top := cacheLayers(t)
	cache := newMemCache()
	mustScan(t, scantest.Image(t, base, update, top), scan.WithLayerCache(cache))
	for _, tc := range []struct {
		name string
		lim  scan.Limits
		want string
	}{
		{"MaxFiles", scan.Limits{MaxFiles: 12}, "tar entries"},
		{"MaxUncompressedBytes", scan.Limits{MaxUncompressedBytes: 10 << 10}, "uncompressed size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := scantest.Image(t, base, update, top)
			_, err := scanErr(t, img, scan.WithLimits(tc.lim))
			wantRejected(t, err, true, tc.want)
			ls := counting(base, update, top)
			_, err = scanErr(t, scantest.Image(t, layersOf(ls)...), scan.WithLimits(tc.lim), scan.WithLayerCache(cache))
			wantRejected(t, err, true, tc.want)
			if f := fetches(ls); f[0] != 0 {
				t.Errorf("fetched %v: the base layer should have come from the cache", f)
			}
		})
	}
}

// A cache that fails is no cache: the scan succeeds and says why.
func TestLayerCacheFailing(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	base, update, top := cacheLayers(t)
	img := scantest.Image(t, base, update, top)
	var mu sync.Mutex
	var errs []error
	got := mustScan(t, img, scan.WithLayerCache(layercache.Dir(notADir)), scan.WithCacheErrors(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}))
	sameResult(t, got, mustScan(t, img))
	if len(errs) != 6 {
		t.Errorf("cache errors: %v, want a Get and a Put error per layer", errs)
	}
	for _, err := range errs {
		if errors.Is(err, scan.ErrRejected) || !strings.Contains(err.Error(), "layer cache") {
			t.Errorf("cache error %q", err)
		}
	}
}

// A context cancelled while the cache is asked stops the scan.
func TestLayerCacheCancel(t *testing.T) {
	base, update, top := cacheLayers(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cache := newMemCache()
	cache.onGet = cancel
	_, err := scanImage(ctx, scantest.Image(t, base, update, top), scan.WithLayerCache(cache))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// layercache.Dir works as a LayerCache end to end.
func TestLayerCacheDir(t *testing.T) {
	base, update, top := cacheLayers(t)
	analyzers := cacheAnalyzers(t)
	dir := layercache.Dir(filepath.Join(t.TempDir(), "cache"))
	opts := []scan.Option{scan.WithAnalyzers(analyzers...), scan.WithLayerCache(dir), scan.WithCacheErrors(func(err error) { t.Errorf("cache error: %v", err) })}
	mustScan(t, scantest.Image(t, base, update), opts...)
	ls := counting(base, update, top)
	got := mustScan(t, scantest.Image(t, layersOf(ls)...), opts...)
	if f := fetches(ls); !slices.Equal(f, []int64{0, 0, 1}) {
		t.Errorf("fetched %v, want [0 0 1]", f)
	}
	sameResult(t, got, mustScan(t, scantest.Image(t, base, update, top), scan.WithAnalyzers(analyzers...)))
}

// BenchmarkImageLayerCache measures benchImage with a layer cache: cold
// (every layer streamed and its entry encoded and stored) and warm
// (every layer decoded from its entry, nothing downloaded).
func BenchmarkImageLayerCache(b *testing.B) {
	img, size := benchImage(b)
	ctx := context.Background()
	for _, warm := range []bool{false, true} {
		name := "cold"
		if warm {
			name = "warm"
		}
		b.Run(name, func(b *testing.B) {
			cache := newMemCache()
			if warm {
				if _, err := scanImage(ctx, img, scan.WithLayerCache(cache)); err != nil {
					b.Fatal(err)
				}
				var n int
				for _, v := range cache.m {
					n += len(v)
				}
				b.Logf("%d entries, %d bytes", len(cache.m), n)
			}
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if !warm {
					cache = newMemCache()
				}
				res, err := scanImage(ctx, img, scan.WithLayerCache(cache))
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Packages) < 7 {
					b.Fatalf("packages = %d", len(res.Packages))
				}
			}
		})
	}
}
