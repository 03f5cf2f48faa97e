// Package gate is the quarantine gate: a reverse proxy in front of a
// Docker Distribution registry that refuses manifests Customs quarantined
// (Distribution itself has no per-digest pull control).
//
//	svc, err := gate.New(cfg, gate.Deps{JetStream: js, Ready: natsconn.Ready(nc), Log: log})
//	err = svc.Run(ctx)       // or svc.Serve(ctx, ln)
//
// New checks the configuration and builds the service; nothing listens or
// connects yet. Run(ctx) listens on cfg.Addr and serves until ctx ends;
// Serve(ctx, ln) is the same on a listener the caller bound. Both return
// nil once ctx has ended and the service has shut down, or the error that
// stopped it first; ln is closed when Serve returns (the lifecycle of
// ingest, scanner and results).
//
// The gate only reads: quarantine records through a quarantine.Set (a KV
// watch on customs-quarantine) and, with CUSTOMS_GATE_UNSCANNED=deny, the
// last stored report of a digest in customs-verdicts. Manifest GET/HEAD
// responses are decided before any body is written (proxy.go); everything
// else, pushes and blobs included, streams through untouched.
package gate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/customs-scan/customs/pkg/httpx"
	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/queue"
)

// Unscanned policies (CUSTOMS_GATE_UNSCANNED).
const (
	UnscannedAllow = "allow"
	UnscannedDeny  = "deny"
)

// Config is read from the environment by cmd/gate. A zero field means its
// default (the envDefault tag), for Go callers as for the environment;
// Validate says what New would refuse.
type Config struct {
	Addr string `env:"CUSTOMS_GATE_ADDR" envDefault:"127.0.0.1:5080"`
	// Upstream is the registry's base URL (http://registry:5000). Required.
	Upstream string `env:"CUSTOMS_GATE_UPSTREAM"`
	// RegistryNames are the host[:port] names push events give this
	// registry: records are keyed by the name the event used. Empty: the
	// gate's listen address and the upstream's host:port, each with its
	// loopback aliases when it is a loopback (or unspecified) address.
	RegistryNames []string `env:"CUSTOMS_GATE_REGISTRY_NAMES" envSeparator:","`
	// Unscanned is "allow" or "deny": whether a manifest without a
	// complete scan is served.
	Unscanned string `env:"CUSTOMS_GATE_UNSCANNED" envDefault:"allow"`
}

// withDefaults fills the fields a Go caller left zero with the values the
// env tags give the command (TestDefaultsAgree keeps them equal).
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:5080"
	}
	if c.Unscanned == "" {
		c.Unscanned = UnscannedAllow
	}
	return c
}

// Validate refuses what New would: no upstream, an upstream that is not
// an http(s) URL of a registry root, an unknown unscanned policy, a
// registry name that is not host[:port]. Zero values other than the
// upstream are fine (they mean the defaults). cmd/gate calls it before
// dialling NATS.
func (c Config) Validate() error {
	if _, err := parseUpstream(c.Upstream); err != nil {
		return err
	}
	if _, err := parseUnscanned(c.Unscanned); err != nil {
		return err
	}
	for _, n := range c.RegistryNames {
		if _, err := parseRegistryName(n); err != nil {
			return err
		}
	}
	return nil
}

func parseUpstream(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("gate: CUSTOMS_GATE_UPSTREAM is required: the registry's URL, e.g. http://registry:5000")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("gate: CUSTOMS_GATE_UPSTREAM: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("gate: CUSTOMS_GATE_UPSTREAM=%q: want http://host[:port] or https://host[:port]", s)
	}
	// The registry API lives at /v2/ of its host; a path prefix would be
	// joined to every request and to no Location the registry sends back.
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("gate: CUSTOMS_GATE_UPSTREAM=%q: want only scheme and host[:port] (no path, query or credentials)", s)
	}
	u.Path = ""
	return u, nil
}

func parseUnscanned(s string) (string, error) {
	switch m := strings.ToLower(strings.TrimSpace(s)); m {
	case "":
		return UnscannedAllow, nil
	case UnscannedAllow, UnscannedDeny:
		return m, nil
	}
	return "", fmt.Errorf("gate: CUSTOMS_GATE_UNSCANNED=%q: want allow or deny", s)
}

func parseRegistryName(s string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	if n == "" || strings.ContainsAny(n, "/@ ") {
		return "", fmt.Errorf("gate: CUSTOMS_GATE_REGISTRY_NAMES: %q is not host[:port]", s)
	}
	return n, nil
}

// defaultNames are the names a registry behind the gate is given in push
// events when none are configured: the gate's address (what pushers use)
// and the upstream's (what the gate sends as Host), each with the other
// loopback spellings when it is a loopback or unspecified address.
func defaultNames(addrs ...string) []string {
	var out []string
	add := func(n string) {
		if n = strings.ToLower(n); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			add(a) // a host without a port: the name as it is
			continue
		}
		add(net.JoinHostPort(host, port))
		ip := net.ParseIP(host)
		if host == "" || strings.EqualFold(host, "localhost") || ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
			for _, h := range []string{"127.0.0.1", "localhost", "::1"} {
				add(net.JoinHostPort(h, port))
			}
		}
	}
	return out
}

// Deps are the connections the gate uses.
type Deps struct {
	// Replicas of the buckets the gate creates if they are missing
	// (CUSTOMS_NATS_REPLICAS).
	Replicas  int
	JetStream jetstream.JetStream
	// Ready reports the NATS connection (natsconn.Ready).
	Ready httpx.Check
	// Transport reaches the upstream; nil: a transport of its own without
	// environment proxies.
	Transport http.RoundTripper
	Log       zerolog.Logger
}

