// Package results consumes finished scans from JetStream, stores the
// reports in S3-compatible storage and serves them over HTTP.
//
//	svc, err := results.New(cfg, results.Deps{JetStream: js, Bucket: bucket, Log: log})
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
// Serve binds the JetStream resources, then stores report events, re-matches
// after database updates and serves the report API (internal/reportapi).
package results

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/customs-scan/customs/pkg/httpx"
	"github.com/customs-scan/customs/pkg/osvfeed"
	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/verdict"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/results/internal/alerts"
	"github.com/customs-scan/customs/services/results/internal/dbupdate"
	"github.com/customs-scan/customs/services/results/internal/rematch"
	"github.com/customs-scan/customs/services/results/internal/reportapi"
	"github.com/customs-scan/customs/services/results/internal/reportstore"
	"github.com/customs-scan/customs/services/results/internal/stored"
	"github.com/customs-scan/customs/services/results/internal/web"
)

// Config is read from the environment by cmd/results (and by `customs up`).
// A zero field means its default (the envDefault tag), for Go callers as
// for the environment; Validate says what New would refuse.
type Config struct {
	Addr string `env:"CUSTOMS_RESULTS_ADDR" envDefault:"127.0.0.1:8082"`
	// Workers store reports concurrently.
	Workers int `env:"CUSTOMS_RESULTS_WORKERS" envDefault:"4"`
	// AckWait before an unacknowledged report event is redelivered.
	AckWait time.Duration `env:"CUSTOMS_RESULTS_ACK_WAIT" envDefault:"30s"`
	// RematchConcurrency bounds manifests re-matched at once after a
	// vulnerability database update.
	RematchConcurrency int `env:"CUSTOMS_REMATCH_CONCURRENCY" envDefault:"8"`
	// PolicyFile and IgnoreFiles must be the scanner's: a re-match
	// re-decides verdicts and re-applies ignore rules.
	PolicyFile  string   `env:"CUSTOMS_POLICY_FILE"`
	IgnoreFiles []string `env:"CUSTOMS_IGNORE_FILES" envSeparator:","`
	// APITokensFile lists the API's tokens, hashed (see pkg/apiauth).
	APITokensFile string `env:"CUSTOMS_API_TOKENS"`
	// AdminToken is one more API token, in plain, with the admin role.
	AdminToken string `env:"CUSTOMS_ADMIN_TOKEN"`
	// APIAuth "off" serves the API to anyone. Without tokens and without
	// it, New refuses: nothing is open by default.
	APIAuth string `env:"CUSTOMS_API_AUTH"`
	// AnonymousReads serves the read routes without a token (admin routes
	// still need one): `customs up` on loopback. Not from the environment.
	AnonymousReads bool
	// Signing checks report events: only scanners holding the key can
	// write a verdict.
	Signing wire.SigningConfig
	// Quarantine: enforce acts on quarantine verdicts, dry-run records
	// what it would have done, off does neither. Unset in the standalone
	// service means dry-run, so nothing is blocked by surprise (`customs
	// up` enforces).
	Quarantine string `env:"CUSTOMS_QUARANTINE" envDefault:"dry-run"`
	// RegistryAuthFile names Harbor and ECR registries and the credentials
	// their APIs take (the scanner's file: see pkg/regauth).
	RegistryAuthFile string `env:"CUSTOMS_REGISTRY_AUTH"`
	// QuarantineDistribution: gate (pulls refused by the gate) or move
	// (also copy the image to quarantine/<repository> and delete it).
	QuarantineDistribution string `env:"CUSTOMS_QUARANTINE_DISTRIBUTION" envDefault:"gate"`
	// QuarantineECR: archive (UpdateImageStorageClass), retag or delete.
	QuarantineECR string `env:"CUSTOMS_QUARANTINE_ECR" envDefault:"archive"`
	// InsecureRegistries are reached over plain HTTP (move mode).
	InsecureRegistries []string `env:"CUSTOMS_INSECURE_REGISTRIES" envSeparator:","`
	// DBUpdateInterval: this often one results process of the cluster
	// refreshes OSV's dumps and publishes a new vulnerability database
	// (internal/dbupdate). Zero or negative: off. The results command
	// takes DefaultDBUpdateInterval when the variable is unset; a Go
	// caller (customs up, tests) turns it on itself, so nothing is
	// fetched from the internet by surprise.
	DBUpdateInterval time.Duration `env:"CUSTOMS_DB_UPDATE_INTERVAL"`
	// OSVMirror is the base URL of the dumps (<mirror>/<ecosystem>/all.zip);
	// empty: osv.dev's.
	OSVMirror string `env:"CUSTOMS_OSV_MIRROR"`
	// OSVCacheDir keeps the dumps between updates (empty: <user cache
	// dir>/customs/osv-dumps).
	OSVCacheDir string `env:"CUSTOMS_OSV_CACHE_DIR"`
	// DBStaleAfter: a re-match against a database older than this says
	// vulnerability_db.stale (negative: never).
	DBStaleAfter time.Duration `env:"CUSTOMS_DB_STALE_AFTER" envDefault:"72h"`
}

