// Package customs is the all-in-one front door: Start runs ingest, scanner
// and results in one process on embedded NATS and S3 (and optionally an
// embedded registry wired to ingest). The services are the same front doors
// cmd/ingest, cmd/scanner and cmd/results run, talking to the embedded
// servers through their production clients.
package customs

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/httpx"
	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/pkg/wire"
	"github.com/customs-scan/customs/services/customs/internal/embedded"
	"github.com/customs-scan/customs/services/gate"
	"github.com/customs-scan/customs/services/harbor"
	"github.com/customs-scan/customs/services/ingest"
	"github.com/customs-scan/customs/services/notifier"
	"github.com/customs-scan/customs/services/results"
	"github.com/customs-scan/customs/services/scanner"
)

// UpConfig configures `customs up`.
type UpConfig struct {
	DataDir     string
	IngestAddr  string
	ResultsAddr string
	ScannerAddr string
	// HarborAddr serves the Harbor Pluggable Scanner API ("" : none).
	HarborAddr string
	// HarborToken is what Harbor's scanner registration sends; generated
	// (and printed) when empty.
	HarborToken string
	// AlertsFile configures chat alerts; the notifier runs on NotifierAddr
	// only with it.
	AlertsFile   string
	NotifierAddr string
	NATSAddr     string
	S3Addr       string
	// RegistryAddr, when set, starts an embedded registry whose push
	// notifications go to ingest, behind the quarantine gate listening on
	// RegistryAddr (the registry itself on an internal loopback port).
	RegistryAddr string
	// GateAddr and GateUpstream front an external registry with the gate
	// (ignored with RegistryAddr, which has its own gate).
	GateAddr, GateUpstream string
	// GateUnscanned is CUSTOMS_GATE_UNSCANNED: allow (default) or deny.
	GateUnscanned string
	// WebhookToken guards the webhooks; generated when none is given.
	WebhookToken string
	// APITokensFile and AdminToken guard the report API (see pkg/apiauth);
	// without either, reads are served without a token when the API
	// listens on loopback, and Start refuses any other address.
	APITokensFile string
	AdminToken    string
	// APIAuth "off" serves the report API to anyone (CUSTOMS_API_AUTH).
	APIAuth            string
	Registries         []string
	InsecureRegistries []string
	// RedirectHosts and AllowForeignLayers: see scanner.Config.
	RedirectHosts []string
	// TokenHosts: see scanner.Config.
	TokenHosts         []string
	AllowForeignLayers bool
	// PullFrom: see scanner.Config (CUSTOMS_SCANNER_PULL_FROM); the
	// embedded registry's gate is added to it.
	PullFrom []string
	// RegistryAuthFile: registry credentials (CUSTOMS_REGISTRY_AUTH, see
	// scanner.Config), consulted before the Docker keychain.
	RegistryAuthFile string
	// Workers is how many images are scanned at once; 0 runs no scanner
	// (scanners run as separate processes against this NATS).
	Workers int
	// Memory and Streams size the scanner's memory budget and decoders
	// (scanner.Config; 0: its defaults).
	Memory  int64
	Streams int
	AckWait time.Duration
	Limits  scanner.LimitsConfig
	Engine  inspect.EngineConfig
	// DBPath is the vulnerability database published to the scanners at
	// start; "" publishes none (until one is published with `customs db
	// update --publish`). A missing file fails Start unless DBOptional.
	DBPath string
	// DBOptional: a missing DBPath is no database, not an error (`customs
	// up` without --db, looking in the default place).
	DBOptional bool
	// DBUpdateInterval > 0 has results refresh OSV's dumps from OSVMirror
	// (osv.dev's when empty) this often and publish a new database; off
	// by default: an offline machine must not fetch anything unasked.
	DBUpdateInterval time.Duration
	OSVMirror        string
	// OSVCacheDir keeps the dumps (default <DataDir>/osv-dumps).
	OSVCacheDir string
	// RemoteOptions are extra registry client options for the scanner.
	RemoteOptions []remote.Option
	// RegistryMiddleware wraps the embedded registry's handler (fault
	// injection in tests).
	RegistryMiddleware func(http.Handler) http.Handler
	// Quarantine is CUSTOMS_QUARANTINE for results: enforce (the default
	// here), dry-run or off.
	Quarantine string
	Log        zerolog.Logger
}

