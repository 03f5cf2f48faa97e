// Package scan is Customs' scanning library: one streaming pass over an
// image's layers that feeds the analyzers it is given and returns what the
// image contains.
//
//	s, err := scan.New(scan.WithAnalyzers(inspect.PackageAnalyzers()...), scan.WithLimits(lim))
//	res, err := s.Image(ctx, img)
//
// The package knows the analyzer interface (pkg/scan/analyzer) and no
// analyzer: the set Customs runs is chosen by pkg/inspect, and a Scanner
// without WithAnalyzers is an error rather than a silent scan for nothing.
//
// Layers are streamed from v1.Layer.Compressed() exactly once each, in
// parallel (WithConcurrency), never written to disk and never extracted.
// The compression is sniffed from the magic bytes (gzip, zstd or plain
// tar); limits are enforced inside the read path as decompressed bytes are
// produced. After the tar end marker both streams are drained so that the
// compressed digest and the diff_id are verified. OCI whiteouts are
// applied bottom-up, and each package is attributed to the layer that
// added it. Symlinks are resolved within the image root, in the final
// filesystem, for the analyzers that read fixed paths (package databases,
// os-release: analyzer.Anchored); the few layers holding a file found
// that way are read a second time, and verified again (links.go).
//
// With WithLayerCache, a layer whose diff_id was scanned before (same
// analyzers, configuration and per-layer limits, and a compressed digest
// seen to decompress to that diff_id) is not fetched at all: its
// contribution is read from the cache, and merged exactly as a streamed
// layer's (cache.go).
//
// Every failure caused by the image itself wraps ErrRejected (limits also
// ErrLimitExceeded) with a message a person understands; registry and
// network failures don't (retry those); a cancelled context returns
// ctx.Err() wrapped.
package scan

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// Analyzer is analyzer.Analyzer, for callers of WithAnalyzers.
type Analyzer = analyzer.Analyzer

// Result is what an image's layers contain.
type Result struct {
	// OS is the distribution from os-release (zero when none).
	OS report.OS
	// Layers are the image's layers, bottom first: digest (compressed),
	// diff_id, size (compressed).
	Layers []report.Layer
	// Packages are sorted by ecosystem, name, version, path (then arch,
	// layer, analyzer, purl).
	Packages []report.Package
	// Findings are sorted by path, kind, rule, title, layer (then
	// severity, line, excerpt, encodings, engine).
	Findings []report.Finding
	// Platform is "os/arch[/variant]" from the config file, "" if unknown.
	Platform string
}

// Limits bound what scanning one image may cost. Exceeding one fails the
// scan with an error matching ErrLimitExceeded (and ErrRejected).
//
// In Limits given to WithLimits, a zero field means "the default" and a
// negative one means "no limit".
type Limits struct {
	// MaxLayers bounds the number of layers. Default 256.
	MaxLayers int
	// MaxConfigBytes bounds the config blob. Default 8 MiB.
	MaxConfigBytes int64
	// MaxUncompressedBytes bounds the decompressed bytes of all layers
	// together (tar headers and padding included). Default 16 GiB.
	MaxUncompressedBytes int64
	// MaxLayerRatio bounds uncompressed:compressed per layer, checked
	// continuously once a layer has produced more than 1 MiB. Default 0:
	// off. gzip cannot exceed about 1032:1, and legitimate layers holding
	// large zero-filled files reach several hundred to one, so the byte
	// limits above are what bound a decompression bomb; set a ratio (e.g.
	// 2000) to stop zstd bombs earlier.
	MaxLayerRatio int64
	// MaxFiles bounds tar entries across the image (all types, whiteouts
	// included). Default 2,000,000.
	MaxFiles int64
	// MaxFileSize bounds any single tar entry's size. Default 4 GiB.
	MaxFileSize int64
	// MaxAnalyzedFileSize bounds the bytes an analyzer may read from one
	// file into memory; larger files are skipped for analysis (not an
	// error). It is also the budget of file bytes held in memory at once
	// across parallel layers. Default 256 MiB.
	MaxAnalyzedFileSize int64
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxLayers:            256,
		MaxConfigBytes:       8 << 20,
		MaxUncompressedBytes: 16 << 30,
		MaxLayerRatio:        0,
		MaxFiles:             2_000_000,
		MaxFileSize:          4 << 30,
		MaxAnalyzedFileSize:  256 << 20,
	}
}