// DefaultDBUpdateInterval is the results command's update interval.
const DefaultDBUpdateInterval = 6 * time.Hour

// withDefaults fills the fields a Go caller left zero with the values the
// env tags give the commands (TestDefaultsAgree keeps them equal).
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8082"
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.RematchConcurrency == 0 {
		c.RematchConcurrency = 8
	}
	if c.Signing.Mode == "" {
		c.Signing.Mode = "on"
	}
	if m, err := quarantine.ParseMode(c.Quarantine, quarantine.ModeDryRun); err == nil {
		c.Quarantine = m
	}
	c.QuarantineDistribution = cmp.Or(c.QuarantineDistribution, "gate")
	c.QuarantineECR = cmp.Or(c.QuarantineECR, "archive")
	if c.DBStaleAfter == 0 {
		c.DBStaleAfter = verdict.DefaultStaleAfter
	}
	return c
}

// S3Config is the bucket part of the environment (used by cmd/results).
type S3Config struct {
	Bucket          string `env:"CUSTOMS_S3_BUCKET" envDefault:"customs-reports"`
	Region          string `env:"CUSTOMS_S3_REGION" envDefault:"us-east-1"`
	Endpoint        string `env:"CUSTOMS_S3_ENDPOINT"`
	PathStyle       bool   `env:"CUSTOMS_S3_PATH_STYLE" envDefault:"true"`
	AccessKeyID     string `env:"CUSTOMS_S3_ACCESS_KEY_ID"`
	SecretAccessKey string `env:"CUSTOMS_S3_SECRET_ACCESS_KEY"`
	CreateBucket    bool   `env:"CUSTOMS_S3_CREATE_BUCKET" envDefault:"false"`
}

// Store converts the env config to the store package's.
func (c S3Config) Store() store.S3Config {
	return store.S3Config{
		Bucket: c.Bucket, Region: c.Region, Endpoint: c.Endpoint, PathStyle: c.PathStyle,
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, CreateBucket: c.CreateBucket,
	}
}

// Deps are the connections results uses.
type Deps struct {
	// Replicas of every bucket results creates (CUSTOMS_NATS_REPLICAS).
	Replicas  int
	JetStream jetstream.JetStream
	Bucket    store.Bucket
	Ready     httpx.Check
	Log       zerolog.Logger
}

// Service is the results front door.
type Service struct {
	vulndb  *vulndist.Watcher
	rematch *rematch.Rematcher
	cfg     Config
	deps    Deps
	store   *reportstore.Store
	reg     *prometheus.Registry
	handler http.Handler
	stored  *prometheus.CounterVec
	reader  *wire.Reader
	// announce publishes ReportStored; its buckets are bound in Serve.
	announce *stored.Announcer
	alerts   *alerts.Publisher
	// quarantine is nil when CUSTOMS_QUARANTINE=off; its KV is bound in Serve.
	quarantine *quarantine.Controller
	qmetrics   *prometheus.CounterVec
	// updater is nil when scheduled database updates are off.
	updater *dbupdate.Updater
}

