package scan_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// copier stands for a parser that holds copies of the file (TOML): it
// records which files it was given.
type copier struct {
	copies int
	mu     sync.Mutex
	seen   []string
}

func (*copier) Name() string                                { return "copier" }
func (*copier) Version() int                                { return 1 }
func (*copier) Match(p string, _ fs.FileMode, _ int64) bool { return strings.HasSuffix(p, ".lock") }
func (c *copier) ParseCopies(string) int                    { return c.copies }
func (c *copier) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, f.Path)
	return &analyzer.Result{Packages: []report.Package{{Name: f.Path, Version: "1"}}}, nil
}

var _ analyzer.MemoryUser = (*copier)(nil)

// A file whose parser's copies would exceed the memory budget is not given
// to that parser; one that fits is, and plain analyzers are unaffected.
func TestParserCopiesCountAgainstTheMemoryBudget(t *testing.T) {
	const budget = 1 << 20
	small := bytes.Repeat([]byte("x"), 200<<10) // 200 KiB × 4 fits 1 MiB
	big := bytes.Repeat([]byte("x"), 300<<10)   // 300 KiB × 4 does not
	img := scantest.Image(t, scantest.Layer(t,
		scantest.File{Path: "app/small.lock", Content: small},
		scantest.File{Path: "app/big.lock", Content: big},
	))
	c := &copier{copies: 3}
	lim := scan.DefaultLimits()
	lim.MaxAnalyzedFileSize = budget
	if _, err := scan.Image(context.Background(), img, scan.WithLimits(lim), scan.WithAnalyzers(c)); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.seen, ",") != "app/small.lock" {
		t.Errorf("parser was given %v; want only the file whose copies fit the budget", c.seen)
	}
	// Without copies both fit.
	plain := &copier{}
	if _, err := scan.Image(context.Background(), img, scan.WithLimits(lim), scan.WithAnalyzers(plain)); err != nil {
		t.Fatal(err)
	}
	if len(plain.seen) != 2 {
		t.Errorf("plain analyzer was given %v; want both files", plain.seen)
	}
}

// holder analyzes every *.bin file and records the sizes it was given.
type holder struct {
	mu   sync.Mutex
	seen map[string]int
}

func (*holder) Name() string                                { return "holder" }
func (*holder) Version() int                                { return 1 }
func (*holder) Match(p string, _ fs.FileMode, _ int64) bool { return strings.HasSuffix(p, ".bin") }
func (h *holder) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[string]int{}
	}
	h.seen[f.Path] = len(f.Data)
	return nil, nil
}

func newMemory(t *testing.T, maxBytes int64, streams int) *scan.Memory {
	t.Helper()
	m, err := scan.NewMemory(maxBytes, streams)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The budget charges, in bytes, each layer stream's fixed buffers, the
// content of every file read whole (a file larger than the budget is
// charged all of it), the copies parsers declare and a zstd frame's
// window; after the scan only buffers kept for reuse remain charged.
func TestMemoryChargesEveryBuffer(t *testing.T) {
	const mib = 1 << 20
	small := bytes.Repeat([]byte("s"), 100<<10)
	one := bytes.Repeat([]byte("x"), mib)
	huge := bytes.Repeat([]byte("h"), 20*mib)
	zstdTar := scantest.Tar(t, scantest.File{Path: "z/one.bin", Content: one})
	zstdLayer := scantest.Compress(t, scantest.Zstd, zstdTar)
	zstdWin := scan.ZstdWindow(bufio.NewReader(bytes.NewReader(zstdLayer)))
	if zstdWin <= 0 || zstdWin > 128*mib {
		t.Fatalf("zstd window of the test layer = %d", zstdWin)
	}
	const budget = 16 * mib
	cases := []struct {
		name     string
		layer    v1.Layer
		copies   int
		wantPeak int64
		wantFile string
		wantOver int64 // held beyond the budget
	}{
		{"small file: the walker's own buffer", scantest.Layer(t, scantest.File{Path: "a/small.bin", Content: small}), 0,
			scan.StreamBytes, "a/small.bin", 0},
		{"1 MiB file", scantest.Layer(t, scantest.File{Path: "a/one.bin", Content: one}), 0,
			scan.StreamBytes + mib, "a/one.bin", 0},
		{"1 MiB file, parser holding two copies", scantest.Layer(t, scantest.File{Path: "a/one.bin", Content: one}), 2,
			scan.StreamBytes + 3*mib, "a/one.bin", 0},
		{"file larger than the budget: charged all of it", scantest.Layer(t, scantest.File{Path: "a/huge.bin", Content: huge}), 0,
			budget, "a/huge.bin", int64(len(huge)) - (budget - scan.StreamBytes)},
		{"zstd layer: the frame's window and blocks too", scantest.RawLayer(zstdLayer, sha256Of(zstdTar), types.OCILayerZStd), 0,
			scan.StreamBytes + zstdWin + 256<<10 + mib, "z/one.bin", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMemory(t, budget, 1)
			var a analyzer.Analyzer = &holder{}
			h := a.(*holder)
			if c.copies > 0 {
				a = &copyingHolder{holder: h, copies: c.copies}
			}
			img := scantest.Image(t, c.layer)
			if _, err := scan.Image(context.Background(), img, scan.WithMemory(m), scan.WithAnalyzers(a)); err != nil {
				t.Fatal(err)
			}
			if got := m.Peak(); got != c.wantPeak {
				t.Errorf("peak charged %d bytes; want %d", got, c.wantPeak)
			}
			if m.Peak() > m.Max() {
				t.Errorf("peak %d exceeds the budget %d", m.Peak(), m.Max())
			}
			if m.InUse() != m.Kept() {
				t.Errorf("after the scan %d bytes are charged, %d of them kept for reuse; want only kept ones", m.InUse(), m.Kept())
			}
			if got := m.Overdrawn(); got != c.wantOver {
				t.Errorf("overdrawn %d bytes; want %d", got, c.wantOver)
			}
			if h.seen[c.wantFile] == 0 {
				t.Errorf("analyzer was given %v; want %s", h.seen, c.wantFile)
			}
		})
	}
}