// resolve applies the zero = default, negative = unlimited rules.
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
		MaxConfigBytes:       i64(l.MaxConfigBytes, d.MaxConfigBytes),
		MaxUncompressedBytes: i64(l.MaxUncompressedBytes, d.MaxUncompressedBytes),
		MaxFiles:             i64(l.MaxFiles, d.MaxFiles),
		MaxFileSize:          i64(l.MaxFileSize, d.MaxFileSize),
		MaxAnalyzedFileSize:  i64(l.MaxAnalyzedFileSize, d.MaxAnalyzedFileSize),
		MaxLayerRatio:        l.MaxLayerRatio,
	}
	if out.MaxLayerRatio < 0 {
		out.MaxLayerRatio = 0
	}
	switch {
	case l.MaxLayers == 0:
		out.MaxLayers = d.MaxLayers
	case l.MaxLayers < 0:
		out.MaxLayers = int(^uint(0) >> 1)
	default:
		out.MaxLayers = l.MaxLayers
	}
	return out
}

// Option configures a Scanner (New) or one Image call. An option that
// cannot be honoured fails New with a reason instead of surfacing at the
// first scan.
type Option func(*options) error

type options struct {
	limits         Limits
	analyzers      []analyzer.Analyzer
	analyzersSet   bool
	concurrency    int
	progress       func()
	rejectAbsolute bool
	cache          LayerCache
	cacheErrors    func(error)
	analyzerErrors func(analyzer string, err error)
	budget         *Budget
}

// Budget bounds what several Image calls cost together: the images of one
// index are one job, and per-image limits alone would let 64 platforms each
// spend a full image's budget. Share one Budget between the calls.
type Budget struct {
	// MaxBytes bounds decompressed layer bytes across all the images.
	MaxBytes int64
	// MaxFiles bounds tar entries across all the images.
	MaxFiles int64

	bytes, files atomic.Int64
}

// NewBudget returns a budget of the given totals (≤ 0: unbounded).
func NewBudget(maxBytes, maxFiles int64) *Budget {
	if maxBytes <= 0 {
		maxBytes = math.MaxInt64
	}
	if maxFiles <= 0 {
		maxFiles = math.MaxInt64
	}
	return &Budget{MaxBytes: maxBytes, MaxFiles: maxFiles}
}

// WithBudget charges the scan's bytes and entries to b as well as to the
// image's own limits.
func WithBudget(b *Budget) Option { return func(o *options) error { o.budget = b; return nil } }

// WithLimits sets the limits (see Limits for zero and negative fields).
func WithLimits(l Limits) Option { return func(o *options) error { o.limits = l; return nil } }

// WithAnalyzers sets the analyzers; it is required (the scan library has
// no set of its own: Customs' is inspect.PackageAnalyzers plus the threat
// engines inspect.NewEngine adds). WithAnalyzers() with none scans the
// layers only: limits, digests, whiteouts and the platform. Names must be
// unique and no analyzer nil; New fails otherwise. A later WithAnalyzers
// replaces an earlier one.
func WithAnalyzers(a ...Analyzer) Option {
	return func(o *options) error {
		seen := make(map[string]bool, len(a))
		for _, an := range a {
			if an == nil {
				return errors.New("scan: nil analyzer")
			}
			if seen[an.Name()] {
				return fmt.Errorf("scan: two analyzers are named %q", an.Name())
			}
			seen[an.Name()] = true
		}
		o.analyzers = append([]analyzer.Analyzer(nil), a...)
		o.analyzersSet = true
		return nil
	}
}

// WithConcurrency sets how many layers are streamed in parallel (0: the
// default, min(4, GOMAXPROCS); negative: an error).
func WithConcurrency(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("scan: concurrency %d: want 0 (the default) or more", n)
		}
		o.concurrency = n
		return nil
	}
}