// New fills cfg's zero fields with the defaults, validates it and builds
// the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.JetStream == nil || deps.Bucket == nil {
		return nil, errors.New("results: JetStream and Bucket are required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validateValues(); err != nil {
		return nil, err
	}
	signer, err := cfg.Signing.Signer()
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	log := deps.Log.With().Str("service", "results").Logger()
	deps.Log = log
	reg := httpx.NewRegistry()
	checks := map[string]httpx.Check{"s3": deps.Bucket.Ping}
	if deps.Ready != nil {
		checks["nats"] = deps.Ready
	}
	rs := reportstore.New(deps.Bucket)
	router := httpx.NewRouter(reg, checks)
	rules, err := verdict.Load(cfg.PolicyFile, cfg.IgnoreFiles)
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	rules.OnPolicyError = func(err error) { log.Warn().Err(err).Msg("policy rule failed to evaluate; skipped") }
	rules.StaleAfter = cfg.DBStaleAfter
	vdb := vulndist.NewWatcher(deps.JetStream, nil, log)
	auth, err := newAuth(cfg, log)
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	// Every results process asks; the request's message id makes it one.
	vdb.OnSwap = func(ctx context.Context, _, db *vulndb.DB) {
		if err := rematch.Request(ctx, deps.JetStream, db.Version()); err != nil {
			log.Warn().Err(err).Str("db_version", db.Version()).Msg("cannot request a re-match; the next results start will")
		}
	}
	s := &Service{cfg: cfg, deps: deps, store: rs, reg: reg, handler: router, vulndb: vdb,
		reader: &wire.Reader{Signer: signer},
		rematch: &rematch.Rematcher{
			JS: deps.JetStream, Store: rs, Rules: rules, DB: vdb.Current,
			Concurrency: cfg.RematchConcurrency, Log: log,
		},
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "customs_results_reports_total", Help: "Report events by result (stored, stale, attempt: a failed scan kept beside a complete report, refused: dead-lettered).",
		}, []string{"result"}),
	}
	reg.MustRegister(s.stored, vulnDBAge(vdb))
	if cfg.DBUpdateInterval > 0 {
		dir := cfg.OSVCacheDir
		if dir == "" {
			dir = defaultOSVCacheDir()
		}
		updates := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "customs_vulndb_updates_total",
			Help: "Scheduled vulnerability database update checks by outcome (published, unchanged, held: another process's turn, failed).",
		}, []string{"outcome"})
		reg.MustRegister(updates)
		s.updater = &dbupdate.Updater{
			JS: deps.JetStream, Cache: &osvfeed.Cache{Dir: dir, Mirror: cfg.OSVMirror},
			Interval: cfg.DBUpdateInterval, Replicas: deps.Replicas, Log: log.With().Str("task", "vulndb-update").Logger(),
			Observe: func(outcome string) { updates.WithLabelValues(outcome).Inc() },
		}
	}
	rematched := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customs_results_rematched_total",
		Help: "Stored manifests re-matched after a vulnerability database update, by result (updated, gained: a NewVulnerabilities event was published, skipped).",
	}, []string{"result"})
	reg.MustRegister(rematched)
	s.rematch.Observe = func(r rematch.Result) { rematched.WithLabelValues(r.String()).Inc() }
	s.announce = &stored.Announcer{JS: deps.JetStream}
	s.alerts = &alerts.Publisher{JS: deps.JetStream, Store: rs}
	s.rematch.Alert = s.alerts.Rematch
	s.rematch.Announce = func(ctx context.Context, r *report.Report, prev string) error {
		return s.announce.Announce(ctx, stored.Event(r, prev, stored.CauseRematch), stored.RematchID(r.Artifact.Digest, r.VulnerabilityDB.Version))
	}
	s.qmetrics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customs_quarantine_total",
		Help: "Quarantine changes by what happened (quarantined, released, enforcement_failed, rescan_failed) and registry kind.",
	}, []string{"change", "kind"})
	reg.MustRegister(s.qmetrics)
	if cfg.Quarantine != quarantine.ModeOff {
		resolve, err := newResolver(cfg, log)
		if err != nil {
			return nil, fmt.Errorf("results: %w", err)
		}
		s.quarantine = &quarantine.Controller{
			JS: deps.JetStream, Mode: cfg.Quarantine, Resolve: resolve, Log: log,
			Observe: func(what, kind string) { s.qmetrics.WithLabelValues(what, kind).Inc() },
			// An operator's quarantine or release is news of its own.
			OnOperator: func(ctx context.Context, change string, rec *customsv1.QuarantineRecord) {
				kind := alerts.KindQuarantine
				if change == quarantine.ChangeReleased {
					kind = alerts.KindRelease
				}
				if err := s.alerts.Quarantine(ctx, kind, rec); err != nil {
					log.Warn().Err(err).Str("digest", rec.GetDigest()).Str("change", change).Msg("quarantine alert not published")
				}
			},
		}
	}
	reportapi.Mount(router, rs, auth, func() reportapi.DBInfo {
		db := vdb.Current()
		if db == nil {
			return reportapi.DBInfo{Status: "none"}
		}
		h := db.Header()
		built := h.Built.UTC()
		return reportapi.DBInfo{Status: "loaded", Version: db.Version(), BuiltAt: &built, Advisories: h.Advisories, Entries: h.Entries}
	}, s.quarantineState, log)
	reportapi.MountQuarantine(router, auth, s.quarantine, cfg.Quarantine, log)
	s.handler = web.Mount(router, web.Deps{Store: rs, Auth: auth, Quarantine: s.quarantine,
		QuarantineMode: cfg.Quarantine, DB: vdb.Current, JetStream: deps.JetStream,
		NewSince: s.alerts.NewSince, SessionKey: cfg.Signing.Key, Log: log})
	return s, nil
}

