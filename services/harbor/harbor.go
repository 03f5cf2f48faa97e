// Package harbor is Customs as a Harbor scanner: an adapter serving
// Harbor's Pluggable Scanner API v1.2 (GET /api/v1/metadata, POST
// /api/v1/scan, GET /api/v1/scan/{id}/report) on top of the same jobs,
// scanners and stored reports as every other source.
//
//	svc, err := harbor.New(cfg, harbor.Deps{JetStream: js, Bucket: bucket, Ready: natsconn.Ready(nc), Log: log})
//	err = svc.Run(ctx)       // or svc.Serve(ctx, ln)
//
// New checks the configuration and builds the service; nothing listens or
// connects yet. Run(ctx) listens on cfg.Addr and serves until ctx ends;
// Serve(ctx, ln) is the same on a listener the caller bound. Both return
// nil once ctx has ended and the service has shut down, or the error that
// stopped it first; ln is closed when Serve returns (the lifecycle of
// ingest, scanner, results and gate).
//
// A scan request becomes a ScanJob (source "harbor") carrying Harbor's
// registry credentials sealed under CUSTOMS_JOB_KEY (pkg/wire), unless
// the digest already has a complete stored report, which then answers.
// Each request is a record in the KV bucket customs-harbor-scans (a day),
// so any adapter replica answers any poll and a restart loses nothing.
// Reports are read where results stores them: the digest's entry in
// customs-verdicts says one exists, the bucket (S3) holds it.
package harbor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/egress"
	harborfmt "github.com/customs-scan/customs/pkg/formats/harbor"
	"github.com/customs-scan/customs/pkg/httpx"
	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/pkg/wire"
)

// ScansBucket is the KV bucket of scan requests, one entry per id.
const ScansBucket = "customs-harbor-scans"

const (
	// scansTTL: Harbor stops polling a scan after 30 minutes and asks
	// again with a new request; a day leaves room for slow pollers.
	scansTTL = 24 * time.Hour
	// sealedFor is how long sealed credentials open: longer than Harbor
	// waits for a report (30 min), after which Harbor has deleted its
	// per-scan robot anyway.
	sealedFor = time.Hour
)

// Config is read from the environment by cmd/harbor-adapter (and by
// `customs up`). A zero field means its default (the envDefault tag), for
// Go callers as for the environment; Validate says what New would refuse.
type Config struct {
	Addr string `env:"CUSTOMS_HARBOR_ADDR" envDefault:"127.0.0.1:8084"`
	// Token is what Harbor's scanner registration sends as
	// "Authorization: Bearer <token>". Required unless Auth is "off".
	Token string `env:"CUSTOMS_HARBOR_TOKEN"`
	// Auth "off" serves the API without a token. It must be said
	// explicitly (nothing is open by default) and is warned about every
	// minute while it lasts.
	Auth string `env:"CUSTOMS_HARBOR_AUTH"`
	// JobKey seals the registry credentials of each scan request into its
	// job; the scanners hold the same key (at least 32 bytes). Required.
	JobKey string `env:"CUSTOMS_JOB_KEY"`
	// Registries and InsecureRegistries are the hosts a scan request may
	// name (the scanners' allowlist, checked again by them); any other is
	// refused with 422. Insecure ones are pulled over plain HTTP.
	Registries         []string `env:"CUSTOMS_REGISTRIES" envSeparator:","`
	InsecureRegistries []string `env:"CUSTOMS_INSECURE_REGISTRIES" envSeparator:","`
	// RefreshAfter is the Refresh-After a pending report is answered with
	// (whole seconds, 1 to 127: Harbor reads it as an int8).
	RefreshAfter time.Duration `env:"CUSTOMS_HARBOR_REFRESH_AFTER" envDefault:"5s"`
}

// withDefaults fills the fields a Go caller left zero with the values the
// env tags give the command (TestDefaultsAgree keeps them equal).
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8084"
	}
	if c.RefreshAfter == 0 {
		c.RefreshAfter = 5 * time.Second
	}
	return c
}

