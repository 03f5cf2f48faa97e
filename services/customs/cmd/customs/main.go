// Command customs is Customs' CLI: `customs up` runs everything in one
// process on embedded NATS and S3; `customs scan` scans one image.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/formats"
	"github.com/customs-scan/customs/pkg/osvfeed"
	"github.com/customs-scan/customs/services/customs"
	"github.com/customs-scan/customs/services/customs/internal/dbcmd"
	"github.com/customs-scan/customs/services/customs/internal/scancmd"
	"github.com/customs-scan/customs/services/gate"
	"github.com/customs-scan/customs/services/harbor"
	"github.com/customs-scan/customs/services/ingest"
	"github.com/customs-scan/customs/services/notifier"
	"github.com/customs-scan/customs/services/results"
	"github.com/customs-scan/customs/services/scanner"
)

const usage = `usage:
  customs up   [--data DIR] [--registry HOST:PORT] [--db FILE] [--ingest-addr ADDR] [--results-addr ADDR] ...
  customs scan [--format FORMAT] [--fail-on quarantine|warn|SEVERITY [--exit-code N]] [--insecure] [--db FILE] [--ignore FILE] IMAGE-REF
  customs scan [--format FORMAT] [--packages] [--platform OS/ARCH] --input IMAGE.tar
               FORMAT: json, table, cyclonedx, spdx-json, sarif, openvex
  customs db update [--mirror URL | --source URL|ZIP|DIR [--source ...]] [--db FILE] [--publish NATS-URL]
  customs db publish --nats NATS-URL [--db FILE]
  customs db info [--db FILE]
  customs token new --name NAME [--role read|admin] [--repositories PATTERN,...]
  customs token hash < TOKEN
  customs quarantine list [--repository R] [--state quarantined|released] [--server URL]
  customs quarantine release REGISTRY/REPOSITORY@DIGEST --reason TEXT [--server URL]
  customs quarantine add REGISTRY/REPOSITORY@DIGEST --reason TEXT [--server URL]
  customs alerts test --alerts FILE [--destination NAME]

Run "customs up -h" or "customs scan -h" for every flag.`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "customs:", err)
		var exit *scancmd.ExitError
		switch {
		case errors.As(err, &exit):
			os.Exit(exit.Code)
		case errors.Is(err, scancmd.ErrUsage) || errors.Is(err, flag.ErrHelp):
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: no command", scancmd.ErrUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "up":
		return up(ctx, args[1:], stderr)
	case "scan":
		return scanCmd(ctx, args[1:], stdout, stderr)
	case "db":
		return dbCmd(ctx, args[1:], stdout, stderr)
	case "token":
		return tokenCmd(args[1:], os.Stdin, stdout, stderr)
	case "quarantine":
		return quarantineCmd(ctx, args[1:], stdout, stderr)
	case "alerts":
		return alertsCmd(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", scancmd.ErrUsage, args[0])
}

// serviceEnv is the environment `customs up` reads: the same structs the
// standalone services parse, so a variable means the same in both. Flags
// typed by a person override them.
type serviceEnv struct {
	Ingest   ingest.Config
	Scanner  scanner.Config
	Results  results.Config
	Gate     gate.Config
	Harbor   harbor.Config
	Notifier notifier.Config
}

func up(ctx context.Context, args []string, stderr io.Writer) error {
	var se serviceEnv
	if err := env.Parse(&se); err != nil {
		return fmt.Errorf("%w: environment: %w", scancmd.ErrUsage, err)
	}
	cfg := customs.DefaultUpConfig()
	cfg.Limits = se.Scanner.Limits
	cfg.Memory, cfg.Streams = se.Scanner.Memory, se.Scanner.Streams
	cfg.TokenHosts = se.Scanner.TokenHosts
	// Secrets come from the environment only, never from flags (ps shows those).
	cfg.AdminToken, cfg.APIAuth = se.Results.AdminToken, se.Results.APIAuth
	fs := flag.NewFlagSet("customs up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "directory for NATS, S3 and registry data")
	fs.StringVar(&cfg.RegistryAddr, "registry", "", "also run a registry on this HOST:PORT behind the quarantine gate, its pushes wired to ingest")
	fs.StringVar(&cfg.GateAddr, "gate-addr", "", "run the quarantine gate on this HOST:PORT in front of --gate-upstream (an external registry)")
	fs.StringVar(&cfg.GateUpstream, "gate-upstream", se.Gate.Upstream, "registry URL the gate fronts (http://registry:5000)")
	fs.StringVar(&cfg.GateUnscanned, "gate-unscanned", se.Gate.Unscanned, "allow or deny: serve manifests Customs has no verdict for yet")
	cfg.PullFrom = se.Scanner.PullFrom
	fs.StringVar(&cfg.IngestAddr, "ingest-addr", cfg.IngestAddr, "webhook receiver address")
	fs.StringVar(&cfg.ResultsAddr, "results-addr", cfg.ResultsAddr, "report API address")
	fs.StringVar(&cfg.ScannerAddr, "scanner-addr", cfg.ScannerAddr, "scanner health/metrics address")
	fs.StringVar(&cfg.HarborAddr, "harbor-addr", cfg.HarborAddr, "Harbor Pluggable Scanner API address (\"\": none)")
	fs.StringVar(&cfg.AlertsFile, "alerts", se.Notifier.AlertsFile, "chat alerts file (YAML; see README): runs the notifier")
	fs.StringVar(&cfg.NotifierAddr, "notifier-addr", cfg.NotifierAddr, "notifier health/metrics address (with --alerts)")
	// A secret: from the environment only.
	cfg.HarborToken = se.Harbor.Token
	fs.StringVar(&cfg.NATSAddr, "nats-addr", cfg.NATSAddr, "embedded NATS client address")
	fs.StringVar(&cfg.S3Addr, "s3-addr", cfg.S3Addr, "embedded S3 address")
	fs.StringVar(&cfg.WebhookToken, "webhook-token", se.Ingest.WebhookToken, "bearer token webhooks must carry (generated and printed when empty)")
	fs.StringVar(&cfg.APITokensFile, "api-tokens", se.Results.APITokensFile, "YAML file of hashed report API tokens (see customs token new); without it reads are open on loopback")
	registries := fs.String("registries", strings.Join(se.Scanner.Registries, ","), "comma-separated registry hosts Customs may pull from")
	insecure := fs.String("insecure-registries", strings.Join(se.Scanner.InsecureRegistries, ","), "comma-separated registry hosts reached over plain HTTP")
	redirects := fs.String("registry-redirect-hosts", strings.Join(se.Scanner.RedirectHosts, ","), "comma-separated hosts registries may redirect to or use as token realm (never sent credentials)")
	fs.BoolVar(&cfg.AllowForeignLayers, "allow-foreign-layers", se.Scanner.AllowForeignLayers, "fetch foreign-layer URLs (from allowed hosts only)")
	fs.StringVar(&cfg.RegistryAuthFile, "registry-auth", se.Scanner.RegistryAuthFile, "registry credentials file (YAML or Docker config.json; see README), before the Docker keychain")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "images scanned at once (0: no scanner in this process)")
	cfg.Engine = se.Scanner.Engine
	fs.StringVar(&cfg.Engine.PolicyFile, "policy", cfg.Engine.PolicyFile, "verdict policy file (YAML)")
	upYara := fs.String("yara-rules", strings.Join(cfg.Engine.YARARules, ","), "comma-separated YARA rule files or directories")
	upScanners := fs.String("scanners", strings.Join(cfg.Engine.Detectors, ","), "comma-separated: packages,malware,secrets,misconfig (default all)")
	upHashes := fs.String("malware-hashes", strings.Join(cfg.Engine.MalwareHashes, ","), "comma-separated files of known-bad SHA-256s")
	fs.StringVar(&cfg.Engine.ClamdAddr, "clamd", cfg.Engine.ClamdAddr, "stream suspicious files to this clamd")
	fs.StringVar(&cfg.DBPath, "db", "", "vulnerability database to publish to the scanners at start (default: $CUSTOMS_DB or the user cache dir; missing: none)")
	upIgnore := fs.String("ignore", strings.Join(cfg.Engine.IgnoreFiles, ","), "comma-separated OpenVEX documents or ignore files")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	// Unlike the standalone results (dry-run when unset), customs up
	// enforces unless told otherwise: it is what a newcomer tries.
	cfg.Quarantine = "enforce"
	if _, set := os.LookupEnv("CUSTOMS_QUARANTINE"); set {
		cfg.Quarantine = se.Results.Quarantine
	}
	fs.StringVar(&cfg.Quarantine, "quarantine", cfg.Quarantine, "enforce, dry-run or off: what a quarantine verdict does")
	fs.StringVar(&cfg.OSVMirror, "osv-mirror", se.Results.OSVMirror, "keep the vulnerability database current from this mirror of OSV's dumps (<url>/<ecosystem>/all.zip), every $CUSTOMS_DB_UPDATE_INTERVAL (6h)")
	dbUpdate := fs.Bool("db-update", false, "keep the vulnerability database current from osv.dev (or --osv-mirror) every $CUSTOMS_DB_UPDATE_INTERVAL (6h); off unless asked for or a mirror is given")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.DBUpdateInterval, cfg.OSVCacheDir = upDBUpdateInterval(se.Results.DBUpdateInterval, cfg.OSVMirror != "", *dbUpdate), se.Results.OSVCacheDir
	lvl, err := zerolog.ParseLevel(*logLevel)
	if err != nil {
		return fmt.Errorf("%w: --log-level: %w", scancmd.ErrUsage, err)
	}
	cfg.Log = zerolog.New(zerolog.ConsoleWriter{Out: stderr}).Level(lvl).With().Timestamp().Logger()
	cfg.Registries = splitList(*registries)
	cfg.InsecureRegistries = splitList(*insecure)
	cfg.RedirectHosts = splitList(*redirects)
	cfg.Engine.YARARules = splitList(*upYara)
	cfg.Engine.Detectors = splitList(*upScanners)
	cfg.Engine.MalwareHashes = splitList(*upHashes)
	cfg.Engine.IgnoreFiles = splitList(*upIgnore)
	if cfg.DBPath == "" {
		// Without --db: $CUSTOMS_DB or the user cache dir, where a missing
		// file means no database yet.
		if cfg.DBPath, err = dbcmd.DefaultPath(); err != nil {
			return err
		}
		cfg.DBOptional = true
	}
	st, err := customs.Start(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "\nCustoms is up.\n  webhooks: %s/v1/webhooks/{distribution,harbor,ecr}\n  reports:  %s/v1/reports/{digest}\n",
		st.IngestURL, st.ResultsURL)
	if st.WebhookTokenGenerated {
		fmt.Fprintf(stderr, "  webhook token (generated; --webhook-token sets one): Authorization: Bearer %s\n", st.WebhookToken)
	}
	if st.OpenReads {
		fmt.Fprintln(stderr, "  report API: reads open without a token on loopback (--api-tokens FILE closes it)")
		fmt.Fprintf(stderr, "  admin token (generated, in %s): customs quarantine release … uses it\n", filepath.Join(cfg.DataDir, "admin-token"))
	} else {
		fmt.Fprintln(stderr, "  report API: Authorization: Bearer <token> required")
	}
	// Generated per start; the embedded NATS and S3 refuse anonymous clients.
	fmt.Fprintf(stderr, "  nats:     %s  (customs db publish --nats <this URL>)\n", st.NATSURL)
	fmt.Fprintf(stderr, "  s3:       %s  (access key %s, secret %s)\n", st.S3URL, st.S3AccessKeyID, st.S3SecretAccessKey)
	if st.HarborURL != "" {
		fmt.Fprintf(stderr, "  harbor:   %s  (register as a scanner in Harbor; Authorization: Bearer %s)\n", st.HarborURL, st.HarborToken)
	}
	if st.RegistryAddr != "" {
		fmt.Fprintf(stderr, "  registry: %s  (try: crane push --insecure image.tar %s/demo:latest)\n", st.RegistryAddr, st.RegistryAddr)
	}
	fmt.Fprintln(stderr)
	return st.Wait()
}

func scanCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The scanner's environment (engines, egress, limits) with the flags on top.
	var sc scanner.Config
	if err := env.Parse(&sc); err != nil {
		return fmt.Errorf("%w: environment: %w", scancmd.ErrUsage, err)
	}
	opts := scancmd.Options{Engine: sc.Engine, TokenHosts: sc.TokenHosts}
	fs := flag.NewFlagSet("customs scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.Input, "input", "", "scan a docker-save or OCI-layout tarball instead of a registry image")
	fs.StringVar(&opts.Format, "format", formats.JSON, "output format: "+strings.Join(formats.Names(), ", "))
	fs.BoolVar(&opts.Packages, "packages", false, "table: list the packages too")
	fs.StringVar(&opts.Platform, "platform", "", "an index: write this platform's report only (os/arch[/variant]); the single-image formats need it for an index of several platforms")
	fs.StringVar(&opts.FailOn, "fail-on", "", "exit with --exit-code when the verdict is at least quarantine or warn, or a vulnerability (not ignored) or finding is at least a severity (critical, high, medium, low, unknown)")
	fs.IntVar(&opts.ExitCode, "exit-code", 1, "exit code when --fail-on matches")
	fs.BoolVar(&opts.Insecure, "insecure", false, "reach the registry over plain HTTP")
	fs.Int64Var(&opts.Memory, "memory", sc.Memory, "bytes the scan may hold in buffers (file contents, layer streams, archives; 0: twice the streams' buffers, 9.5 MiB for 4 streams); GOMEMLIMIT follows unless set")
	opts.Streams, opts.SetMemoryLimit = sc.Streams, true
	scanRedirects := fs.String("registry-redirect-hosts", strings.Join(sc.RedirectHosts, ","), "comma-separated hosts the registry may redirect to or use as token realm (never sent credentials)")
	fs.BoolVar(&opts.AllowForeignLayers, "allow-foreign-layers", sc.AllowForeignLayers, "fetch foreign-layer URLs (from allowed hosts only)")
	fs.StringVar(&opts.Engine.PolicyFile, "policy", opts.Engine.PolicyFile, "verdict policy file (YAML)")
	yaraRules := fs.String("yara-rules", strings.Join(opts.Engine.YARARules, ","), "comma-separated YARA rule files or directories")
	scanners := fs.String("scanners", strings.Join(opts.Engine.Detectors, ","), "comma-separated: packages,malware,secrets,misconfig (default all)")
	hashes := fs.String("malware-hashes", strings.Join(opts.Engine.MalwareHashes, ","), "comma-separated files of known-bad SHA-256s")
	fs.StringVar(&opts.Engine.ClamdAddr, "clamd", opts.Engine.ClamdAddr, "stream suspicious files to this clamd (tcp://host:port or unix:///path)")
	fs.StringVar(&opts.DBPath, "db", "", "vulnerability database (default: $CUSTOMS_DB or the user cache dir)")
	fs.StringVar(&opts.LayerCacheDir, "layer-cache", os.Getenv("CUSTOMS_LAYER_CACHE_DIR"), "keep per-layer results in this directory and reuse them for shared layers")
	ignoreFiles := fs.String("ignore", strings.Join(opts.Engine.IgnoreFiles, ","), "comma-separated OpenVEX documents or ignore files")
	// CUSTOMS_MAX_* as for the scanner service; the flags override them.
	lim := sc.Limits.ScanLimits()
	fs.Int64Var(&lim.MaxUncompressedBytes, "max-uncompressed-bytes", lim.MaxUncompressedBytes, "fail when the layers expand beyond this")
	fs.Int64Var(&lim.MaxFiles, "max-files", lim.MaxFiles, "fail when the image holds more files")
	fs.Int64Var(&lim.MaxFileSize, "max-file-size", lim.MaxFileSize, "fail when one file is larger")
	// Flags may follow the image reference: parse, take the positional, parse the rest.
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) > 0 {
		opts.Ref = rest[0]
		if err := fs.Parse(rest[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("%w: unexpected arguments %v", scancmd.ErrUsage, fs.Args())
		}
	}
	opts.Limits = lim
	opts.RedirectHosts = splitList(*scanRedirects)
	opts.Engine.YARARules = splitList(*yaraRules)
	opts.Engine.Detectors = splitList(*scanners)
	opts.Engine.MalwareHashes = splitList(*hashes)
	opts.Engine.IgnoreFiles = splitList(*ignoreFiles)
	opts.Stderr = stderr
	exitCodeSet := false
	fs.Visit(func(f *flag.Flag) { exitCodeSet = exitCodeSet || f.Name == "exit-code" })
	if exitCodeSet && opts.FailOn == "" {
		return fmt.Errorf("%w: --exit-code needs --fail-on", scancmd.ErrUsage)
	}
	if opts.ExitCode < 1 || opts.ExitCode > 255 {
		return fmt.Errorf("%w: --exit-code must be from 1 to 255", scancmd.ErrUsage)
	}
	// Colour only for a person at a terminal (and not against NO_COLOR).
	if f, ok := stdout.(*os.File); ok && isatty.IsTerminal(f.Fd()) && os.Getenv("NO_COLOR") == "" {
		opts.Color = true
	}
	return scancmd.Run(ctx, opts, stdout)
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, splitList(v)...)
	return nil
}

