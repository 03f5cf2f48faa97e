package scan_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// fuzzLimits keep one fuzzing input fast: a few MiB decompressed, a few
// thousand entries.
var fuzzLimits = scan.Limits{
	MaxLayers:            4,
	MaxConfigBytes:       1 << 20,
	MaxUncompressedBytes: 4 << 20,
	MaxFiles:             4096,
	MaxFileSize:          2 << 20,
	MaxAnalyzedFileSize:  1 << 20,
	MaxLayerRatio:        2000,
}

// panicLog collects the walker's "analyzer failed" log lines for panics:
// the walker recovers an analyzer's panic and skips the file, which would
// hide it from the fuzzing engine.
type panicLog struct {
	mu    sync.Mutex
	lines []string
}

func (p *panicLog) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(`"error":"panic: `)) {
		p.mu.Lock()
		p.lines = append(p.lines, string(b))
		p.mu.Unlock()
	}
	return len(b), nil
}

func (p *panicLog) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lines) > 0 {
		t.Fatalf("an analyzer panicked (the walker recovered):\n%s", strings.Join(p.lines, ""))
	}
}

// fuzzInputTimeout bounds one input (milliseconds for the seeds): a hang
// crashes the run with every goroutine's stack, so that the fuzzing
// engine keeps the input.
const fuzzInputTimeout = 20 * time.Second

func watchdog(d time.Duration) (stop func()) {
	t := time.AfterFunc(d, func() {
		buf := make([]byte, 1<<20)
		panic(fmt.Sprintf("input took more than %v:\n%s", d, buf[:runtime.Stack(buf, true)]))
	})
	return func() { t.Stop() }
}

func fuzzContext() (context.Context, *panicLog) {
	pl := &panicLog{}
	return zerolog.New(pl).WithContext(context.Background()), pl
}

// checkScanResult checks what every successful scan of a one-layer image
// must satisfy: one layer, the layer's digest, and result paths inside
// the image root.
func checkScanResult(t *testing.T, res *scan.Result, layer v1.Layer) {
	t.Helper()
	d, _ := layer.Digest()
	if len(res.Layers) != 1 || res.Layers[0].Digest != d.String() {
		t.Fatalf("layers %+v, want the one layer %s", res.Layers, d)
	}
	for _, p := range res.Packages {
		if p.Name == "" || !analyzertest.SafePath(p.Path) || p.Layer != d.String() {
			t.Fatalf("bad package %+v", p)
		}
	}
	for _, f := range res.Findings {
		if f.Path != "" && !analyzertest.SafePath(f.Path) {
			t.Fatalf("finding path %q escapes the image root: %+v", f.Path, f)
		}
	}
}

var fuzzMediaTypes = []types.MediaType{types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer, types.DockerLayer}

// FuzzImageLayer scans an image whose single layer is made of arbitrary
// bytes, with every default analyzer and small limits. mode%4 picks how:
// 0-2 treat data as a tar stream compressed with gzip, zstd or nothing
// (and a matching diff_id), 3 uses data as the compressed blob itself,
// the diff_id being its SHA-256 (right when it is plain tar), with the
// media type picked by mode/4. It checks that nothing panics (analyzer
// panics included, which the walker would hide), that every failure is
// a rejection (ErrRejected: the image is in memory, so nothing else can
// fail), and that a result has the one layer and only paths inside the
// image root.
func FuzzImageLayer(f *testing.F) {
	tars := [][]byte{
		scantest.Tar(f, scantest.DebianRootfs(f)...),
		scantest.Tar(f, scantest.AlpineRootfs(f)...),
		scantest.Tar(f, scantest.DistrolessRootfs(f)...),
		scantest.Tar(f,
			scantest.Dir("etc"), scantest.Reg("./etc/os-release", "ID=debian\nVERSION_ID=12\n"),
			scantest.Symlink("usr/lib/os-release", "../../etc/os-release"),
			scantest.Hardlink("etc/os-release2", "etc/os-release"),
			scantest.Whiteout("var/lib/dpkg/status"), scantest.Opaque("usr/lib"),
			scantest.Reg("/ko-app/app", "x"),
			scantest.Reg("app/node_modules/ms/package.json", `{"name": "ms", "version": "2.1.3"}`),
			scantest.Reg("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n"),
			scantest.Reg("app/Gemfile.lock", "GEM\n  remote: https://rubygems.org/\n  specs:\n    rack (3.0.8)\n"),
		),
		scantest.Tar(f, scantest.Reg("../../etc/passwd", "root::0:0::/:/bin/sh\n")),
		scantest.Tar(f, scantest.Hardlink("a", "../../etc/shadow")),
		scantest.Tar(f, scantest.Reg("a/.wh..wh..opq", ""), scantest.Reg(".wh.", ""), scantest.Reg("x/.wh...", "")),
		nil,
	}
	for i, tb := range tars {
		f.Add(tb, uint8(i%3))
		f.Add(scantest.Compress(f, scantest.Compression(i%2), tb), uint8(3+4*(i%4)))
	}
	f.Add([]byte("\x1f\x8b\x08\x00garbage"), uint8(3))
	f.Add([]byte("\x28\xb5\x2f\xfd\x04\x00garbage"), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		if len(data) > 4<<20 {
			return
		}
		defer watchdog(fuzzInputTimeout)()
		var layer v1.Layer
		switch mode % 4 {
		case 0:
			layer = scantest.LayerFromTar(t, scantest.Gzip, data)
		case 1:
			layer = scantest.LayerFromTar(t, scantest.Zstd, data)
		case 2:
			layer = scantest.LayerFromTar(t, scantest.Uncompressed, data)
		default:
			layer = scantest.RawLayer(data, scantest.Hash(data), fuzzMediaTypes[int(mode/4)%len(fuzzMediaTypes)])
		}
		img := scantest.Image(t, layer)
		ctx, pl := fuzzContext()
		res, err := scanImage(ctx, img, scan.WithLimits(fuzzLimits), scan.WithConcurrency(1))
		pl.check(t)
		if err != nil {
			if !errors.Is(err, scan.ErrRejected) {
				t.Fatalf("error is not a rejection: %v", err)
			}
			return
		}
		checkScanResult(t, res, layer)
	})
}

