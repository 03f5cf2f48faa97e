package inspect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/customs-scan/customs/pkg/clamd"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer/apk"
	"github.com/customs-scan/customs/pkg/scan/analyzer/clamav"
	"github.com/customs-scan/customs/pkg/scan/analyzer/composer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/dotnet"
	"github.com/customs-scan/customs/pkg/scan/analyzer/dpkg"
	"github.com/customs-scan/customs/pkg/scan/analyzer/gem"
	"github.com/customs-scan/customs/pkg/scan/analyzer/gobinary"
	"github.com/customs-scan/customs/pkg/scan/analyzer/java"
	"github.com/customs-scan/customs/pkg/scan/analyzer/malware"
	"github.com/customs-scan/customs/pkg/scan/analyzer/misconfig"
	"github.com/customs-scan/customs/pkg/scan/analyzer/npm"
	"github.com/customs-scan/customs/pkg/scan/analyzer/osrelease"
	"github.com/customs-scan/customs/pkg/scan/analyzer/python"
	"github.com/customs-scan/customs/pkg/scan/analyzer/rpm"
	"github.com/customs-scan/customs/pkg/scan/analyzer/rust"
	"github.com/customs-scan/customs/pkg/scan/analyzer/secrets"
	"github.com/customs-scan/customs/pkg/scan/analyzer/yara"
	"github.com/customs-scan/customs/pkg/verdict"
)

// EngineConfig says which detection engines and policy a process uses. The
// scanner service reads it from the environment; `customs scan` from flags.
type EngineConfig struct {
	// Detectors selects what is looked for: packages, malware, secrets,
	// misconfig (DetectorPackages, …; default: all). Users name it
	// CUSTOMS_SCANNERS and --scanners.
	Detectors []string `env:"CUSTOMS_SCANNERS" envSeparator:","`
	// MalwareHashes are files of known-bad SHA-256s ("hex [name]" lines)
	// added to the built-in list.
	MalwareHashes []string `env:"CUSTOMS_MALWARE_HASHES" envSeparator:","`
	// PolicyFile is a verdict policy (YAML); empty: the built-in rules.
	PolicyFile string `env:"CUSTOMS_POLICY_FILE"`
	// YARARules are rule files or directories (comma-separated).
	YARARules []string `env:"CUSTOMS_YARA_RULES" envSeparator:","`
	// ClamdAddr, when set, streams suspicious files to clamd
	// ("tcp://host:3310", "unix:///run/clamav/clamd.ctl").
	ClamdAddr string `env:"CUSTOMS_CLAMD_ADDR"`
	// ClamdMaxStreamBytes must not exceed clamd's StreamMaxLength.
	ClamdMaxStreamBytes int64 `env:"CUSTOMS_CLAMD_MAX_STREAM_BYTES" envDefault:"26214400"`
	// IgnoreFiles are OpenVEX documents or ignore files (or directories of
	// them) marking vulnerabilities as not affecting images.
	IgnoreFiles []string `env:"CUSTOMS_IGNORE_FILES" envSeparator:","`
	// DBStaleAfter is the database age past which reports say
	// vulnerability_db.stale (0: 72h; negative: never).
	DBStaleAfter time.Duration `env:"CUSTOMS_DB_STALE_AFTER" envDefault:"72h"`
	// MaxSecretFileBytes is the largest file the secret rules search;
	// files over 2 MiB are streamed through them in overlapping windows.
	// 0 means the default (64 MiB).
	MaxSecretFileBytes int64 `env:"CUSTOMS_MAX_SECRET_FILE_BYTES" envDefault:"67108864"`
}

// PackageAnalyzers returns a fresh instance of every package analyzer:
// the "packages" detector, and what the scan library's tests run. The
// threat analyzers (malware, secrets, misconfig, YARA, ClamAV) need
// configuration and are added by NewEngine.
func PackageAnalyzers() []scan.Analyzer {
	return []scan.Analyzer{
		osrelease.New(),
		dpkg.New(),
		apk.New(),
		gobinary.New(),
		npm.New(),
		composer.New(),
		python.New(),
		gem.New(),
		java.New(),
		rust.New(),
		dotnet.New(),
		rpm.New(),
	}
}

// Engine holds what is compiled once per process and shared by every scan:
// the analyzers (signature sets, rules), the scanner running them and the
// verdict policy.
type Engine struct {
	analyzers   []scan.Analyzer
	scanner     *scan.Scanner
	rules       verdict.Rules
	packagesOff bool
	clamd       *clamd.Client
}