type copyingHolder struct {
	*holder
	copies int
}

func (c *copyingHolder) ParseCopies(string) int { return c.copies }

// countingLayer counts its compressed streams open at once.
type countingLayer struct {
	v1.Layer
	open, most *atomic.Int64
}

func (l countingLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	n := l.open.Add(1)
	for {
		m := l.most.Load()
		if n <= m || l.most.CompareAndSwap(m, n) {
			break
		}
	}
	return &countedRC{ReadCloser: rc, open: l.open}, nil
}

type countedRC struct {
	io.ReadCloser
	open *atomic.Int64
	once sync.Once
}

func (c *countedRC) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.ReadCloser.Close()
}

// Concurrent scans sharing one Memory stay within it together, stream no
// more layers at once than it allows, and find what they find alone.
func TestMemorySharedAcrossScans(t *testing.T) {
	const mib = 1 << 20
	var open, most atomic.Int64
	var images []v1.Image
	for i := range 4 {
		var layers []v1.Layer
		for j := range 3 {
			l := scantest.Layer(t,
				scantest.File{Path: fmt.Sprintf("l%d/%d/a.bin", j, i), Content: bytes.Repeat([]byte{byte('a' + j)}, 3*mib+i)},
				scantest.File{Path: fmt.Sprintf("l%d/%d/b.bin", j, i), Content: bytes.Repeat([]byte{byte('b' + j)}, 2*mib)},
				scantest.File{Path: fmt.Sprintf("l%d/%d/c.bin", j, i), Content: []byte("small")},
			)
			layers = append(layers, countingLayer{Layer: l, open: &open, most: &most})
		}
		images = append(images, scantest.Image(t, layers...))
	}
	m := newMemory(t, 12*mib, 2)
	shared := &holder{}
	s, err := scan.New(scan.WithMemory(m), scan.WithAnalyzers(shared), scan.WithConcurrency(3))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(images))
	for i, img := range images {
		wg.Go(func() { _, errs[i] = s.Image(context.Background(), img) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if m.Peak() > m.Max() {
		t.Errorf("peak %d exceeds the budget %d", m.Peak(), m.Max())
	}
	if m.Peak() < 2*scan.StreamBytes+3*mib {
		t.Errorf("peak %d: want at least two streams and a 3 MiB file charged at once", m.Peak())
	}
	if got := most.Load(); got > 2 {
		t.Errorf("%d layer streams were open at once; the budget allows 2", got)
	}
	if m.InUse() != m.Kept() {
		t.Errorf("after the scans %d bytes are charged, %d of them kept; want only kept ones", m.InUse(), m.Kept())
	}
	alone := &holder{}
	for _, img := range images {
		if _, err := scan.Image(context.Background(), img, scan.WithAnalyzers(alone)); err != nil {
			t.Fatal(err)
		}
	}
	if len(shared.seen) != 36 || fmt.Sprint(shared.seen) != fmt.Sprint(alone.seen) {
		t.Errorf("shared budget: %d files analyzed, alone: %d; want the same 36", len(shared.seen), len(alone.seen))
	}
}

func TestNewMemoryRefusesTooSmallABudget(t *testing.T) {
	if _, err := scan.NewMemory(1<<20, 0); err == nil {
		t.Error("NewMemory(1 MiB) succeeded; want an error")
	}
	m := newMemory(t, 8<<20, 100)
	if m.Streams() < 1 || int64(m.Streams())*scan.StreamBytes > m.Max()-4<<20 {
		t.Errorf("8 MiB budget allows %d streams of %d bytes; want as many as leave 4 MiB for files", m.Streams(), scan.StreamBytes)
	}
}

func sha256Of(b []byte) v1.Hash {
	h, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		panic(err)
	}
	return h
}

// unordered reports three findings of one rule in one file, out of order.
type unordered struct{}

func (unordered) Name() string                                { return "unordered" }
func (unordered) Version() int                                { return 1 }
func (unordered) Match(p string, _ fs.FileMode, _ int64) bool { return p == "app/.env" }
func (unordered) Analyze(context.Context, *analyzer.File) (*analyzer.Result, error) {
	var res analyzer.Result
	for _, line := range []int{3, 1, 2} {
		res.Findings = append(res.Findings, report.Finding{Kind: report.KindSecret, Rule: "r", Severity: report.SeverityHigh,
			Title: "t", Line: line, Excerpt: fmt.Sprintf("line %d", line)})
	}
	return &res, nil
}

// Findings of one rule in one file come out by line, whatever order the
// analyzer (or the walk) produced them in.
func TestFindingsOfOneRuleSortedByLine(t *testing.T) {
	img := scantest.Image(t, scantest.Layer(t, scantest.Reg("app/.env", "a\nb\nc\n")))
	res, err := scan.Image(context.Background(), img, scan.WithAnalyzers(unordered{}))
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, f := range res.Findings {
		lines = append(lines, f.Line)
	}
	if fmt.Sprint(lines) != "[1 2 3]" {
		t.Errorf("findings by line %v; want [1 2 3]", lines)
	}
}

// windowWatcher is a Windowed analyzer that wants only files too large to
// hold (MatchLarge) and records the windows it is given.
type windowWatcher struct {
	mu      sync.Mutex
	largest int
	end     int64 // of the furthest window in the file
}

func (*windowWatcher) Name() string                          { return "window-watcher" }
func (*windowWatcher) Version() int                          { return 1 }
func (*windowWatcher) Match(string, fs.FileMode, int64) bool { return false }
func (*windowWatcher) MatchLarge(p string, _ fs.FileMode, _ int64) bool {
	return strings.HasSuffix(p, ".win")
}
func (w *windowWatcher) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.largest = max(w.largest, len(f.Data))
	w.end = max(w.end, f.Offset+int64(len(f.Data)))
	return nil, nil
}

