// Package scanner consumes scan jobs from JetStream, pulls each image by
// digest with go-containerregistry, scans it and publishes the report.
//
//	svc, err := scanner.New(cfg, scanner.Deps{JetStream: js, Ready: ready, Log: log})
//	err = svc.Run(ctx)       // or svc.Serve(ctx, ln)
//
// New checks the configuration and builds the service; nothing listens or
// connects yet. Run(ctx) listens on cfg.Addr and serves until ctx ends;
// Serve(ctx, ln) is the same on a listener the caller bound (`customs up`
// binds every listener before it starts any service). Both return nil once
// ctx has ended and the service has shut down, or the error that stopped it
// first; ln is closed when Serve returns. ingest, scanner and results share
// this lifecycle.
//
// Serve binds the JetStream resources (consumers, buckets), then works jobs
// (internal/jobs, through queue.Worker) and serves health and metrics.
package scanner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/customs-scan/customs/pkg/egress"
	"github.com/customs-scan/customs/pkg/httpx"
	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/layercache"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/regauth"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/pkg/wire"
	"github.com/customs-scan/customs/services/scanner/internal/jobs"
)

// ScannedBucket is the KV bucket of already scanned jobs.
const ScannedBucket = "customs-scanned"

// Config is read from the environment by cmd/scanner (and by `customs up`).
// A zero field means its default (the envDefault tag), for Go callers as
// for the environment; Validate says what New would refuse.
type Config struct {
	// Addr serves /healthz, /readyz and /metrics.
	Addr string `env:"CUSTOMS_SCANNER_ADDR" envDefault:"127.0.0.1:8083"`
	// Workers is how many images this process scans at once. More than
	// the cores a scanner usually gets: a job spends much of its time
	// waiting (registry, NATS, the layer cache), and a small image pulled
	// while large ones occupy every worker waits for one of them to finish
	// (BenchmarkBurst in services/customs measures both). What bounds the
	// CPU and memory of the decoders is the layer concurrency per image
	// (pkg/scan) and the process-wide Memory budget and Streams.
	Workers int `env:"CUSTOMS_SCANNER_WORKERS" envDefault:"4"`
	// Memory is the byte budget all of this process's scans share (file
	// contents, windows of large files, layer streams, archive buffers:
	// scan.Memory); cmd/scanner sets GOMEMLIMIT from it unless the
	// environment does. 0: twice what the streams' buffers take
	// (scan.DefaultMemoryBytes: 9.5 MiB for 4 streams).
	Memory int64 `env:"CUSTOMS_SCANNER_MEMORY"`
	// Streams bounds the layers this process downloads and decompresses
	// at once, across its jobs (Workers bounds the jobs): a job waiting
	// for a slow registry leaves the decoders to others. 0: twice the
	// CPUs, at least 4.
	Streams int `env:"CUSTOMS_SCANNER_STREAMS"`
	// AckWait is how long a job may go without a heartbeat before JetStream
	// gives it to another worker (a dead worker's job is retried after it).
	AckWait time.Duration `env:"CUSTOMS_SCANNER_ACK_WAIT" envDefault:"60s"`
	// MaxDeliver bounds attempts per job; then it goes to the dead-letter stream.
	MaxDeliver int `env:"CUSTOMS_SCANNER_MAX_DELIVER" envDefault:"6"`
	// MaxAckPending bounds jobs in flight across all scanner processes.
	MaxAckPending int `env:"CUSTOMS_SCANNER_MAX_ACK_PENDING" envDefault:"64"`
	// ScannedTTL is how long a scanned registry/repository@digest is
	// remembered: a job for it within that time (a registry retrying a
	// webhook after JetStream's duplicate window, EventBridge's 24 h) is
	// acknowledged without a second scan. New vulnerability data reaches
	// such images by re-matching, not re-scanning. 0 means the default
	// (7 days); negative turns it off.
	ScannedTTL time.Duration `env:"CUSTOMS_SCANNED_TTL" envDefault:"168h"`
	// ScanTimeout bounds one job.
	ScanTimeout time.Duration `env:"CUSTOMS_SCAN_TIMEOUT" envDefault:"15m"`
	// Registries are checked again here (defence in depth against jobs
	// published to NATS by something other than ingest); none means the
	// scanner pulls nothing.
	Registries         []string `env:"CUSTOMS_REGISTRIES" envSeparator:","`
	InsecureRegistries []string `env:"CUSTOMS_INSECURE_REGISTRIES" envSeparator:","`
	// RedirectHosts are the other hosts registries may send the scanner to:
	// blob storage (S3, GCS, a CDN) and token realms on a separate host.
	// They never receive registry credentials.
	RedirectHosts []string `env:"CUSTOMS_REGISTRY_REDIRECT_HOSTS" envSeparator:","`
	// TokenHosts are token-realm hosts trusted with the registries'
	// credentials (auth.docker.io for Docker Hub); none by default.
	TokenHosts []string `env:"CUSTOMS_REGISTRY_TOKEN_HOSTS" envSeparator:","`
	// AllowForeignLayers fetches foreign (non-distributable) layers from the
	// URLs their descriptor lists, if those hosts are allowed; otherwise
	// such layers come from the registry or the scan fails.
	AllowForeignLayers bool `env:"CUSTOMS_ALLOW_FOREIGN_LAYERS"`
	// RegistryAuthFile maps registry hosts to pull credentials (see
	// pkg/regauth): consulted before Deps.Keychain, each host getting
	// exactly its own entry. "" means none.
	RegistryAuthFile string `env:"CUSTOMS_REGISTRY_AUTH"`
	// PullFrom redirects pulls, as name=host[:port] pairs: a job naming
	// registry name is pulled from host[:port] instead (the quarantine
	// gate fronts a registry; scanners pull from its upstream so that the
	// gate's checks never block the scan that decides them). Reports still
	// name the job's registry. Both must be allowlisted; the target's
	// listing (CUSTOMS_REGISTRIES or CUSTOMS_INSECURE_REGISTRIES) decides
	// HTTPS or plain HTTP, and the name's credentials are used for it.
	PullFrom []string `env:"CUSTOMS_SCANNER_PULL_FROM" envSeparator:","`
	Limits   LimitsConfig
	// Engine selects detection engines and the verdict policy.
	Engine     inspect.EngineConfig
	LayerCache LayerCacheConfig
	// Signing signs report events; results checks them with the same key.
	Signing wire.SigningConfig
	// JobKey opens the registry credentials sealed into jobs (the Harbor
	// adapter's, which holds the same key; at least 32 bytes). Unset: such
	// jobs fail, saying so; jobs without sealed credentials are unaffected.
	JobKey string `env:"CUSTOMS_JOB_KEY"`
}