// Validate refuses what New would: an API open to anyone without saying
// so explicitly, no usable job key, a Refresh-After Harbor cannot read.
// Zero values other than the job key are fine (they mean the defaults).
// cmd/harbor-adapter calls it before dialling NATS.
func (c Config) Validate() error {
	off, err := apiauth.Switch("CUSTOMS_HARBOR_AUTH", c.Auth)
	if err != nil {
		return fmt.Errorf("harbor: %w", err)
	}
	switch {
	case c.Token == "" && !off:
		return errors.New("harbor: CUSTOMS_HARBOR_TOKEN is not set: set it to the token Harbor's scanner registration sends " +
			"(Authorization: Bearer), or set CUSTOMS_HARBOR_AUTH=off to serve the scanner API to anyone who can reach it")
	case c.Token != "" && off:
		return errors.New("harbor: CUSTOMS_HARBOR_AUTH=off and CUSTOMS_HARBOR_TOKEN are both set; unset one")
	}
	if c.JobKey == "" {
		return errors.New("harbor: CUSTOMS_JOB_KEY is not set: Harbor's registry credentials travel to the scanners sealed " +
			"under it (at least 32 bytes; give the scanners the same key)")
	}
	if _, err := wire.NewJobKey(c.JobKey); err != nil {
		return fmt.Errorf("harbor: CUSTOMS_JOB_KEY: %w", err)
	}
	if r := c.RefreshAfter; r != 0 && (r < time.Second || r > 127*time.Second || r%time.Second != 0) {
		return fmt.Errorf("harbor: CUSTOMS_HARBOR_REFRESH_AFTER=%s: want whole seconds from 1s to 127s (0: the default)", r)
	}
	return nil
}

// S3Config is the bucket results stores reports in (the same variables as
// results'; the adapter only reads).
type S3Config struct {
	Bucket          string `env:"CUSTOMS_S3_BUCKET" envDefault:"customs-reports"`
	Region          string `env:"CUSTOMS_S3_REGION" envDefault:"us-east-1"`
	Endpoint        string `env:"CUSTOMS_S3_ENDPOINT"`
	PathStyle       bool   `env:"CUSTOMS_S3_PATH_STYLE" envDefault:"true"`
	AccessKeyID     string `env:"CUSTOMS_S3_ACCESS_KEY_ID"`
	SecretAccessKey string `env:"CUSTOMS_S3_SECRET_ACCESS_KEY"`
}

// Store converts the env config to the store package's.
func (c S3Config) Store() store.S3Config {
	return store.S3Config{
		Bucket: c.Bucket, Region: c.Region, Endpoint: c.Endpoint, PathStyle: c.PathStyle,
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey,
	}
}

// SBOMFunc writes the SBOM document of r in mediaType (an sbom_media_type
// such as "application/spdx+json") as one JSON object.
type SBOMFunc func(w io.Writer, r *report.Report, mediaType string) error

// Deps are the connections the adapter uses.
type Deps struct {
	// Replicas of the buckets the adapter creates (CUSTOMS_NATS_REPLICAS).
	Replicas  int
	JetStream jetstream.JetStream
	// Bucket is results' report bucket, read only.
	Bucket store.Bucket
	// Ready reports the NATS connection (natsconn.Ready).
	Ready httpx.Check
	Log   zerolog.Logger
	// SBOM renders SBOM documents; nil: the adapter has no sbom
	// capability (not advertised; asked for anyway: 501).
	SBOM SBOMFunc
	// SBOMMediaTypes are the sbom_media_type values SBOM writes; empty:
	// application/spdx+json (the only one Harbor asks for).
	SBOMMediaTypes []string
}

// Service is the adapter's front door.
type Service struct {
	cfg     Config
	deps    Deps
	log     zerolog.Logger
	key     *wire.JobKey
	allowed *egress.Policy
	// token is the SHA-256 of cfg.Token; nil: authentication off.
	token    []byte
	sbom     SBOMFunc
	sbomMTs  []string
	version  string
	handler  http.Handler
	bound    atomic.Pointer[buckets]
	requests *prometheus.CounterVec
	reports  *prometheus.CounterVec
	// authOffEvery is how often "authentication is off" is logged.
	authOffEvery time.Duration
}

// buckets are the JetStream resources Serve binds.
type buckets struct {
	scans    jetstream.KeyValue
	verdicts jetstream.KeyValue
	vulndb   vulndist.Buckets
}

