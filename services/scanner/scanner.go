// Package scanner consumes scan jobs from JetStream, pulls each image by
// digest with go-containerregistry, scans it and publishes the report.
//
//	svc, err := scanner.New(cfg, scanner.Deps{JetStream: js, Ready: ready, Log: log})
//	err = svc.Run(ctx)
package scanner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/customs-scan/customs/pkg/httpx"
	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/services/scanner/internal/worker"
)

// Config is read from the environment by cmd/scanner (and by `customs up`).
type Config struct {
	// Addr serves /healthz, /readyz and /metrics.
	Addr string `env:"CUSTOMS_SCANNER_ADDR" envDefault:"127.0.0.1:8083"`
	// Workers is how many images this process scans at once.
	Workers int `env:"CUSTOMS_SCANNER_WORKERS" envDefault:"2"`
	// AckWait is how long a job may go without a heartbeat before JetStream
	// gives it to another worker (a dead worker's job is retried after it).
	AckWait time.Duration `env:"CUSTOMS_SCANNER_ACK_WAIT" envDefault:"60s"`
	// MaxDeliver bounds attempts per job; then it goes to the dead-letter stream.
	MaxDeliver int `env:"CUSTOMS_SCANNER_MAX_DELIVER" envDefault:"6"`
	// MaxAckPending bounds jobs in flight across all scanner processes.
	MaxAckPending int `env:"CUSTOMS_SCANNER_MAX_ACK_PENDING" envDefault:"64"`
	// ScanTimeout bounds one job.
	ScanTimeout time.Duration `env:"CUSTOMS_SCAN_TIMEOUT" envDefault:"15m"`
	// Registries, when set, is checked again here (defence in depth against
	// jobs published to NATS by something other than ingest).
	Registries         []string `env:"CUSTOMS_REGISTRIES" envSeparator:","`
	InsecureRegistries []string `env:"CUSTOMS_INSECURE_REGISTRIES" envSeparator:","`
	Limits             LimitsConfig
	// Engine selects detection engines and the verdict policy.
	Engine inspect.EngineConfig
}

// LimitsConfig bounds what one image may cost; exceeding a limit fails the
// scan with the limit's name instead of exhausting the worker.
type LimitsConfig struct {
	MaxManifestBytes     int64 `env:"CUSTOMS_MAX_MANIFEST_BYTES" envDefault:"4194304"`
	MaxUncompressedBytes int64 `env:"CUSTOMS_MAX_UNCOMPRESSED_BYTES"`
	MaxFiles             int64 `env:"CUSTOMS_MAX_FILES"`
	MaxFileSize          int64 `env:"CUSTOMS_MAX_FILE_SIZE"`
	MaxLayers            int   `env:"CUSTOMS_MAX_LAYERS"`
}

// ScanLimits overlays the configured limits on the library defaults.
func (l LimitsConfig) ScanLimits() scan.Limits {
	lim := scan.DefaultLimits()
	if l.MaxUncompressedBytes > 0 {
		lim.MaxUncompressedBytes = l.MaxUncompressedBytes
	}
	if l.MaxFiles > 0 {
		lim.MaxFiles = l.MaxFiles
	}
	if l.MaxFileSize > 0 {
		lim.MaxFileSize = l.MaxFileSize
	}
	if l.MaxLayers > 0 {
		lim.MaxLayers = l.MaxLayers
	}
	return lim
}

// Deps are the connections the scanner uses.
type Deps struct {
	JetStream jetstream.JetStream
	Ready     httpx.Check
	Log       zerolog.Logger
	// RemoteOptions are added to every registry request (auth, transport).
	RemoteOptions []remote.Option
}

// Service is the scanner front door.
type Service struct {
	vulndb *vulndist.Watcher
	cfg    Config
	deps   Deps
	reg    *prometheus.Registry
	worker *worker.Worker
	engine *inspect.Engine
}

