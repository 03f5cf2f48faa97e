// Package secrets finds credentials in image files and in the image
// config (environment, labels, history) with gitleaks' default rule set
// (github.com/zricethezav/gitleaks/v8, MIT): 220-odd rules, each with
// keywords, a regular expression, an optional entropy threshold and
// allowlists, plus gitleaks' global allowlists (paths such as lock files
// and vendored dependencies, placeholder values, stop words).
//
// The rules are loaded from gitleaks' own config package (its embedded
// gitleaks.toml, parsed with gitleaks' ViperConfig.Translate) and run by
// this package's engine, which follows gitleaks' detector for one
// fragment but is built for a registry scanner:
//
//   - One Aho–Corasick pass over a file finds every keyword
//     (case-insensitively, without lowercasing a copy of the file); a file
//     holding no keyword of a rule never reaches that rule's regex, and a
//     file holding none at all never reaches any.
//   - A regex runs only on the lines around its keywords' hits when that
//     provably finds the same matches (every match contains a keyword and
//     spans a bounded number of lines: checked on the parsed expression
//     when the analyzer is built); otherwise on the whole file. For most
//     rules a hit first has to pass a short anchored regex (the keyword
//     and what must follow it, e.g. "key" then an assignment), so the
//     full regex runs on a few hundred bytes around real candidates only.
//     Work per hit is bounded and at most 1000 candidate matches of a
//     text are examined: adversarial files cost linear time.
//   - No logging (gitleaks' trace logs carry secrets), no process-wide
//     state, safe for concurrent use; "gitleaks:allow" comments are not
//     honoured (they would let an image author hide a credential).
//   - No base64/hex decoding passes (gitleaks' library default).
//   - Two cloud credentials gitleaks only knows as generic-api-key are
//     named when key name and value have their exact shape:
//     aws-secret-access-key (aws_secret_access_key = <40 chars>) and
//     azure-storage-account-key (AccountKey=<86 chars>==).
//
// Severity (see Severity): CRITICAL for private keys, AWS/GCP/Azure
// credentials and GitHub/GitLab tokens, MEDIUM for generic-api-key, HIGH
// for every other rule.
//
// A finding never carries a whole secret: the excerpt shows the line with
// the secret reduced to at most its first 4 and last 2 characters (see
// Redact). The analyzer is Persistent: a secret added in one layer and
// deleted in a later one is still in the image anyone can pull.
package secrets

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

const (
	// Engine is written into Finding.Engine.
	Engine = "gitleaks"
	// DefaultMaxFileSize is the largest file scanned by default.
	DefaultMaxFileSize = 2 << 20
	// DefaultMaxFindingsPerFile bounds the findings of one file (or one
	// config string).
	DefaultMaxFindingsPerFile = 100
	// ConfigPath is Finding.Path for findings in the image config.
	ConfigPath = "(image config)"
	// maxFileSizeLimit keeps offsets within int32.
	maxFileSizeLimit = 1 << 30
)

// Analyzer is the secrets analyzer. Build it once per process with New
// (compiling the rules takes a moment) and share it: it is safe for
// concurrent use.
type Analyzer struct {
	e           *engine
	maxSize     int64
	maxFindings int
}

// Option configures New.
type Option func(*options)

type options struct {
	maxFileSize int64
	maxFindings int
}

// WithMaxFileSize sets the largest file scanned (default 2 MiB; at most
// 1 GiB). Larger files are not matched.
func WithMaxFileSize(n int64) Option { return func(o *options) { o.maxFileSize = n } }

// WithMaxFindingsPerFile bounds the findings reported for one file or
// config string (default 100).
func WithMaxFindingsPerFile(n int) Option { return func(o *options) { o.maxFindings = n } }

// New compiles gitleaks' default rules.
func New(opts ...Option) (*Analyzer, error) {
	o := options{maxFileSize: DefaultMaxFileSize, maxFindings: DefaultMaxFindingsPerFile}
	for _, fn := range opts {
		if fn != nil {
			fn(&o)
		}
	}
	if o.maxFileSize <= 0 || o.maxFileSize > maxFileSizeLimit {
		return nil, fmt.Errorf("secrets: max file size %d out of range (1..%d)", o.maxFileSize, maxFileSizeLimit)
	}
	if o.maxFindings <= 0 {
		return nil, fmt.Errorf("secrets: max findings per file must be positive")
	}
	cfg, err := loadDefaultConfig()
	if err != nil {
		return nil, err
	}
	e, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}
	return &Analyzer{e: e, maxSize: o.maxFileSize, maxFindings: o.maxFindings}, nil
}

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "secrets" }

// Version implements analyzer.Analyzer. Bump it with every change of the
// gitleaks module version (its rules are part of the output).
func (*Analyzer) Version() int { return 1 }

// KeepsDeleted implements analyzer.Persistent.
func (*Analyzer) KeepsDeleted() bool { return true }