// Service is the gate's front door.
type Service struct {
	cfg      Config
	deps     Deps
	upstream *url.URL
	deny     bool
	// names is the registry names records are looked up under; Serve
	// replaces the default ones with the listener's real address.
	names atomic.Pointer[[]string]
	// set and verdicts are bound by Serve; until then (and until the set
	// has read every record) manifest requests are answered 503.
	set      atomic.Pointer[quarantine.Set]
	verdicts atomic.Pointer[jetstream.KeyValue]
	scanned  *scannedCache
	handler  http.Handler
	requests *prometheus.CounterVec
}

// New fills cfg's zero fields with the defaults, validates it and builds
// the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.JetStream == nil {
		return nil, errors.New("gate: JetStream is required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	up, _ := parseUpstream(cfg.Upstream)
	mode, _ := parseUnscanned(cfg.Unscanned)
	deps.Log = deps.Log.With().Str("service", "gate").Logger()
	s := &Service{cfg: cfg, deps: deps, upstream: up, deny: mode == UnscannedDeny, scanned: newScannedCache(scannedCacheSize)}
	s.setNames(cfg.Addr)

	reg := httpx.NewRegistry()
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customs_gate_manifest_requests_total",
		Help: "Manifest GET/HEAD requests by decision (allowed, quarantined, unscanned, unavailable: 503 or 502, upstream: the registry's own error passed through).",
	}, []string{"decision"})
	reg.MustRegister(s.requests, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "customs_gate_quarantine_records",
		Help: "Quarantine records held in memory (any state or mode).",
	}, func() float64 {
		if set := s.set.Load(); set != nil {
			return float64(set.Len())
		}
		return 0
	}))
	checks := map[string]httpx.Check{"quarantine": s.setReady}
	if deps.Ready != nil {
		checks["nats"] = deps.Ready
	}
	router := httpx.NewRouter(reg, checks)
	proxy := s.newProxy()
	// The registry API is all under /v2/; the gate's own endpoints are
	// /healthz, /readyz and /metrics, which the registry does not have.
	router.Handle("/v2", proxy)
	router.Handle("/v2/*", proxy)
	s.handler = router
	return s, nil
}

// setNames sets the registry names: the configured ones, or the defaults
// for a gate listening on addr.
func (s *Service) setNames(addr string) {
	var names []string
	if len(s.cfg.RegistryNames) > 0 {
		for _, n := range s.cfg.RegistryNames {
			n, _ = parseRegistryName(n)
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	} else {
		names = defaultNames(addr, s.upstream.Host)
	}
	s.names.Store(&names)
}

// RegistryNames are the names quarantine records are looked up under.
func (s *Service) RegistryNames() []string { return slices.Clone(*s.names.Load()) }

func (s *Service) setReady(context.Context) error {
	set := s.set.Load()
	if set == nil {
		return errors.New("quarantine records bucket not bound yet")
	}
	select {
	case <-set.Ready():
		return nil
	default:
		return errors.New("quarantine records not read yet")
	}
}

// Handler is the gate: the proxy under /v2/, plus health and metrics.
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

// Serve binds the buckets, watches the quarantine records and proxies on
// ln until ctx ends; ln is closed when it returns. The listener serves at
// once (probes answer; manifests get 503 until the records are read).
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	if len(s.cfg.RegistryNames) == 0 {
		// ":0" in cfg.Addr: the names are the port actually bound.
		s.setNames(ln.Addr().String())
	}
	s.deps.Log.Info().Strs("registry_names", s.RegistryNames()).Str("upstream", s.upstream.String()).
		Bool("unscanned_deny", s.deny).Msg("gate starting")
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveHTTP(gctx, ln, s.handler, s.deps.Log) })
	g.Go(func() error {
		// Created if missing, so the gate may start before results.
		kv, err := queue.Ensure(gctx, "key-value bucket "+quarantine.Bucket, s.deps.Log, func(ctx context.Context) (jetstream.KeyValue, error) {
			return quarantine.EnsureBucket(ctx, s.deps.JetStream, s.deps.Replicas)
		})
		if err != nil {
			return nilIfDone(gctx, fmt.Errorf("gate: %w", err))
		}
		if s.deny {
			// Only the unscanned check reads verdicts.
			v, err := queue.Ensure(gctx, "key-value bucket "+quarantine.VerdictsBucket, s.deps.Log, func(ctx context.Context) (jetstream.KeyValue, error) {
				return quarantine.EnsureVerdicts(ctx, s.deps.JetStream, s.deps.Replicas)
			})
			if err != nil {
				return nilIfDone(gctx, fmt.Errorf("gate: %w", err))
			}
			s.verdicts.Store(&v)
		}
		set := quarantine.NewSet(kv, s.deps.Log)
		s.set.Store(set)
		go func() {
			select {
			case <-set.Ready():
				s.deps.Log.Info().Int("records", set.Len()).Msg("quarantine records read; serving manifests")
			case <-gctx.Done():
			}
		}()
		return set.Run(gctx)
	})
	return g.Wait()
}

func nilIfDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// serveHTTP is httpx.Serve without its read and write timeouts: a blob
// download or a chunked upload through the gate may take longer than any
// fixed deadline. Slow-header clients and idle connections are still cut.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log zerolog.Logger) error {
	return httpx.ServeServer(ctx, ln, &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          newStdLogger(log),
	}, log)
}