// New fills cfg's zero fields with the defaults, validates it and builds
// the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.JetStream == nil || deps.Bucket == nil {
		return nil, errors.New("harbor: JetStream and Bucket are required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, _ := wire.NewJobKey(cfg.JobKey)
	log := deps.Log.With().Str("service", "harbor").Logger()
	s := &Service{
		cfg: cfg, deps: deps, log: log, key: key,
		allowed:      egress.NewPolicy(egress.WithRegistries(cfg.Registries...), egress.WithInsecureRegistries(cfg.InsecureRegistries...)),
		token:        tokenHash(cfg.Token),
		sbom:         deps.SBOM,
		version:      version(),
		authOffEvery: time.Minute,
	}
	if s.sbom != nil {
		s.sbomMTs = slices.Clone(deps.SBOMMediaTypes)
		if len(s.sbomMTs) == 0 {
			s.sbomMTs = []string{harborfmt.SBOMSPDX}
		}
	}
	reg := httpx.NewRegistry()
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customs_harbor_scan_requests_total",
		Help: "Harbor scan requests by result (queued: a job was published, stored: a stored report answers, refused: 4xx/5xx).",
	}, []string{"result"})
	s.reports = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customs_harbor_report_requests_total",
		Help: "Harbor report polls by answer (200 report, 302 pending, 404, 500 failed scan, other errors).",
	}, []string{"status"})
	reg.MustRegister(s.requests, s.reports)
	checks := map[string]httpx.Check{"s3": deps.Bucket.Ping, "buckets": s.boundReady}
	if deps.Ready != nil {
		checks["nats"] = deps.Ready
	}
	router := httpx.NewRouter(reg, checks)
	s.mount(router)
	s.handler = router
	return s, nil
}

func (s *Service) boundReady(context.Context) error {
	if s.bound.Load() == nil {
		return errors.New("JetStream buckets not bound yet")
	}
	return nil
}

// Handler is the scanner API plus health and metrics.
func (s *Service) Handler() http.Handler { return s.handler }

// Run listens on cfg.Addr and serves until ctx ends (Serve on a listener
// of its own).
func (s *Service) Run(ctx context.Context) error {
	ln, err := httpx.Listen(s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve binds the buckets and serves the scanner API on ln until ctx
// ends; ln is closed when it returns. The listener serves at once: until
// the buckets are bound, scan requests get 500 and polls 302.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	g, gctx := errgroup.WithContext(ctx)
	if s.token == nil {
		g.Go(func() error { s.warnAuthOff(gctx); return nil })
	}
	g.Go(func() error { return httpx.Serve(gctx, ln, s.handler, s.log) })
	g.Go(func() error {
		b, err := s.bind(gctx)
		if err != nil {
			if gctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("harbor: %w", err)
		}
		s.bound.Store(b)
		s.log.Info().Str("addr", ln.Addr().String()).Msg("harbor scanner adapter ready")
		return nil
	})
	return g.Wait()
}

func (s *Service) bind(ctx context.Context) (*buckets, error) {
	js, replicas := s.deps.JetStream, max(s.deps.Replicas, 1)
	scans, err := queue.Ensure(ctx, "kv "+ScansBucket, s.log, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      ScansBucket,
			Description: "Harbor scan requests by id: what was asked and when (never credentials)",
			TTL:         scansTTL,
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
	})
	if err != nil {
		return nil, err
	}
	verdicts, err := queue.Ensure(ctx, "kv "+quarantine.VerdictsBucket, s.log, func(ctx context.Context) (jetstream.KeyValue, error) {
		return quarantine.EnsureVerdicts(ctx, js, replicas)
	})
	if err != nil {
		return nil, err
	}
	vdb, err := queue.Ensure(ctx, "vulnerability database buckets", s.log, func(ctx context.Context) (vulndist.Buckets, error) {
		return vulndist.EnsureReplicas(ctx, js, replicas)
	})
	if err != nil {
		return nil, err
	}
	return &buckets{scans: scans, verdicts: verdicts, vulndb: vdb}, nil
}

// warnAuthOff repeats the warning so an "off" meant for a quick test does
// not go unnoticed in the logs for months.
func (s *Service) warnAuthOff(ctx context.Context) {
	t := time.NewTicker(s.authOffEvery)
	defer t.Stop()
	for {
		s.log.Warn().Str("setting", "CUSTOMS_HARBOR_AUTH=off").
			Msg("scanner API authentication is off: anyone who can reach it can queue scans and read reports; set CUSTOMS_HARBOR_TOKEN")
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refreshAfter is the Refresh-After header value.
func (s *Service) refreshAfter() string {
	return strconv.Itoa(int(s.cfg.RefreshAfter / time.Second))
}

// version is the adapter's build: the module version of a tagged build,
// else the VCS revision, else "dev" (as reports' scanner.version).
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, st := range bi.Settings {
		if st.Key == "vcs.revision" && len(st.Value) >= 12 {
			return "dev-" + st.Value[:12]
		}
	}
	return "dev"
}