// upDBUpdateInterval is how often `customs up` refreshes the database:
// only when asked (--db-update, a positive CUSTOMS_DB_UPDATE_INTERVAL) or
// given a mirror, so a newcomer on an offline machine sees no failing
// downloads; then CUSTOMS_DB_UPDATE_INTERVAL, else 6h.
func upDBUpdateInterval(fromEnv time.Duration, mirror, asked bool) time.Duration {
	_, set := os.LookupEnv("CUSTOMS_DB_UPDATE_INTERVAL")
	switch {
	case set && fromEnv <= 0:
		return 0
	case set:
		return fromEnv
	case mirror || asked:
		return results.DefaultDBUpdateInterval
	}
	return 0
}

func dbCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: customs db needs a subcommand: update, publish or info", scancmd.ErrUsage)
	}
	fs := flag.NewFlagSet("customs db "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("db", "", "database file (default: $CUSTOMS_DB or <user cache dir>/customs/vulndb.gob.gz)")
	switch args[0] {
	case "update":
		var sources listFlag
		fs.Var(&sources, "source", "OSV source: an all.zip URL (https://osv-vulnerabilities.storage.googleapis.com/<ecosystem>/all.zip), a zip file or a directory of OSV JSON; repeatable")
		mirror := fs.String("mirror", "", "base URL of OSV's per-ecosystem dumps, fetched when no --source is given (default: $"+dbcmd.EnvMirror+", else "+osvfeed.DefaultMirror+")")
		publishURL := fs.String("publish", "", "also publish the database to this NATS server (a running customs up: the nats://customs:…@127.0.0.1:4222 URL it printed)")
		progress := fs.Bool("progress", false, "show download progress even when stderr is not a terminal")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		sources = append(sources, fs.Args()...)
		opts := dbcmd.UpdateOptions{Sources: sources, Mirror: *mirror, Path: *path, PublishURL: *publishURL}
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "progress" {
				opts.Progress = progress
			}
		})
		if len(sources) > 0 && *mirror != "" {
			return fmt.Errorf("%w: --mirror and --source exclude each other", scancmd.ErrUsage)
		}
		return dbcmd.Update(ctx, opts, stdout, stderr)
	case "publish":
		natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server of the running Customs (customs up prints its URL, credentials included)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return dbcmd.Publish(ctx, *path, *natsURL, stdout)
	case "info":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return dbcmd.Info(*path, stdout)
	}
	return fmt.Errorf("%w: unknown db subcommand %q (want update, publish or info)", scancmd.ErrUsage, args[0])
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