// Rules returns the ids of the rules in use, in gitleaks' order.
func (a *Analyzer) Rules() []string {
	var ids []string
	for _, r := range a.e.rules {
		ids = append(ids, r.id)
	}
	for _, r := range a.e.pathRules {
		ids = append(ids, r.id)
	}
	return ids
}

// Match implements analyzer.Analyzer: non-empty files up to the size cap,
// except binary formats (by extension) and trees that hold no secrets
// (documentation, locales, headers, certificate bundles, toolchains).
// Everything else — configs, .env, keys, shell history, source, scripts —
// is offered; Sniff then drops binary content.
func (a *Analyzer) Match(path string, _ fs.FileMode, size int64) bool {
	if size <= 0 || size > a.maxSize {
		return false
	}
	return !skipPath(path)
}

// Sniff implements analyzer.Sniffer: content with a NUL byte in its first
// 512 bytes is binary (kept only for gitleaks' path-only rules, e.g.
// PKCS#12 files), and paths on gitleaks' global allowlist are skipped.
func (a *Analyzer) Sniff(path string, head []byte) bool {
	if a.e.pathAllowed(path) {
		return false
	}
	if bytes.IndexByte(head, 0) >= 0 {
		return len(a.e.pathFindings(path)) > 0
	}
	return true
}

// Analyze implements analyzer.Analyzer.
func (a *Analyzer) Analyze(ctx context.Context, f *analyzer.File) (*analyzer.Result, error) {
	if a.e.pathAllowed(f.Path) {
		return nil, nil
	}
	var res analyzer.Result
	for _, r := range a.e.pathFindings(f.Path) {
		res.Findings = append(res.Findings, report.Finding{
			Kind:     report.KindSecret,
			Rule:     r.id,
			Severity: r.severity,
			Title:    r.desc,
			Engine:   Engine,
		})
	}
	head := f.Data[:min(len(f.Data), analyzer.SniffLen)]
	if bytes.IndexByte(head, 0) >= 0 {
		return &res, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cands := a.e.detect(f.Path, f.Data, a.maxFindings)
	for i := range cands {
		c := &cands[i]
		id, desc, sev := refine(f.Data, c)
		res.Findings = append(res.Findings, report.Finding{
			Kind:     report.KindSecret,
			Rule:     id,
			Severity: sev,
			Title:    desc,
			Line:     c.line,
			Excerpt:  excerpt(f.Data, c, cands),
			Engine:   Engine,
		})
	}
	return &res, nil
}

// AnalyzeConfig implements analyzer.ConfigAnalyzer: the rules run over
// each environment entry ("NAME=value"), each label ("key=value") and each
// history entry's created_by, where build arguments leak (BuildKit writes
// "RUN |1 NPM_TOKEN=… /bin/sh -c …", "ARG NPM_TOKEN=…"). A history finding
// carries the layer its step created (an empty-layer step: the next
// layer). A secret already reported in the environment or a label, or in
// an earlier history step (every RUN after an ARG repeats it), is not
// reported again for history.
func (a *Analyzer) AnalyzeConfig(ctx context.Context, img *analyzer.Image, cfg *v1.ConfigFile) (*analyzer.Result, error) {
	if cfg == nil {
		return nil, nil
	}
	var res analyzer.Result
	type key struct{ rule, secret string }
	seen := map[key]bool{}
	scan := func(text, where, layer string, history bool) {
		data := []byte(text)
		cands := a.e.detect("", data, a.maxFindings)
		for i := range cands {
			c := &cands[i]
			id, desc, sev := refine(data, c)
			k := key{id, c.secret}
			if history && seen[k] {
				continue
			}
			seen[k] = true
			res.Findings = append(res.Findings, report.Finding{
				Kind:     report.KindSecret,
				Rule:     id,
				Severity: sev,
				Title:    desc + " (" + where + ")",
				Path:     ConfigPath,
				Layer:    layer,
				Excerpt:  excerpt(data, c, cands),
				Engine:   Engine,
			})
		}
	}
	for _, kv := range cfg.Config.Env {
		name, _, _ := strings.Cut(kv, "=")
		scan(kv, "env "+name, "", false)
	}
	labels := make([]string, 0, len(cfg.Config.Labels))
	for k := range cfg.Config.Labels {
		labels = append(labels, k)
	}
	slices.Sort(labels)
	for _, k := range labels {
		scan(k+"="+cfg.Config.Labels[k], "label "+k, "", false)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var layers []report.Layer
	if img != nil {
		layers = img.Layers
	}
	historyLayers := analyzer.HistoryLayers(cfg.History, layers)
	for i, h := range cfg.History {
		if h.CreatedBy == "" {
			continue
		}
		scan(h.CreatedBy, fmt.Sprintf("history step %d", i+1), historyLayers[i], true)
	}
	return &res, nil
}