// NewEngine compiles the analyzers cfg selects, builds the one scanner
// every scan of the process uses (opts: limits, layer cache; the engine
// chooses the analyzers) and loads the policy.
func NewEngine(cfg EngineConfig, opts ...scan.Option) (*Engine, error) {
	want, err := detectors(cfg.Detectors)
	if err != nil {
		return nil, err
	}
	e := &Engine{packagesOff: !want[DetectorPackages]}
	if e.rules, err = verdict.Load(cfg.PolicyFile, cfg.IgnoreFiles); err != nil {
		return nil, err
	}
	e.rules.StaleAfter = cfg.DBStaleAfter
	if want[DetectorPackages] {
		e.analyzers = append(e.analyzers, PackageAnalyzers()...)
	} else {
		// The OS is still worth knowing (and cheap).
		e.analyzers = append(e.analyzers, osrelease.New())
	}
	if want[DetectorMalware] {
		var mopts []malware.Option
		for _, f := range cfg.MalwareHashes {
			if f = strings.TrimSpace(f); f != "" {
				mopts = append(mopts, malware.WithHashFile(f))
			}
		}
		m, err := malware.New(mopts...)
		if err != nil {
			return nil, fmt.Errorf("malware signatures: %w", err)
		}
		e.analyzers = append(e.analyzers, m)
	}
	if want[DetectorSecrets] {
		var sopts []secrets.Option
		if cfg.MaxSecretFileBytes > 0 {
			sopts = append(sopts, secrets.WithMaxStreamedFileSize(cfg.MaxSecretFileBytes))
		}
		sec, err := secrets.New(sopts...)
		if err != nil {
			return nil, fmt.Errorf("secret rules: %w", err)
		}
		e.analyzers = append(e.analyzers, sec)
	}
	if want[DetectorMisconfig] {
		e.analyzers = append(e.analyzers, misconfig.New())
	}
	var files []string
	for _, f := range cfg.YARARules {
		if f = strings.TrimSpace(f); f != "" {
			files = append(files, f)
		}
	}
	if len(files) > 0 && want[DetectorMalware] {
		y, err := yara.New(yara.Options{Files: files})
		if err != nil {
			return nil, fmt.Errorf("yara rules: %w", err)
		}
		e.analyzers = append(e.analyzers, y)
	}
	if cfg.ClamdAddr != "" && want[DetectorMalware] {
		var opts []clamd.Option
		if cfg.ClamdMaxStreamBytes > 0 {
			opts = append(opts, clamd.WithMaxStreamBytes(cfg.ClamdMaxStreamBytes))
		}
		c, err := clamd.New(cfg.ClamdAddr, opts...)
		if err != nil {
			return nil, fmt.Errorf("clamd %s: %w", cfg.ClamdAddr, err)
		}
		e.clamd = c
		e.analyzers = append(e.analyzers, clamav.New(c, clamav.Options{}))
	}
	if e.scanner, err = scan.New(append(slices.Clip(opts), scan.WithAnalyzers(e.analyzers...))...); err != nil {
		return nil, err
	}
	return e, nil
}

// Detector names for EngineConfig.Detectors (the values of --scanners and
// CUSTOMS_SCANNERS).
const (
	DetectorPackages  = "packages"
	DetectorMalware   = "malware"
	DetectorSecrets   = "secrets"
	DetectorMisconfig = "misconfig"
)

// AllDetectors is the default selection.
var AllDetectors = []string{DetectorPackages, DetectorMalware, DetectorSecrets, DetectorMisconfig}

func detectors(list []string) (map[string]bool, error) {
	want := map[string]bool{}
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	if len(want) == 0 {
		for _, s := range AllDetectors {
			want[s] = true
		}
	}
	for s := range want {
		if !slices.Contains(AllDetectors, s) {
			// "scanner" is the word users type (--scanners).
			return nil, fmt.Errorf("unknown scanner %q (want some of %s)", s, strings.Join(AllDetectors, ", "))
		}
	}
	return want, nil
}

// Options returns run options using the engine's scanner and policy.
func (e *Engine) Options() Options {
	return Options{Scanner: e.scanner, Rules: e.rules, PackagesOff: e.packagesOff}
}

// Ready checks external engines (clamd) answer; for /readyz.
func (e *Engine) Ready(ctx context.Context) error {
	if e.clamd == nil {
		return nil
	}
	if err := e.clamd.Ping(ctx); err != nil {
		return fmt.Errorf("clamd: %w", err)
	}
	return nil
}

// Close releases engine resources.
func (e *Engine) Close() error { return nil }