// DefaultUpConfig is what `customs up` runs with no flags.
func DefaultUpConfig() UpConfig {
	return UpConfig{
		DataDir:      "./data",
		IngestAddr:   "127.0.0.1:8081",
		ResultsAddr:  "127.0.0.1:8082",
		ScannerAddr:  "127.0.0.1:8083",
		HarborAddr:   "127.0.0.1:8084",
		NotifierAddr: "127.0.0.1:8085",
		NATSAddr:     "127.0.0.1:4222",
		S3Addr:       "127.0.0.1:8333",
		Workers:      4,
		AckWait:      time.Minute,
	}
}

// Stack is a running all-in-one Customs.
type Stack struct {
	IngestURL  string
	ResultsURL string
	// NATSURL carries the generated credentials (nats://user:pass@host:port):
	// what `customs db publish --nats` and out-of-process scanners dial.
	NATSURL string
	S3URL   string
	// S3AccessKeyID and S3SecretAccessKey are the embedded S3's generated
	// key pair; it refuses any other request.
	S3AccessKeyID, S3SecretAccessKey string
	// RegistryAddr is where to push and pull: the gate in front of the
	// embedded registry (empty without one).
	RegistryAddr string
	// RegistryUpstreamAddr is the embedded registry itself (scanners pull
	// from it; nothing else should).
	RegistryUpstreamAddr string
	// GateURL is the gate's address (the embedded registry's or
	// --gate-addr's); empty without a gate.
	GateURL string
	// WebhookToken is the given or generated webhook token.
	WebhookToken string
	// WebhookTokenGenerated says WebhookToken was made up at start.
	WebhookTokenGenerated bool
	// OpenReads: the report API serves reads without a token (loopback, no
	// tokens configured).
	OpenReads bool
	// HarborURL is the Harbor scanner adapter's address (register it in
	// Harbor with HarborToken); empty without one.
	HarborURL   string
	HarborToken string
	// HarborTokenGenerated says HarborToken was made up at start.
	HarborTokenGenerated bool
	// AdminToken is generated with OpenReads (kept in <data>/admin-token,
	// readable by its owner): what `customs quarantine release` sends.
	AdminToken string
	// ReportSigningKey signs report events (also in <data>/report-signing.key).
	ReportSigningKey string
	// InsecureRegistries are the plain-HTTP hosts scanners may pull from
	// (the embedded registry under each of its loopback names).
	InsecureRegistries []string

	group   *errgroup.Group
	cancel  context.CancelFunc
	cleanup []func()
}