// LayerCacheConfig sizes the per-layer result cache shared by all
// scanners (a JetStream Object Store): an image whose base layers were
// scanned before only downloads and analyzes its new layers.
type LayerCacheConfig struct {
	// TTL of an entry; 0 means the default, negative turns the cache off.
	TTL time.Duration `env:"CUSTOMS_LAYER_CACHE_TTL" envDefault:"168h"`
	// MaxBytes bounds the bucket; when full, new entries are not stored
	// until old ones expire (scans go on uncached).
	MaxBytes int64 `env:"CUSTOMS_LAYER_CACHE_MAX_BYTES" envDefault:"1073741824"`
}

// LimitsConfig bounds what one image may cost; exceeding a limit fails the
// scan with the limit's name instead of exhausting the worker.
type LimitsConfig struct {
	MaxManifestBytes     int64 `env:"CUSTOMS_MAX_MANIFEST_BYTES" envDefault:"4194304"`
	MaxUncompressedBytes int64 `env:"CUSTOMS_MAX_UNCOMPRESSED_BYTES"`
	MaxFiles             int64 `env:"CUSTOMS_MAX_FILES"`
	MaxFileSize          int64 `env:"CUSTOMS_MAX_FILE_SIZE"`
	MaxLayers            int   `env:"CUSTOMS_MAX_LAYERS"`
	// MaxJobUncompressedBytes and MaxJobFiles bound all platforms of an
	// index together (default: one image's limits).
	MaxJobUncompressedBytes int64 `env:"CUSTOMS_MAX_JOB_UNCOMPRESSED_BYTES"`
	MaxJobFiles             int64 `env:"CUSTOMS_MAX_JOB_FILES"`
}