// New validates cfg.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.JetStream == nil {
		return nil, errors.New("scanner: JetStream is required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = time.Minute
	}
	if cfg.ScanTimeout <= 0 {
		cfg.ScanTimeout = 15 * time.Minute
	}
	reg := httpx.NewRegistry()
	engine, err := inspect.NewEngine(cfg.Engine)
	if err != nil {
		return nil, fmt.Errorf("scanner: %w", err)
	}
	log := deps.Log.With().Str("service", "scanner").Logger()
	// The vulnerability database follows what is published to JetStream;
	// each scan reads the current one once, so a swap never splits a scan.
	vdb := vulndist.NewWatcher(deps.JetStream, nil, log)
	iopts := engine.Options(scan.WithLimits(cfg.Limits.ScanLimits()))
	iopts.VulnDB = vdb.Current
	iopts.OnPolicyError = func(err error) { log.Warn().Err(err).Msg("policy rule failed to evaluate; skipped") }
	w := worker.New(worker.Config{
		Registries:         cfg.Registries,
		InsecureRegistries: cfg.InsecureRegistries,
		ScanTimeout:        cfg.ScanTimeout,
		MaxManifestBytes:   cfg.Limits.MaxManifestBytes,
		Inspect:            iopts,
	}, deps.JetStream, deps.RemoteOptions, reg, deps.Log)
	return &Service{cfg: cfg, deps: deps, reg: reg, worker: w, engine: engine, vulndb: vdb}, nil
}

// Run creates the durable consumer and works jobs until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	ln, err := httpx.Listen(s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve is Run with the metrics listener given.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	log := s.deps.Log.With().Str("service", "scanner").Logger()
	cons, err := queue.EnsureConsumer(ctx, s.deps.JetStream, queue.JobsStream, jetstream.ConsumerConfig{
		Durable:       queue.ScannerConsumer,
		Description:   "scanner workers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxDeliver:    s.cfg.MaxDeliver,
		MaxAckPending: max(s.cfg.MaxAckPending, s.cfg.Workers),
		// Each slot pulls one job at a time.
		MaxRequestBatch: 1,
		FilterSubject:   queue.JobsSubjectPrefix + ">",
	}, log)
	if err != nil {
		return fmt.Errorf("scanner: create consumer: %w", err)
	}
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customs_scanner_jobs_total", Help: "Scan job deliveries by outcome (ack, nak, term).",
	}, []string{"outcome"})
	s.reg.MustRegister(outcomes)
	qw := &queue.Worker{
		Consumer:   cons,
		Handler:    s.worker.Handle,
		GiveUp:     s.worker.GiveUp,
		Slots:      s.cfg.Workers,
		AckWait:    s.cfg.AckWait,
		MaxDeliver: s.cfg.MaxDeliver,
		Observe:    func(o queue.Outcome) { outcomes.WithLabelValues(o.Action.String()).Inc() },
		Log:        log,
	}
	// Jobs whose every delivery died with its worker are found through the
	// server's max-deliveries advisories, captured in their own stream.
	advCons, err := queue.EnsureConsumer(ctx, s.deps.JetStream, queue.AdvisoriesStream, jetstream.ConsumerConfig{
		Durable:       "scanner-dead-letters",
		Description:   "dead-letters jobs that exhausted MaxDeliver without an answer",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		FilterSubject: "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + queue.JobsStream + ".>",
	}, log)
	if err != nil {
		return fmt.Errorf("scanner: create advisory consumer: %w", err)
	}
	advWorker := &queue.Worker{
		Consumer: advCons, Handler: s.worker.HandleAdvisory, Slots: 1, AckWait: 30 * time.Second,
		Backoff: func(n uint64) time.Duration { return min(queue.Backoff(n), 30*time.Second) },
		Log:     log.With().Str("consumer", "scanner-dead-letters").Logger(),
	}
	checks := map[string]httpx.Check{"engines": s.engine.Ready}
	if s.deps.Ready != nil {
		checks["nats"] = s.deps.Ready
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.vulndb.Run(gctx) })
	g.Go(func() error {
		// Jobs wait until the published database (if any) is loaded: a
		// scan right after start must not report "not checked" when a
		// database exists.
		select {
		case <-s.vulndb.Ready():
		case <-gctx.Done():
			return nil
		}
		return qw.Run(gctx)
	})
	g.Go(func() error { return advWorker.Run(gctx) })
	g.Go(func() error { return httpx.Serve(gctx, ln, httpx.NewRouter(s.reg, checks), log) })
	err = g.Wait()
	return errors.Join(err, s.engine.Close())
}
