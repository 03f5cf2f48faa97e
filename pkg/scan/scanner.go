package scan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// imageScan holds the state of one Image call shared by its layer walkers.
type imageScan struct {
	o        *options
	lim      Limits
	seed     maphash.Seed
	sniffers []analyzer.Sniffer // sniffers[i] is o.analyzers[i] as a Sniffer, or nil
	config   *v1.ConfigFile     // for ConfigAnalyzers
	history  []v1.History

	uncompressed atomic.Int64 // decompressed bytes, all layers
	entries      atomic.Int64 // tar entries, all layers
	linkBytes    atomic.Int64 // symlink names kept, all layers (links.go)
	mem          *Memory

	// resolved are the results of files read under the name a symlink
	// gives them (links.go); aliasing is set when some layer wrote
	// through a symlinked directory (layerOut.aliased).
	resolved []resolvedFile
	aliasing bool

	progressMu sync.Mutex

	// cacheFP is the layer cache key suffix, "" when the scan does not
	// use the cache.
	cacheFP    string
	cacheErrMu sync.Mutex
}

func newImageScan(o *options) *imageScan {
	s := &imageScan{o: o, lim: o.limits, seed: maphash.MakeSeed()}
	s.sniffers = make([]analyzer.Sniffer, len(o.analyzers))
	for i, a := range o.analyzers {
		s.sniffers[i], _ = a.(analyzer.Sniffer)
	}
	s.mem = o.memory
	return s
}

func (s *imageScan) progress() {
	if s.o.progress == nil {
		return
	}
	s.progressMu.Lock()
	defer s.progressMu.Unlock()
	s.o.progress()
}

// layerMeta is what is known about a layer before streaming it.
type layerMeta struct {
	index  int
	layer  v1.Layer
	digest v1.Hash
	diffID v1.Hash
	size   int64
}

func (s *imageScan) scan(ctx context.Context, img v1.Image) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	if s.o.cache != nil {
		var ok bool
		if s.cacheFP, ok = cacheFingerprint(s.o); !ok {
			zerolog.Ctx(ctx).Debug().Msg("scan: layer cache not used: an analyzer's output cannot be cached")
		}
	}

	m, err := img.Manifest()
	if err != nil {
		return nil, s.imageErr(ctx, err, "read manifest")
	}
	if m == nil {
		return nil, rejectImage("image has no manifest")
	}
	if m.Config.Size > s.lim.MaxConfigBytes {
		return nil, limitImage("config is %d bytes, more than the limit of %d bytes", m.Config.Size, s.lim.MaxConfigBytes)
	}
	if len(m.Layers) > s.lim.MaxLayers {
		return nil, limitImage("image has %d layers, more than the limit of %d", len(m.Layers), s.lim.MaxLayers)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, s.imageErr(ctx, err, "read config")
	}
	if int64(len(raw)) > s.lim.MaxConfigBytes {
		return nil, limitImage("config is %d bytes, more than the limit of %d bytes", len(raw), s.lim.MaxConfigBytes)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, &RejectedError{LayerIndex: -1, Reason: "invalid config file", Err: err}
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, s.imageErr(ctx, err, "list layers")
	}
	if len(layers) > s.lim.MaxLayers {
		return nil, limitImage("image has %d layers, more than the limit of %d", len(layers), s.lim.MaxLayers)
	}
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return nil, rejectImage("config lists %d diff_ids for %d layers", len(cfg.RootFS.DiffIDs), len(layers))
	}

	s.config, s.history = cfg, cfg.History
	res := &Result{Platform: platform(cfg), Layers: make([]report.Layer, len(layers))}
	metas := make([]layerMeta, len(layers))
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, s.imageErr(ctx, err, fmt.Sprintf("layer #%d: digest", i+1))
		}
		size, err := l.Size()
		if err != nil {
			return nil, s.imageErr(ctx, err, fmt.Sprintf("layer %s (#%d): size", d, i+1))
		}
		metas[i] = layerMeta{index: i, layer: l, digest: d, diffID: cfg.RootFS.DiffIDs[i], size: size}
		res.Layers[i] = report.Layer{Digest: d.String(), DiffID: cfg.RootFS.DiffIDs[i].String(), Size: size}
	}

	outs, err := s.walkAll(ctx, metas)
	if err != nil {
		return nil, err
	}
	if err := s.resolveLinks(ctx, metas, outs); err != nil {
		return nil, err
	}
	if err := s.merge(ctx, res, outs); err != nil {
		return nil, err
	}
	setBuildSteps(res.Layers, s.history, s.o.analyzers)
	return res, nil
}

// walkAll streams the layers, at most o.concurrency at a time.
func (s *imageScan) walkAll(ctx context.Context, metas []layerMeta) ([]*layerOut, error) {
	outs := make([]*layerOut, len(metas))
	err := s.eachLayer(ctx, len(metas), func(ctx context.Context, i int) error {
		var err error
		outs[i], err = s.walkLayer(ctx, &metas[i])
		return err
	})
	if err != nil {
		return nil, err
	}
	return outs, nil
}

// eachLayer runs fn(ctx, 0..n-1), at most o.concurrency at a time; the
// first failure cancels the others.
func (s *imageScan) eachLayer(ctx context.Context, n int, fn func(context.Context, int) error) error {
	errs := make([]error, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.o.concurrency)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			errs[i] = fn(gctx, i)
			return errs[i]
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	// Deterministic choice among concurrent failures: the lowest layer's
	// rejection, else the lowest layer's other failure; cancellations
	// caused by another layer's failure are noise.
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if errors.Is(err, ErrRejected) {
			return err
		}
		if first == nil && !errors.Is(err, context.Canceled) {
			first = err
		}
	}
	if first == nil {
		for _, err := range errs {
			if err != nil {
				return fmt.Errorf("scan: %w", err)
			}
		}
	}
	return first
}

// imageErr classifies a failure to read image metadata.
func (s *imageScan) imageErr(ctx context.Context, err error, what string) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("scan: %w", cerr)
	}
	if isVerifyError(err) {
		return &RejectedError{LayerIndex: -1, Reason: what + ": content does not match its digest", Err: err}
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &te) {
		return &RejectedError{LayerIndex: -1, Reason: what + ": invalid JSON", Err: err}
	}
	return fmt.Errorf("scan: %s: %w", what, err)
}

func platform(cfg *v1.ConfigFile) string {
	if cfg.OS == "" || cfg.Architecture == "" {
		return ""
	}
	p := cfg.OS + "/" + cfg.Architecture
	if cfg.Variant != "" {
		p += "/" + cfg.Variant
	}
	return p
}

func newHasher(h v1.Hash) (hash.Hash, bool) {
	switch h.Algorithm {
	case "sha256":
		return sha256.New(), true
	case "sha512":
		return sha512.New(), true
	}
	return nil, false
}