// JobLimits returns the per-job totals: configured, else one image's.
func (l LimitsConfig) JobLimits() (maxBytes, maxFiles int64) {
	lim := l.ScanLimits()
	maxBytes, maxFiles = lim.MaxUncompressedBytes, lim.MaxFiles
	if l.MaxJobUncompressedBytes > 0 {
		maxBytes = l.MaxJobUncompressedBytes
	}
	if l.MaxJobFiles > 0 {
		maxFiles = l.MaxJobFiles
	}
	return maxBytes, maxFiles
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

// withDefaults fills the fields a Go caller left zero with the values the
// env tags give the commands (TestDefaultsAgree keeps them equal).
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8083"
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.AckWait == 0 {
		c.AckWait = time.Minute
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 6
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 64
	}
	if c.ScannedTTL == 0 {
		c.ScannedTTL = 7 * 24 * time.Hour
	}
	if c.ScanTimeout == 0 {
		c.ScanTimeout = 15 * time.Minute
	}
	if c.Limits.MaxManifestBytes == 0 {
		c.Limits.MaxManifestBytes = 4 << 20
	}
	if c.Engine.ClamdMaxStreamBytes == 0 {
		c.Engine.ClamdMaxStreamBytes = 25 << 20
	}
	if c.Engine.DBStaleAfter == 0 {
		c.Engine.DBStaleAfter = 72 * time.Hour
	}
	if c.Engine.MaxSecretFileBytes == 0 {
		c.Engine.MaxSecretFileBytes = 64 << 20
	}
	if c.LayerCache.TTL == 0 {
		c.LayerCache.TTL = 7 * 24 * time.Hour
	}
	if c.LayerCache.MaxBytes == 0 {
		c.LayerCache.MaxBytes = 1 << 30
	}
	if c.Signing.Mode == "" {
		c.Signing.Mode = "on"
	}
	return c
}

// Validate refuses what New would: report signing on without a usable key
// (or a mode other than on/off), and negative counts, durations or sizes
// where negative means nothing (ScannedTTL and LayerCache.TTL: negative
// turns them off). Zero values are fine (they mean the defaults).
// cmd/scanner calls it before dialling NATS.
func (c Config) Validate() error {
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"CUSTOMS_SCANNER_WORKERS", int64(c.Workers)},
		{"CUSTOMS_SCANNER_MEMORY", c.Memory},
		{"CUSTOMS_SCANNER_STREAMS", int64(c.Streams)},
		{"CUSTOMS_SCANNER_ACK_WAIT", int64(c.AckWait)},
		{"CUSTOMS_SCANNER_MAX_ACK_PENDING", int64(c.MaxAckPending)},
		{"CUSTOMS_SCAN_TIMEOUT", int64(c.ScanTimeout)},
		{"CUSTOMS_MAX_MANIFEST_BYTES", c.Limits.MaxManifestBytes},
	} {
		if n.v < 0 {
			return fmt.Errorf("scanner: %s is negative: want a positive value (0: the default)", n.name)
		}
	}
	if _, err := c.Signing.Signer(); err != nil {
		return fmt.Errorf("scanner: %w", err)
	}
	if _, err := scan.NewMemory(c.Memory, c.Streams); err != nil {
		return fmt.Errorf("scanner: CUSTOMS_SCANNER_MEMORY: %w", err)
	}
	if _, err := c.jobKey(); err != nil {
		return err
	}
	if _, err := c.pullFrom(); err != nil {
		return err
	}
	if _, err := regauth.Load(c.RegistryAuthFile); err != nil {
		return fmt.Errorf("scanner: CUSTOMS_REGISTRY_AUTH: %w", err)
	}
	return nil
}

// jobKey is the key opening sealed job credentials; nil when unset.
func (c Config) jobKey() (*wire.JobKey, error) {
	if c.JobKey == "" {
		return nil, nil
	}
	k, err := wire.NewJobKey(c.JobKey)
	if err != nil {
		return nil, fmt.Errorf("scanner: CUSTOMS_JOB_KEY: %w", err)
	}
	return k, nil
}