// WithProgress sets a callback called regularly while scanning: at the
// start and end of each layer, every 1024 tar entries and every 16 MiB of
// decompressed data. The calls of one Image call are serialized (never
// concurrent) but may come from different goroutines; a Scanner shared by
// concurrent Image calls calls fn concurrently. fn must be cheap and must
// not block.
func WithProgress(fn func()) Option { return func(o *options) error { o.progress = fn; return nil } }

// WithAbsolutePaths decides what happens to tar entries with an absolute
// name ("/etc/passwd"). By default (true) they are read relative to the
// image root, as docker and containerd extract them: a rooted path cannot
// climb out of the root, and builders write such layers (ko writes
// "/ko-app/<name>" and "/var/run/ko"). With false they are rejected as
// hostile (strict mode). Names escaping the root with ".." are rejected
// either way.
func WithAbsolutePaths(allow bool) Option {
	return func(o *options) error { o.rejectAbsolute = !allow; return nil }
}

// WithLayerCache makes Image reuse what earlier scans found in a layer
// (same diff_id, same analyzers and configuration, same per-layer
// limits) instead of downloading it again, and store what it finds in
// layers it did stream. See LayerCache. A nil c turns the cache off.
func WithLayerCache(c LayerCache) Option { return func(o *options) error { o.cache = c; return nil } }

// WithCacheErrors sets a callback for layer cache failures, which never
// fail a scan: Get and Put errors and entries that cannot be decoded
// (such a layer is streamed as if it were not cached). The calls of one
// Image call are serialized (concurrent Image calls on a shared Scanner
// call fn concurrently); fn must not block.
func WithCacheErrors(fn func(error)) Option {
	return func(o *options) error { o.cacheErrors = fn; return nil }
}

// WithAnalyzerErrors sets a callback for the analyzer failures that skip
// a file (or one window of a large file) instead of failing the scan:
// the "analyzer failed; file skipped" warnings logged through
// zerolog.Ctx, given here with the analyzer's name so that a service can
// count them (a warning in a log nobody reads hides a blind spot). Layers
// are walked in parallel: fn is called concurrently and must not block.
func WithAnalyzerErrors(fn func(analyzer string, err error)) Option {
	return func(o *options) error { o.analyzerErrors = fn; return nil }
}

func buildOptions(opts []Option) (*options, error) {
	o := &options{}
	for _, fn := range opts {
		if fn == nil {
			continue
		}
		if err := fn(o); err != nil {
			return nil, err
		}
	}
	if !o.analyzersSet {
		return nil, errors.New("scan: no analyzers: give WithAnalyzers (inspect.PackageAnalyzers() are Customs' package analyzers; WithAnalyzers() with none scans the layers only)")
	}
	o.limits = o.limits.resolve()
	if o.concurrency == 0 {
		o.concurrency = min(4, runtime.GOMAXPROCS(0))
	}
	return o, nil
}

// Scanner scans images with one configuration: analyzers, limits, layer
// cache. Build it once with New and share it; Image may be called
// concurrently.
type Scanner struct {
	o *options
}

// New checks opts and returns a Scanner. It fails when no WithAnalyzers
// is given, when two analyzers share a name or one is nil, and on a
// negative concurrency. Limits have no invalid values (zero: the default,
// negative: no limit).
func New(opts ...Option) (*Scanner, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Scanner{o: o}, nil
}

// WithBudget returns a Scanner that scans as s does and also charges
// every scan to b (the platforms of one index: see Budget).
func (s *Scanner) WithBudget(b *Budget) *Scanner {
	o := *s.o
	o.budget = b
	return &Scanner{o: &o}
}

// Image scans one image (not an index) and returns what its layers
// contain.
func (s *Scanner) Image(ctx context.Context, img v1.Image) (*Result, error) {
	return newImageScan(s.o).scan(ctx, img)
}

// Image scans one image with a Scanner built from opts for this call; an
// error of New is returned as is. Callers that scan more than one image
// build the Scanner once.
func Image(ctx context.Context, img v1.Image, opts ...Option) (*Result, error) {
	s, err := New(opts...)
	if err != nil {
		return nil, err
	}
	return s.Image(ctx, img)
}