// Start brings everything up and returns once all listeners are bound.
func Start(ctx context.Context, cfg UpConfig) (st *Stack, err error) {
	log := cfg.Log
	st = &Stack{}
	// Error returns set st to nil; close what was started through a copy.
	started := st
	defer func() {
		if err != nil {
			started.close()
		}
	}()
	// The embedded servers hold every report and job: loopback only, and
	// even there only for the generated credentials.
	for flag, addr := range map[string]string{"--nats-addr": cfg.NATSAddr, "--s3-addr": cfg.S3Addr} {
		if !isLoopback(addr) {
			return nil, fmt.Errorf("%s %s: the embedded servers listen on loopback only (127.0.0.1, ::1, localhost); run NATS and S3 separately to share them", flag, addr)
		}
	}
	apiTokens := cfg.APITokensFile != "" || cfg.AdminToken != ""
	apiOff, err := apiauth.Switch("CUSTOMS_API_AUTH", cfg.APIAuth)
	if err != nil {
		return nil, err
	}
	st.OpenReads = !apiTokens && !apiOff
	if st.OpenReads && !isLoopback(cfg.ResultsAddr) {
		return nil, fmt.Errorf("--results-addr %s is not loopback: give --api-tokens FILE (or CUSTOMS_ADMIN_TOKEN) so reports are not served to anyone who can reach it", cfg.ResultsAddr)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	natsPassword := randomToken()
	ns, err := embedded.StartNATS(cfg.NATSAddr, filepath.Join(cfg.DataDir, "nats"), "customs", natsPassword)
	if err != nil {
		return nil, err
	}
	st.cleanup = append(st.cleanup, ns.Close)
	st.NATSURL = ns.AuthURL()

	st.S3AccessKeyID, st.S3SecretAccessKey = "customs-"+randomToken()[:12], randomToken()
	s3srv, err := embedded.StartS3(cfg.S3Addr, filepath.Join(cfg.DataDir, "s3.db"), st.S3AccessKeyID, st.S3SecretAccessKey)
	if err != nil {
		return nil, err
	}
	st.cleanup = append(st.cleanup, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s3srv.Close(ctx)
	})
	st.S3URL = s3srv.URL

	lnIngest, err := httpx.Listen(cfg.IngestAddr)
	if err != nil {
		return nil, err
	}
	st.IngestURL = "http://" + lnIngest.Addr().String()
	lnResults, err := httpx.Listen(cfg.ResultsAddr)
	if err != nil {
		_ = lnIngest.Close()
		return nil, err
	}
	st.ResultsURL = "http://" + lnResults.Addr().String()
	lnScanner, err := httpx.Listen(cfg.ScannerAddr)
	if err != nil {
		_ = lnIngest.Close()
		_ = lnResults.Close()
		return nil, err
	}

	var lnHarbor, lnNotifier net.Listener
	if cfg.HarborAddr != "" {
		if lnHarbor, err = httpx.Listen(cfg.HarborAddr); err != nil {
			return nil, err
		}
		st.cleanup = append(st.cleanup, func() { _ = lnHarbor.Close() })
		st.HarborURL = "http://" + lnHarbor.Addr().String()
	}
	if cfg.AlertsFile != "" {
		if lnNotifier, err = httpx.Listen(cmp.Or(cfg.NotifierAddr, "127.0.0.1:0")); err != nil {
			return nil, err
		}
		st.cleanup = append(st.cleanup, func() { _ = lnNotifier.Close() })
	}

	insecure := append([]string{}, cfg.InsecureRegistries...)
	var pullFrom []string
	st.WebhookToken = cfg.WebhookToken
	if st.WebhookToken == "" {
		// Nothing open by default: registries other than the embedded one
		// get this token from the start output.
		st.WebhookToken, st.WebhookTokenGenerated = randomToken(), true
	}
	var lnGate net.Listener
	gateUpstream := cfg.GateUpstream
	if cfg.RegistryAddr != "" {
		// The gate takes the public address; the registry names it in its
		// events and Location headers (http.host), so reports and records
		// say what users push to, and scanners pull from the registry's
		// own port (pull-from), past the gate's checks.
		if lnGate, err = httpx.Listen(cfg.RegistryAddr); err != nil {
			return nil, err
		}
		st.cleanup = append(st.cleanup, func() { _ = lnGate.Close() })
		reg, err := embedded.StartRegistry(ctx, embedded.RegistryConfig{
			Addr:      "127.0.0.1:0",
			PublicURL: "http://" + lnGate.Addr().String(),
			RootDir:   filepath.Join(cfg.DataDir, "registry"),
			NotifyURL: st.IngestURL + "/v1/webhooks/distribution",
			Token:     st.WebhookToken,
			Quiet:     true,
			Wrap:      cfg.RegistryMiddleware,
		})
		if err != nil {
			return nil, err
		}
		st.cleanup = append(st.cleanup, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = reg.Close(ctx)
		})
		st.RegistryAddr, st.RegistryUpstreamAddr = lnGate.Addr().String(), reg.Addr
		gateUpstream = "http://" + reg.Addr
		insecure = append(insecure, loopbackAliases(st.RegistryAddr)...)
		insecure = append(insecure, reg.Addr)
		for _, alias := range loopbackAliases(st.RegistryAddr) {
			pullFrom = append(pullFrom, alias+"="+reg.Addr)
		}
	} else if cfg.GateAddr != "" {
		if gateUpstream == "" {
			return nil, errors.New("--gate-addr needs --gate-upstream URL (the registry it fronts)")
		}
		if lnGate, err = httpx.Listen(cfg.GateAddr); err != nil {
			return nil, err
		}
		st.cleanup = append(st.cleanup, func() { _ = lnGate.Close() })
	}
	if lnGate != nil {
		st.GateURL = "http://" + lnGate.Addr().String()
	}

	st.InsecureRegistries = insecure

	// Each service gets its own connection, as separate processes would.
	conns := map[string]*nats.Conn{}
	jss := map[string]jetstream.JetStream{}
	for _, name := range []string{"ingest", "scanner", "results", "gate", "harbor", "notifier"} {
		nc, js, err := natsconn.Connect(ctx, natsconn.Config{URL: st.NATSURL}, "customs-"+name, log)
		if err != nil {
			return nil, err
		}
		st.cleanup = append(st.cleanup, nc.Close)
		conns[name], jss[name] = nc, js
	}
	js := func(name string) jetstream.JetStream { return jss[name] }
	if err := queue.EnsureStreams(ctx, js("ingest"), queue.Topology{}); err != nil {
		return nil, err
	}
	if err := publishDB(ctx, js("ingest"), cfg.DBPath, cfg.DBOptional, log); err != nil {
		return nil, err
	}
	bucket, err := store.NewS3(ctx, store.S3Config{
		Bucket: "customs-reports", Region: "us-east-1", Endpoint: st.S3URL, PathStyle: true,
		AccessKeyID: st.S3AccessKeyID, SecretAccessKey: st.S3SecretAccessKey, CreateBucket: true,
	}, nil)
	if err != nil {
		return nil, err
	}

	adminToken := cfg.AdminToken
	if st.OpenReads {
		// Reads are open on loopback; writes (releasing a quarantine) still
		// need an admin token: one is kept beside the data.
		if st.AdminToken, err = secretFile(filepath.Join(cfg.DataDir, "admin-token")); err != nil {
			return nil, err
		}
		adminToken = st.AdminToken
	}
	// Scanners started separately against this NATS (--workers 0) need the
	// same key: it is kept in the data directory, readable by its owner.
	if st.ReportSigningKey, err = signingKey(filepath.Join(cfg.DataDir, "report-signing.key")); err != nil {
		return nil, err
	}
	// The Harbor adapter seals the robot credentials of each request into
	// its job for the scanners with this key.
	jobKey, err := secretFile(filepath.Join(cfg.DataDir, "job.key"))
	if err != nil {
		return nil, err
	}
	ing, err := ingest.New(ingest.Config{
		Addr: lnIngest.Addr().String(), WebhookToken: st.WebhookToken,
		Registries: cfg.Registries, InsecureRegistries: insecure,
	}, ingest.Deps{JetStream: js("ingest"), Ready: natsconn.Ready(conns["ingest"]), Log: log})
	if err != nil {
		return nil, err
	}
	// Fields left zero get the services' defaults, as their commands do.
	scn, err := scanner.New(scanner.Config{
		Workers: cfg.Workers, Memory: cfg.Memory, Streams: cfg.Streams,
		AckWait: cfg.AckWait, Limits: cfg.Limits, Engine: cfg.Engine,
		Registries: cfg.Registries, InsecureRegistries: insecure,
		RedirectHosts: cfg.RedirectHosts, TokenHosts: cfg.TokenHosts, AllowForeignLayers: cfg.AllowForeignLayers,
		RegistryAuthFile: cfg.RegistryAuthFile, PullFrom: append(pullFrom, cfg.PullFrom...),
		Signing: wire.SigningConfig{Key: st.ReportSigningKey}, JobKey: jobKey,
	}, scanner.Deps{JetStream: js("scanner"), Ready: natsconn.Ready(conns["scanner"]), Log: log, RemoteOptions: cfg.RemoteOptions,
		// The auth file first, then the Docker config and helpers.
		Keychain: authn.DefaultKeychain})
	if err != nil {
		return nil, err
	}
	res, err := results.New(results.Config{PolicyFile: cfg.Engine.PolicyFile, IgnoreFiles: cfg.Engine.IgnoreFiles,
		APITokensFile: cfg.APITokensFile, AdminToken: adminToken, APIAuth: cfg.APIAuth, AnonymousReads: st.OpenReads,
		Signing: wire.SigningConfig{Key: st.ReportSigningKey}, Quarantine: cmp.Or(cfg.Quarantine, "enforce"),
		DBUpdateInterval: cfg.DBUpdateInterval, OSVMirror: cfg.OSVMirror, DBStaleAfter: cfg.Engine.DBStaleAfter,
		OSVCacheDir: cmp.Or(cfg.OSVCacheDir, filepath.Join(cfg.DataDir, "osv-dumps"))},
		results.Deps{JetStream: js("results"), Bucket: bucket, Ready: natsconn.Ready(conns["results"]), Log: log})
	if err != nil {
		return nil, err
	}
	var hw *harbor.Service
	if lnHarbor != nil {
		st.HarborToken = cfg.HarborToken
		if st.HarborToken == "" {
			st.HarborToken, st.HarborTokenGenerated = randomToken(), true
		}
		hw, err = harbor.New(harbor.Config{Addr: lnHarbor.Addr().String(), Token: st.HarborToken, JobKey: jobKey,
			Registries: cfg.Registries, InsecureRegistries: insecure},
			harbor.Deps{JetStream: js("harbor"), Bucket: bucket, Ready: natsconn.Ready(conns["harbor"]), Log: log,
				SBOM: harbor.SPDX})
		if err != nil {
			return nil, err
		}
	}
	var nt *notifier.Service
	if lnNotifier != nil {
		nt, err = notifier.New(notifier.Config{Addr: lnNotifier.Addr().String(), AlertsFile: cfg.AlertsFile},
			notifier.Deps{JetStream: js("notifier"), Ready: natsconn.Ready(conns["notifier"]), Log: log})
		if err != nil {
			return nil, err
		}
	}
	var gw *gate.Service
	if lnGate != nil {
		gw, err = gate.New(gate.Config{Addr: lnGate.Addr().String(), Upstream: gateUpstream, Unscanned: cfg.GateUnscanned},
			gate.Deps{JetStream: js("gate"), Ready: natsconn.Ready(conns["gate"]), Log: log})
		if err != nil {
			return nil, err
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	st.cancel = cancel
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return ing.Serve(gctx, lnIngest) })
	if cfg.Workers > 0 {
		g.Go(func() error { return scn.Serve(gctx, lnScanner) })
	} else {
		_ = lnScanner.Close()
	}
	g.Go(func() error { return res.Serve(gctx, lnResults) })
	if gw != nil {
		g.Go(func() error { return gw.Serve(gctx, lnGate) })
	}
	if hw != nil {
		g.Go(func() error { return hw.Serve(gctx, lnHarbor) })
	}
	if nt != nil {
		g.Go(func() error { return nt.Serve(gctx, lnNotifier) })
	}
	st.group = g
	if st.OpenReads {
		log.Warn().Str("results", st.ResultsURL).
			Msg("report API serves reads without a token (loopback only); --api-tokens FILE or CUSTOMS_API_TOKENS closes it")
	}
	log.Info().Str("ingest", st.IngestURL).Str("results", st.ResultsURL).Str("nats", ns.URL()).
		Str("s3", st.S3URL).Str("registry", st.RegistryAddr).Msg("customs is up")
	return st, nil
}