// pullFrom reads PullFrom into name → target (normalised hosts).
func (c Config) pullFrom() (map[string]string, error) {
	if len(c.PullFrom) == 0 {
		return nil, nil
	}
	allowed := egress.NewPolicy(egress.WithRegistries(c.Registries...), egress.WithInsecureRegistries(c.InsecureRegistries...))
	out := map[string]string{}
	for _, pair := range c.PullFrom {
		from, to, ok := strings.Cut(pair, "=")
		from, to = egress.NormalizeHost(from), egress.NormalizeHost(to)
		switch {
		case !ok || from == "" || to == "" || strings.ContainsAny(from+to, "/ =@"):
			return nil, fmt.Errorf("scanner: CUSTOMS_SCANNER_PULL_FROM: %q: want name=host[:port]", pair)
		case from == to:
			return nil, fmt.Errorf("scanner: CUSTOMS_SCANNER_PULL_FROM: %q: pulls from itself", pair)
		case out[from] != "":
			return nil, fmt.Errorf("scanner: CUSTOMS_SCANNER_PULL_FROM: %s is redirected twice", from)
		case !allowed.Registry(from):
			return nil, fmt.Errorf("scanner: CUSTOMS_SCANNER_PULL_FROM: %s is not an allowlisted registry (CUSTOMS_REGISTRIES, CUSTOMS_INSECURE_REGISTRIES): no job naming it would be pulled", from)
		case !allowed.Registry(to):
			return nil, fmt.Errorf("scanner: CUSTOMS_SCANNER_PULL_FROM: %s (for %s) is not an allowlisted registry: list it in CUSTOMS_REGISTRIES (HTTPS) or CUSTOMS_INSECURE_REGISTRIES (plain HTTP)", to, from)
		}
		out[from] = to
	}
	return out, nil
}

// Deps are the connections the scanner uses.
type Deps struct {
	JetStream jetstream.JetStream
	Ready     httpx.Check
	Log       zerolog.Logger
	// RemoteOptions are added to every registry request (retries, user
	// agent); a transport given here is replaced by the egress transport.
	// Credentials given here (remote.WithAuth) must not be combined with
	// Keychain or Config.RegistryAuthFile.
	RemoteOptions []remote.Option
	// Keychain is consulted for registries the CUSTOMS_REGISTRY_AUTH file
	// does not name (the commands pass authn.DefaultKeychain: the Docker
	// config and credential helpers, bound to exact hosts). nil: only the
	// file's.
	Keychain authn.Keychain
	// Replicas of every bucket the scanner creates (CUSTOMS_NATS_REPLICAS).
	Replicas int
	// MemoryLimit, when set, is called with the scans' memory budget once
	// the engine is built and again after every vulnerability database
	// swap, when what the process keeps has changed: cmd/scanner, whose
	// process is this service alone, sets GOMEMLIMIT from it there
	// (scan.SetMemoryLimit). nil: nothing (customs up, tests).
	MemoryLimit func(*scan.Memory)
}

// Service is the scanner front door.
type Service struct {
	vulndb *vulndist.Watcher
	cache  *cacheSlot
	cfg    Config
	deps   Deps
	reg    *prometheus.Registry
	jobs   *jobs.Handler
	engine *inspect.Engine
	signer *wire.Signer
}