// quarantineState is the "quarantine" of a served report.
func (s *Service) quarantineState(ctx context.Context, registry, repository, digest string) (any, error) {
	if s.quarantine == nil || s.quarantine.KV == nil || registry == "" {
		return nil, nil
	}
	rec, _, err := quarantine.Get(ctx, s.quarantine.KV, quarantine.Key(registry, repository, digest))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read quarantine record: %w", err)
	}
	return quarantine.StateOf(rec), nil
}

// Handler is the HTTP API.
func (s *Service) Handler() http.Handler { return s.handler }

// Run listens on cfg.Addr, consumes report events and serves the API until
// ctx ends (Serve on a listener of its own).
func (s *Service) Run(ctx context.Context) error {
	ln, err := httpx.Listen(s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve consumes report events and serves the report API on ln until ctx
// ends; ln is closed when it returns.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	cons, err := queue.EnsureConsumer(ctx, s.deps.JetStream, queue.ReportsStream, jetstream.ConsumerConfig{
		Durable:       queue.ResultsConsumer,
		Description:   "stores reports in S3",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxAckPending: s.cfg.Workers * 4,
		FilterSubject: queue.ReportsSubjectPrefix + ">",
	}, s.deps.Log)
	if err != nil {
		return fmt.Errorf("results: create consumer: %w", err)
	}
	bodies, err := queue.Ensure(ctx, "object store "+wire.ReportBodiesBucket, s.deps.Log, func(ctx context.Context) (jetstream.ObjectStore, error) {
		return wire.EnsureReportBodies(ctx, s.deps.JetStream, s.deps.Replicas)
	})
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	_, err = queue.Ensure(ctx, "vulnerability database buckets", s.deps.Log, func(ctx context.Context) (vulndist.Buckets, error) {
		return vulndist.EnsureReplicas(ctx, s.deps.JetStream, s.deps.Replicas)
	})
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	s.reader.Bodies = bodies
	verdicts, err := queue.Ensure(ctx, "kv "+quarantine.VerdictsBucket, s.deps.Log, func(ctx context.Context) (jetstream.KeyValue, error) {
		return quarantine.EnsureVerdicts(ctx, s.deps.JetStream, s.deps.Replicas)
	})
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	s.announce.Verdicts = verdicts
	var qw *queue.Worker
	if s.quarantine != nil {
		if qw, err = s.quarantineWorker(ctx); err != nil {
			return err
		}
	}
	w := &queue.Worker{
		Consumer: cons,
		Handler:  s.handle,
		GiveUp:   s.giveUp,
		Slots:    s.cfg.Workers,
		AckWait:  s.cfg.AckWait,
		// MaxDeliver 0: an S3 outage is waited out, never dropped.
		Backoff: func(n uint64) time.Duration { return min(queue.Backoff(n), 30*time.Second) },
		Log:     s.deps.Log,
	}
	rcons, err := queue.EnsureConsumer(ctx, s.deps.JetStream, queue.RematchStream, jetstream.ConsumerConfig{
		Durable:       queue.RematchConsumer,
		Description:   "re-matches stored inventories against a new vulnerability database",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxAckPending: 1,
		FilterSubject: queue.RematchSubjectPrefix + ">",
	}, s.deps.Log)
	if err != nil {
		return fmt.Errorf("results: create rematch consumer: %w", err)
	}
	rw := &queue.Worker{
		Consumer: rcons,
		Handler:  s.rematch.Handle,
		Slots:    1,
		AckWait:  s.cfg.AckWait,
		Backoff:  func(n uint64) time.Duration { return min(queue.Backoff(n), 30*time.Second) },
		Log:      s.deps.Log.With().Str("consumer", queue.RematchConsumer).Logger(),
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.vulndb.Run(gctx) })
	if s.updater != nil {
		g.Go(func() error { return s.updater.Run(gctx) })
	}
	g.Go(func() error { return rw.Run(gctx) })
	if qw != nil {
		g.Go(func() error { return qw.Run(gctx) })
	}
	g.Go(func() error {
		// Reports are matched up to the current database before they are
		// stored; wait until it is known.
		select {
		case <-s.vulndb.Ready():
		case <-gctx.Done():
			return nil
		}
		return w.Run(gctx)
	})
	g.Go(func() error { return httpx.Serve(gctx, ln, s.handler, s.deps.Log) })
	return g.Wait()
}