// Wait blocks until the context given to Start is cancelled or a service
// fails, then stops everything.
func (st *Stack) Wait() error {
	err := st.group.Wait()
	st.close()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Stop cancels the services and waits for them.
func (st *Stack) Stop() error {
	if st.cancel != nil {
		st.cancel()
	}
	return st.Wait()
}

func (st *Stack) close() {
	for i := len(st.cleanup) - 1; i >= 0; i-- {
		st.cleanup[i]()
	}
	st.cleanup = nil
}

// Up runs Customs until ctx is cancelled.
func Up(ctx context.Context, cfg UpConfig) error {
	st, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	return st.Wait()
}

// publishDB makes the database file current in the embedded NATS unless
// a newer one was published there before.
func publishDB(ctx context.Context, js jetstream.JetStream, path string, optional bool, log zerolog.Logger) error {
	var db *vulndb.DB
	var err error
	switch {
	case path == "":
	case optional:
		db, err = vulndb.OpenOptional(path)
	default:
		db, err = vulndb.OpenFile(path)
	}
	if err != nil {
		return err
	}
	if db == nil {
		log.Warn().Str("path", path).Msg("no vulnerability database: reports will say vulnerabilities were not checked (run customs db update)")
		return nil
	}
	p, changed, err := vulndist.Publish(ctx, js, db)
	switch {
	case errors.Is(err, vulndist.ErrStale):
		log.Info().Str("file", db.Version()).Str("current", p.Version).Msg("a newer vulnerability database is already published; keeping it")
		return nil
	case err != nil:
		return err
	}
	log.Info().Str("version", p.Version).Bool("changed", changed).Int("advisories", p.Advisories).Msg("vulnerability database published")
	return nil
}

// loopbackAliases returns addr plus its other loopback spellings, because a
// registry pushed to as localhost:5000 names itself that way in its events.
func loopbackAliases(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []string{addr}
	}
	out := []string{addr}
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		for _, h := range []string{"127.0.0.1", "localhost"} {
			if h != host {
				out = append(out, net.JoinHostPort(h, port))
			}
		}
	}
	return out
}

// signingKey reads the report signing key from file, creating it on first
// start.
func signingKey(file string) (string, error) { return secretFile(file) }

// secretFile reads a generated secret from file, creating it (readable by
// its owner only) on first start.
func secretFile(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err == nil && len(strings.TrimSpace(string(b))) >= wire.MinKeyBytes {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s: %w", filepath.Base(file), err)
	}
	key := randomToken()
	if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Base(file), err)
	}
	return key, nil
}

// isLoopback reports whether addr's host is a loopback address or localhost.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