// A window is a buffer like any other: it fits in the budget's share for
// files, half of it at most, however small the budget; a large budget
// still gets 16 MiB windows. The windows cover the whole file.
func TestWindowsFitTheBudget(t *testing.T) {
	const mib = 1 << 20
	const size = 40 * mib
	img := scantest.Image(t, scantest.Layer(t, scantest.File{Path: "data/big.win", Content: bytes.Repeat([]byte("w"), size)}))
	for _, c := range []struct {
		budget      int64
		wantLargest int
	}{
		{8 * mib, (8*mib - scan.StreamBytes) / 2},
		{12 * mib, (12*mib - scan.StreamBytes) / 2},
		{64 * mib, 16 * mib},
	} {
		t.Run(fmt.Sprint(c.budget>>20, "MiB"), func(t *testing.T) {
			m := newMemory(t, c.budget, 1)
			w := &windowWatcher{}
			if _, err := scan.Image(context.Background(), img, scan.WithMemory(m), scan.WithAnalyzers(w)); err != nil {
				t.Fatal(err)
			}
			if w.largest != c.wantLargest {
				t.Errorf("largest window %d bytes; want %d", w.largest, c.wantLargest)
			}
			if int64(w.largest)+scan.StreamBytes > m.Max() {
				t.Errorf("a window of %d bytes and a stream exceed the budget of %d", w.largest, m.Max())
			}
			if m.Peak() > m.Max() || m.Overdrawn() != 0 {
				t.Errorf("peak %d, overdrawn %d; want within the budget of %d", m.Peak(), m.Overdrawn(), m.Max())
			}
			if w.end != size {
				t.Errorf("windows end at %d; want the whole file, %d bytes", w.end, size)
			}
		})
	}
}