// defaultOSVCacheDir is <user cache dir>/customs/osv-dumps, else one in
// the temporary directory.
func defaultOSVCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "customs", "osv-dumps")
	}
	return filepath.Join(os.TempDir(), "customs-osv-dumps")
}

// DeadReportSubject receives report events results cannot use (forged,
// corrupt, their large-report object gone), with the reason in headers:
// kept as evidence, never dropped with only a log line.
const DeadReportSubject = queue.DLQSubjectPrefix + "reports"

// giveUp dead-letters a report event before it is terminated.
func (s *Service) giveUp(ctx context.Context, msg jetstream.Msg, out queue.Outcome) error {
	dl := nats.NewMsg(DeadReportSubject)
	dl.Data = msg.Data()
	dl.Header.Set("Customs-Dead-Reason", out.Reason)
	dl.Header.Set("Customs-Dead-Subject", msg.Subject())
	var id string
	if md, err := msg.Metadata(); err == nil {
		id = fmt.Sprintf("dlq:%s:%d", queue.ReportsStream, md.Sequence.Stream)
	}
	opts := []jetstream.PublishOpt{}
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	if _, err := s.deps.JetStream.PublishMsg(ctx, dl, opts...); err != nil {
		return fmt.Errorf("publish dead report event: %w", err)
	}
	s.deps.Log.Warn().Str("subject", msg.Subject()).Str("reason", out.Reason).Msg("report event dead-lettered")
	s.stored.WithLabelValues("refused").Inc()
	return nil
}