// New fills cfg's zero fields with the defaults, validates it and builds
// the service: the engine (analyzers, policy, the scanner they run in) and
// the job handler.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.JetStream == nil {
		return nil, errors.New("scanner: JetStream is required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	signer, err := cfg.Signing.Signer()
	if err != nil {
		return nil, fmt.Errorf("scanner: %w", err)
	}
	reg := httpx.NewRegistry()
	cache := &cacheSlot{}
	cacheErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "customs_scanner_layer_cache_errors_total", Help: "Layer cache reads and writes that failed (the layer was scanned instead).",
	})
	// An analyzer failing on a file skips that file: logged (the job's
	// logger is on the scan's context) and counted, so that a blind spot
	// shows on a dashboard, not only in logs.
	analyzerErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customs_scanner_analyzer_errors_total",
		Help: "Files (or windows of large files) an analyzer failed on and skipped, by analyzer; each is logged as a warning with the job, layer and path.",
	}, []string{"analyzer"})
	// One budget for the whole process, shared by all Workers: Workers
	// says how many images are in flight (well above the core count), the
	// budget how many layers are decoded at once and with how much memory,
	// so that a few large images neither starve small ones of decoders nor
	// exhaust the pod's memory.
	mem, err := scan.NewMemory(cfg.Memory, cfg.Streams)
	if err != nil {
		return nil, fmt.Errorf("scanner: %w", err)
	}
	memInUse := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "customs_scanner_memory_in_use_bytes",
		Help: "Bytes charged to the scan memory budget now (file contents, windows, layer streams, archive buffers, buffers kept for reuse).",
	}, func() float64 { return float64(mem.InUse()) })
	memMax := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "customs_scanner_memory_budget_bytes",
		Help: "The scan memory budget (CUSTOMS_SCANNER_MEMORY).",
	}, func() float64 { return float64(mem.Max()) })
	memOver := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "customs_scanner_memory_overdrawn_bytes_total",
		Help: "Bytes held beyond the scan memory budget: archive buffers it could not grant (a walk inside a file never waits nor skips content) and the part of files read whole that exceeds its share for files.",
	}, func() float64 { return float64(mem.Overdrawn()) })
	reg.MustRegister(memInUse, memMax, memOver)
	engine, err := inspect.NewEngine(cfg.Engine, scan.WithLimits(cfg.Limits.ScanLimits()), scan.WithMemory(mem),
		scan.WithLayerCache(cache), scan.WithCacheErrors(func(error) { cacheErrors.Inc() }),
		scan.WithAnalyzerErrors(func(name string, _ error) { analyzerErrors.WithLabelValues(name).Inc() }))
	if err != nil {
		return nil, fmt.Errorf("scanner: %w", err)
	}
	reg.MustRegister(cacheErrors, analyzerErrors)
	// The service field is added once, here; everything below logs through it.
	log := deps.Log.With().Str("service", "scanner").Logger()
	deps.Log = log
	// The vulnerability database follows what is published to JetStream;
	// each scan reads the current one once, so a swap never splits a scan.
	vdb := vulndist.NewWatcher(deps.JetStream, nil, log)
	if deps.MemoryLimit != nil {
		deps.MemoryLimit(mem)
		vdb.OnSwap = func(context.Context, *vulndb.DB, *vulndb.DB) { deps.MemoryLimit(mem) }
	}
	iopts := engine.Options()
	iopts.VulnDB = vdb.Current
	iopts.JobMaxBytes, iopts.JobMaxFiles = cfg.Limits.JobLimits()
	iopts.OnPolicyError = func(err error) { log.Warn().Err(err).Msg("policy rule failed to evaluate; skipped") }
	pullFrom, err := cfg.pullFrom()
	if err != nil {
		return nil, err
	}
	keychain, err := registryKeychain(cfg.RegistryAuthFile, deps.Keychain, log)
	if err != nil {
		return nil, err
	}
	jobKey, err := cfg.jobKey()
	if err != nil {
		return nil, err
	}
	h := jobs.New(jobs.Config{
		Registries:         cfg.Registries,
		InsecureRegistries: cfg.InsecureRegistries,
		RedirectHosts:      cfg.RedirectHosts,
		TokenHosts:         cfg.TokenHosts,
		AllowForeignLayers: cfg.AllowForeignLayers,
		PullFrom:           pullFrom,
		Keychain:           keychain,
		JobKey:             jobKey,
		ScanTimeout:        cfg.ScanTimeout,
		MaxManifestBytes:   cfg.Limits.MaxManifestBytes,
		Inspect:            iopts,
	}, deps.JetStream, deps.RemoteOptions, reg, deps.Log)
	return &Service{cfg: cfg, deps: deps, reg: reg, jobs: h, engine: engine, vulndb: vdb, cache: cache, signer: signer}, nil
}

// registryKeychain is the file's keychain with fallback behind it; nil
// when there is neither (credentials, if any, come from RemoteOptions).
func registryKeychain(file string, fallback authn.Keychain, log zerolog.Logger) (authn.Keychain, error) {
	if file == "" && fallback == nil {
		return nil, nil
	}
	f, err := regauth.Load(file)
	if err != nil {
		return nil, fmt.Errorf("scanner: CUSTOMS_REGISTRY_AUTH: %w", err)
	}
	if file != "" {
		log.Info().Str("file", file).Strs("hosts", f.Hosts()).Msg("registry credentials loaded")
	}
	var opts []regauth.KeychainOption
	if fallback != nil {
		opts = append(opts, regauth.WithFallback(fallback))
	}
	return f.Keychain(opts...), nil
}