// The default budget is sized by its streams: it allows every one of
// them (a large image cannot hold all the decoders while small ones
// wait), and leaves as much again for file contents.
func TestDefaultBudgetAllowsItsStreams(t *testing.T) {
	cpuStreams := max(4, 2*runtime.GOMAXPROCS(0))
	for _, c := range []struct {
		streams, wantStreams int
		wantMax              int64
	}{
		{0, cpuStreams, 2 * int64(cpuStreams) * scan.StreamBytes},
		{2, 2, 8 << 20},
		{8, 8, 16 * scan.StreamBytes},
	} {
		m := newMemory(t, 0, c.streams)
		if m.Streams() != c.wantStreams || m.Max() != c.wantMax {
			t.Errorf("NewMemory(0, %d): %d streams in %d bytes; want %d in %d", c.streams, m.Streams(), m.Max(), c.wantStreams, c.wantMax)
		}
		if m.Max() != scan.DefaultMemoryBytes(c.streams) {
			t.Errorf("NewMemory(0, %d) is %d bytes, DefaultMemoryBytes says %d", c.streams, m.Max(), scan.DefaultMemoryBytes(c.streams))
		}
	}
}

// A zstd layer holds its frame's window for as long as it streams. With
// a window as large as the budget's share for files, the layer's own
// files must not wait for that charge (they would wait forever, the
// scan hung until its timeout): they are read beyond the budget instead,
// and counted in Overdrawn.
func TestZstdWindowDoesNotStarveItsOwnFiles(t *testing.T) {
	const mib = 1 << 20
	one := strings.Repeat("z", mib)
	layer := scantest.LayerWith(t, scantest.Zstd, scantest.Reg("a/one.bin", one), scantest.Reg("b/two.bin", one))
	m := newMemory(t, 8*mib, 1)
	h := &holder{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := scan.Image(ctx, scantest.Image(t, layer), scan.WithMemory(m), scan.WithAnalyzers(h)); err != nil {
		t.Fatal(err)
	}
	if h.seen["a/one.bin"] != mib || h.seen["b/two.bin"] != mib {
		t.Errorf("analyzer was given %v; want both files whole", h.seen)
	}
	if m.Overdrawn() < 2*mib {
		t.Errorf("overdrawn %d bytes; want at least the two files", m.Overdrawn())
	}
	if m.InUse() != m.Kept() {
		t.Errorf("after the scan %d bytes are charged, %d of them kept for reuse; want only kept ones", m.InUse(), m.Kept())
	}
}

// A zstd frame may declare any window up to the decoder's 128 MiB
// bound, whatever its content: a hostile layer declaring the largest
// one is scanned at the default budget, not held until the timeout.
func TestZstdLayerDeclaringTheLargestWindow(t *testing.T) {
	const mib = 1 << 20
	one := strings.Repeat("w", mib)
	tarball := scantest.Tar(t, scantest.Reg("a/one.bin", one), scantest.Reg("b/two.bin", one))
	layer := scantest.CompressZstd(t, tarball, zstd.WithWindowSize(128*mib))
	if w := scan.ZstdWindow(bufio.NewReader(bytes.NewReader(layer))); w != 128*mib {
		t.Fatalf("declared window %d; want 128 MiB", w)
	}
	m := newMemory(t, 0, 0)
	h := &holder{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img := scantest.Image(t, scantest.RawLayer(layer, sha256Of(tarball), types.OCILayerZStd))
	if _, err := scan.Image(ctx, img, scan.WithMemory(m), scan.WithAnalyzers(h)); err != nil {
		t.Fatal(err)
	}
	if h.seen["a/one.bin"] != mib || h.seen["b/two.bin"] != mib {
		t.Errorf("analyzer was given %v; want both files whole", h.seen)
	}
	if m.Overdrawn() == 0 {
		t.Error("nothing overdrawn; the window alone exceeds the budget")
	}
}