func olderDB(r *report.Report, db *vulndb.DB) bool {
	v := r.VulnerabilityDB
	if v.Version == db.Version() {
		return false
	}
	return v.BuiltAt == nil || v.BuiltAt.Before(db.Header().Built)
}

// maxTagsDeliveries bounds how long a TagsAdded waits for its digest's
// report (published before it) to be stored.
const maxTagsDeliveries = 30

func (s *Service) handleTags(ctx context.Context, msg jetstream.Msg) error {
	ev, err := s.reader.DecodeTags(msg.Subject(), msg.Headers(), msg.Data())
	if err != nil {
		return err
	}
	pushed := time.Now().UTC()
	if ev.GetRequestedAt() != nil {
		pushed = ev.GetRequestedAt().AsTime()
	}
	cur, err := s.store.AddTags(ctx, ev.GetDigest(), ev.GetRepository(), ev.GetTags(), pushed)
	if errors.Is(err, store.ErrNotFound) {
		if md, merr := msg.Metadata(); merr == nil && md.NumDelivered >= maxTagsDeliveries {
			return queue.Permanent(fmt.Errorf("tags %v of %s: no report of the digest after %d attempts", ev.GetTags(), ev.GetDigest(), md.NumDelivered))
		}
		return fmt.Errorf("tags of %s: report not stored yet: %w", ev.GetDigest(), err)
	}
	if err != nil {
		return err
	}
	// A push of a digest already scanned: what enforces a quarantine
	// hears of it (ECR restores an archived image that is pushed again).
	sev := stored.Event(cur, cur.Verdict, stored.CausePush)
	sev.Registry, sev.Repository, sev.Tags = ev.GetRegistry(), ev.GetRepository(), ev.GetTags()
	if err := s.announce.Announce(ctx, sev, stored.PushID(ev.GetDigest(), ev.GetRepository(), ev.GetTags(), pushed)); err != nil {
		return err
	}
	s.stored.WithLabelValues("tags").Inc()
	s.deps.Log.Info().Str("digest", ev.GetDigest()).Str("repository", ev.GetRepository()).Strs("tags", ev.GetTags()).Msg("tags recorded")
	return nil
}

func (s *Service) handle(ctx context.Context, msg jetstream.Msg) error {
	if wire.IsTagsSubject(msg.Subject()) {
		return s.handleTags(ctx, msg)
	}
	ev, err := s.reader.Decode(ctx, msg.Subject(), msg.Headers(), msg.Data())
	if err != nil {
		return err
	}
	r := ev.Report
	if r.RequestedAt == nil && !ev.RequestedAt.IsZero() {
		r.RequestedAt = &ev.RequestedAt
	}
	// A scan matched against an older database than the current one (a
	// worker that had not swapped yet, or had none) is brought up to date
	// here, so a stored report never lags behind a finished re-match.
	if db := s.vulndb.Current(); db != nil && olderDB(r, db) {
		s.rematch.Rules.Rematch(r, db)
	}
	res, prev, err := s.store.Put(ctx, r)
	if err != nil {
		return err
	}
	if res == reportstore.Stored {
		// Announced after the write; a crash in between redelivers the
		// event, Put stores the same report again and the message id keeps
		// the announcement single.
		sev := stored.Event(r, prev, stored.CauseScan)
		if err := s.announce.Announce(ctx, sev, stored.ScanID(sev)); err != nil {
			return err
		}
		// A platform of an index is news as part of its index's alert.
		if !ev.PartOfIndex() {
			if err := s.alerts.Push(ctx, r, s.cfg.Quarantine); err != nil {
				return err
			}
		}
	}
	s.stored.WithLabelValues(res.String()).Inc()
	s.deps.Log.Info().Str("digest", r.Artifact.Digest).Str("repository", r.Artifact.Repository).
		Str("verdict", r.Verdict).Str("status", r.Status).Str("result", res.String()).Msg("report event handled")
	return nil
}