// cacheSlot is the layer cache once Serve has bound the object store;
// until then (or when turned off) every layer is a miss.
type cacheSlot struct {
	p atomic.Pointer[layercache.ObjectStore]
}

func (c *cacheSlot) set(s *layercache.ObjectStore) { c.p.Store(s) }

// cacheTimeout bounds one cache read or write: they run inside the
// scan's context (deadline: the scan timeout), and a reply lost with a
// stream leader must cost a cache miss, not the scan.
const cacheTimeout = 10 * time.Second

func (c *cacheSlot) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if s := c.p.Load(); s != nil {
		ctx, cancel := context.WithTimeout(ctx, cacheTimeout)
		defer cancel()
		return s.Get(ctx, key)
	}
	return nil, false, nil
}

func (c *cacheSlot) Put(ctx context.Context, key string, data []byte) error {
	if s := c.p.Load(); s != nil {
		ctx, cancel := context.WithTimeout(ctx, cacheTimeout)
		defer cancel()
		return s.Put(ctx, key, data)
	}
	return nil
}

// Run listens on cfg.Addr and works jobs until ctx ends (Serve on a
// listener of its own).
func (s *Service) Run(ctx context.Context) error {
	ln, err := httpx.Listen(s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve creates the durable consumers and buckets, works jobs and serves
// health and metrics on ln until ctx ends; ln is closed when it returns.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	log := s.deps.Log
	if s.cfg.ScannedTTL > 0 {
		kv, err := queue.Ensure(ctx, "kv "+ScannedBucket, log, func(ctx context.Context) (jetstream.KeyValue, error) {
			return s.deps.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket:      ScannedBucket,
				Description: "registry/repository@digest already scanned (duplicate webhooks beyond the duplicate window)",
				TTL:         s.cfg.ScannedTTL,
				Storage:     jetstream.FileStorage,
				Replicas:    max(s.deps.Replicas, 1),
			})
		})
		if err != nil {
			return fmt.Errorf("scanner: %w", err)
		}
		s.jobs.SetScanned(kv)
	}
	if s.cfg.LayerCache.TTL > 0 {
		objs, err := queue.Ensure(ctx, "object store "+layercache.DefaultBucket, log, func(ctx context.Context) (*layercache.ObjectStore, error) {
			return layercache.NewObjectStore(ctx, s.deps.JetStream, layercache.Config{
				TTL: s.cfg.LayerCache.TTL, MaxBytes: s.cfg.LayerCache.MaxBytes, Replicas: s.deps.Replicas,
			})
		})
		if err != nil {
			return fmt.Errorf("scanner: %w", err)
		}
		s.cache.set(objs)
	}
	bodies, err := queue.Ensure(ctx, "object store "+wire.ReportBodiesBucket, log, func(ctx context.Context) (jetstream.ObjectStore, error) {
		return wire.EnsureReportBodies(ctx, s.deps.JetStream, s.deps.Replicas)
	})
	if err != nil {
		return fmt.Errorf("scanner: %w", err)
	}
	_, err = queue.Ensure(ctx, "vulnerability database buckets", log, func(ctx context.Context) (vulndist.Buckets, error) {
		return vulndist.EnsureReplicas(ctx, s.deps.JetStream, s.deps.Replicas)
	})
	if err != nil {
		return fmt.Errorf("scanner: %w", err)
	}
	s.jobs.SetReports(bodies, s.signer)
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
	s.reg.MustRegister(newQueueCollector(s.deps.JetStream, cons))
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customs_scanner_jobs_total", Help: "Scan job deliveries by outcome (ack, nak, term).",
	}, []string{"outcome"})
	s.reg.MustRegister(outcomes)
	qw := &queue.Worker{
		Consumer:   cons,
		Handler:    s.jobs.Handle,
		GiveUp:     s.jobs.GiveUp,
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
		Consumer: advCons, Handler: s.jobs.HandleAdvisory, Slots: 1, AckWait: 30 * time.Second,
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