// FuzzCachedLayer scans a three-layer image whose layers all come from
// the layer cache, one of them (layer%3) with an arbitrary entry: data
// itself, or (wrap) data as the gob payload of an entry, gzip-compressed
// behind the entry header as the scan library writes it. The seeds are
// the real entries of the three layers, so mutations keep the diff_id and
// digest an entry must name to be used. The cache may be as trusted as
// the scanner, but a damaged entry must never crash a scan nor fail it
// other than by a limit (its counts go against the image's limits): it
// is a miss.
func FuzzCachedLayer(f *testing.F) {
	base, update, top := cacheLayers(f)
	layers := []v1.Layer{base, update, top}
	img := scantest.Image(f, layers...)
	analyzers := cacheAnalyzers(f)
	cache := newMemCache()
	if _, err := scan.Image(context.Background(), img, scan.WithAnalyzers(analyzers...), scan.WithLayerCache(cache)); err != nil {
		f.Fatal(err)
	}
	keys := cache.keys()
	if len(keys) != len(layers) {
		f.Fatalf("cache holds %d entries, want %d", len(keys), len(layers))
	}
	diffIDs := make([]string, len(layers))
	for i, l := range layers {
		d, err := l.DiffID()
		if err != nil {
			f.Fatal(err)
		}
		diffIDs[i] = d.Hex
	}
	entries := map[string][]byte{}
	for _, k := range keys {
		entries[k] = cache.m[k]
	}
	keyOf := func(i int) string {
		for _, k := range keys {
			if strings.HasPrefix(k, diffIDs[i]+".") {
				return k
			}
		}
		f.Fatalf("no cache entry for layer %d", i)
		return ""
	}
	for i := range layers {
		v := entries[keyOf(i)]
		f.Add(uint8(i), false, v)
		if raw, err := unwrapEntry(v); err == nil {
			f.Add(uint8(i), true, raw)
		} else {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, layer uint8, wrap bool, data []byte) {
		defer watchdog(fuzzInputTimeout)()
		i := int(layer) % len(layers)
		value := data
		if wrap {
			value = wrapEntry(t, data)
		}
		c := &fixedCache{entries: entries, key: keyOf(i), value: value}
		ctx, pl := fuzzContext()
		res, err := scan.Image(ctx, img, scan.WithAnalyzers(analyzers...), scan.WithLayerCache(c),
			scan.WithLimits(scan.Limits{MaxUncompressedBytes: 64 << 20, MaxFiles: 100_000}), scan.WithConcurrency(1))
		pl.check(t)
		if err != nil {
			if !errors.Is(err, scan.ErrLimitExceeded) {
				t.Fatalf("a cache entry failed the scan: %v", err)
			}
			return
		}
		if len(res.Layers) != len(layers) {
			t.Fatalf("%d layers in the result, want %d", len(res.Layers), len(layers))
		}
	})
}

// fixedCache serves entries, and value under key; Puts are dropped.
type fixedCache struct {
	entries map[string][]byte
	key     string
	value   []byte
}

func (c *fixedCache) Get(_ context.Context, key string) ([]byte, bool, error) {
	if key == c.key {
		return bytes.Clone(c.value), true, nil
	}
	v, ok := c.entries[key]
	return bytes.Clone(v), ok, nil
}

func (c *fixedCache) Put(context.Context, string, []byte) error { return nil }

// entryHeader is what starts every cache entry: "CSLC" and the format.
const entryHeader = "CSLC\x01"

func unwrapEntry(v []byte) ([]byte, error) {
	if !bytes.HasPrefix(v, []byte(entryHeader)) {
		return nil, fmt.Errorf("cache entry does not start with %q", entryHeader)
	}
	zr, err := gzip.NewReader(bytes.NewReader(v[len(entryHeader):]))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

func wrapEntry(t testing.TB, raw []byte) []byte {
	var buf bytes.Buffer
	buf.WriteString(entryHeader)
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
