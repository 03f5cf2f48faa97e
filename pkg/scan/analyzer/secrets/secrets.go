// Package secrets is the analyzer that finds credentials in image files
// and in the image config (environment, labels, history) with the engine
// of pkg/secrets (gitleaks' default rule set; see there for how it runs
// and what it reports).
//
// Match offers every non-empty file except the files package managers
// and toolchains own (their databases, caches and logs by exact path,
// documentation, headers, toolchains with sample keys); Sniff drops
// binary content (told from the first bytes, not the name) and paths on
// gitleaks' global allowlist. Files up to 2 MiB are read whole; larger
// ones, up to WithMaxStreamedFileSize (64 MiB), are streamed through the
// rules in overlapping windows. Archives (zip, jar, war, ear, tar,
// tar.gz, gz; up to 128 MiB) are opened and their text members searched,
// with pkg/archive's depth and size limits. The engine also decodes
// base64, hex and percent-encoded segments.
//
// A finding never carries a whole secret: the excerpt shows the line with
// the secret reduced to at most its first 4 and last 2 characters (see
// pkg/secrets.Redact). The analyzer is Persistent: a secret added in one
// layer and deleted in a later one is still in the image anyone can pull.
package secrets

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/archive"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	engine "github.com/customs-scan/customs/pkg/secrets"
)

const (
	// Engine is written into Finding.Engine.
	Engine = "gitleaks"
	// DefaultMaxFileSize is the largest file read whole by default.
	DefaultMaxFileSize = 2 << 20
	// DefaultMaxStreamedFileSize is the largest file searched by default:
	// larger than DefaultMaxFileSize, it is read in overlapping windows.
	DefaultMaxStreamedFileSize = 64 << 20
	// MaxArchiveSize is the largest archive (zip, jar, war, ear, tar,
	// tar.gz, gz, by name) opened to search its members, the malware
	// analyzer's default: the walker holds it in memory once for both.
	MaxArchiveSize = 128 << 20
	// DefaultMaxFindingsPerFile bounds the findings of one file (or one
	// config string).
	DefaultMaxFindingsPerFile = 100
	// ConfigPath is Finding.Path for findings in the image config.
	ConfigPath = "(image config)"
)

// Analyzer is the secrets analyzer, safe for concurrent use. Analyzers
// share one compiled rule set per process (see rules).
type Analyzer struct {
	maxSize     int64
	maxStream   int64
	maxFindings int
	fp          string
}

// Option configures New.
type Option func(*options)

type options struct {
	maxFileSize   int64
	maxStreamSize int64
	maxFindings   int
}

// WithMaxFileSize sets the largest file read whole (default 2 MiB; at
// most 1 GiB, engine.MaxTextSize). Larger files are streamed through the
// rules in windows, up to WithMaxStreamedFileSize.
func WithMaxFileSize(n int64) Option { return func(o *options) { o.maxFileSize = n } }

// WithMaxStreamedFileSize sets the largest file searched (default 64
// MiB): files between WithMaxFileSize and this size are read in windows
// that overlap by more than any rule's match (engine.MaxMatchBytes), so
// a token at the end of a 3 MB JavaScript bundle is found. Larger files
// are not searched. A value not above WithMaxFileSize turns streaming
// off.
func WithMaxStreamedFileSize(n int64) Option { return func(o *options) { o.maxStreamSize = n } }

// WithMaxFindingsPerFile bounds the findings reported for one file or
// config string (default 100).
func WithMaxFindingsPerFile(n int) Option { return func(o *options) { o.maxFindings = n } }

// rules compiles gitleaks' default rules once per process, on first use.
// Compiling them costs about 40 ms of CPU and 40 MB of allocations, most
// of a scan answered from the layer cache; every Analyzer uses the default
// rules, so engines built per scan or per test share one, and a process
// that never needs them (no file offered, no config string) never pays.
// Not started in the background from New: its garbage would then overlap
// the scan's and raise the peak RSS (by 14 MB for `customs scan`).
var rules = sync.OnceValues(func() (*engine.Engine, error) { return engine.New() })

// New checks the options; gitleaks' default rules are compiled on first
// use (see rules). An error in the embedded rules is returned by Analyze
// and AnalyzeConfig.
func New(opts ...Option) (*Analyzer, error) {
	o := options{maxFileSize: DefaultMaxFileSize, maxStreamSize: DefaultMaxStreamedFileSize, maxFindings: DefaultMaxFindingsPerFile}
	for _, fn := range opts {
		if fn != nil {
			fn(&o)
		}
	}
	if o.maxFileSize <= 0 || o.maxFileSize > engine.MaxTextSize {
		return nil, fmt.Errorf("secrets: max file size %d out of range (1..%d)", o.maxFileSize, engine.MaxTextSize)
	}
	if o.maxFindings <= 0 {
		return nil, fmt.Errorf("secrets: max findings per file must be positive")
	}
	a := &Analyzer{maxSize: o.maxFileSize, maxStream: max(o.maxStreamSize, o.maxFileSize), maxFindings: o.maxFindings}
	a.fp = fmt.Sprintf("whole=%d streamed=%d findings=%d", a.maxSize, a.maxStream, a.maxFindings)
	return a, nil
}

// Fingerprint implements analyzer.Fingerprinter: the size limits decide
// which files are searched.
func (a *Analyzer) Fingerprint() string { return a.fp }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "secrets" }

// Version implements analyzer.Analyzer. Bump it with every change of the
// gitleaks module version (its rules are part of the output).
func (*Analyzer) Version() int { return 2 }

// KeepsDeleted implements analyzer.Persistent.
func (*Analyzer) KeepsDeleted() bool { return true }

// Rules returns the ids of the rules in use, in gitleaks' order.
func (a *Analyzer) Rules() []string {
	e, err := rules()
	if err != nil {
		return nil
	}
	return e.Rules()
}

// Match implements analyzer.Analyzer: non-empty files up to the size cap,
// except the files package managers and toolchains own (see skipPath).
// Everything else — configs, .env, keys, shell history, source, scripts,
// logs, caches, source maps — is offered; Sniff then drops binary
// content.
func (a *Analyzer) Match(path string, _ fs.FileMode, size int64) bool {
	if size <= 0 || size > a.maxSize && (size > MaxArchiveSize || !archive.HasArchiveName(path)) {
		return false
	}
	return !skipPath(path)
}

// MatchLarge implements analyzer.Windowed: files over the size read
// whole, up to WithMaxStreamedFileSize, are searched window by window.
func (a *Analyzer) MatchLarge(path string, _ fs.FileMode, size int64) bool {
	if size <= a.maxSize || size > a.maxStream || size <= MaxArchiveSize && archive.HasArchiveName(path) {
		return false
	}
	return !skipPath(path)
}

// ExactWindows implements analyzer.WindowExact: a window reports the
// matches that start before its last analyzer.WindowOverlap bytes (all of
// them in the file's last window), with the file's line numbers, so each
// match of a streamed file is reported once.
func (*Analyzer) ExactWindows() bool { return true }

// Sniff implements analyzer.Sniffer: binary content (see binary: a NUL
// byte, control bytes or invalid UTF-8 in its first 512 bytes) is kept
// only for gitleaks' path-only rules (e.g. PKCS#12 files), and paths on
// gitleaks' global allowlist are skipped.
func (a *Analyzer) Sniff(path string, head []byte) bool {
	e, err := rules()
	if err != nil {
		return true // Analyze reports the error
	}
	if e.PathAllowed(path) {
		return false
	}
	if binary(head) {
		return archive.Sniff(head) != archive.None || len(e.PathFindings(path)) > 0
	}
	return true
}

// Analyze implements analyzer.Analyzer.
func (a *Analyzer) Analyze(ctx context.Context, f *analyzer.File) (*analyzer.Result, error) {
	e, err := rules()
	if err != nil {
		return nil, err
	}
	if e.PathAllowed(f.Path) {
		return nil, nil
	}
	var res analyzer.Result
	if f.Offset == 0 {
		for _, fi := range e.PathFindings(f.Path) {
			res.Findings = append(res.Findings, finding(&fi, ""))
		}
		if head := fileHead(f); binary(head) {
			if !f.Window && archive.Sniff(head) != archive.None {
				return a.walk(ctx, e, f, &res)
			}
			return &res, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// In a window that is not the file's last, a match starting in the
	// overlap may be cut by the window's end: the next window, which
	// starts before it, reports it.
	owned := len(f.Data)
	if f.Window && f.Offset+int64(len(f.Data)) < f.Size {
		owned = len(f.Data) - analyzer.WindowOverlap
	}
	for _, fi := range e.Find(f.Path, f.Data, a.maxFindings) {
		if fi.Offset >= owned {
			continue
		}
		fd := finding(&fi, "")
		fd.Line += f.Line
		res.Findings = append(res.Findings, fd)
	}
	return &res, nil
}

// fileHead returns the first SniffLen bytes of f (File.At or Data).
func fileHead(f *analyzer.File) []byte {
	if f.At == nil {
		return f.Data[:min(len(f.Data), analyzer.SniffLen)]
	}
	head := make([]byte, min(f.Size, analyzer.SniffLen))
	n, _ := f.At.ReadAt(head, 0)
	return head[:n]
}

// ReadsAt implements analyzer.ReaderAtUser: an archive is walked through
// File.ReaderAt; other files are searched in File.Data.
func (*Analyzer) ReadsAt(_ string, head []byte) bool {
	return binary(head) && archive.Sniff(head) != archive.None
}

// walk searches the members of the archive data (the file at path) with
// pkg/archive's limits (depth 4, 64 MiB per member, 256 MiB decompressed,
// 100,000 members): text members up to the size read whole, not on the
// skip list or gitleaks' allowlist, are searched; findings carry the
// member's path ("app.war!/WEB-INF/classes/app.properties"). A
// decompression bomb stops the walk (the malware analyzer reports it).
func (a *Analyzer) walk(ctx context.Context, e *engine.Engine, file *analyzer.File, res *analyzer.Result) (*analyzer.Result, error) {
	path := file.Path
	n := 0
	v := archive.Visitor{
		Want: func(m *archive.Entry) bool {
			return m.Size > 0 && m.Size <= a.maxSize && !skipPath(m.Name) && !e.PathAllowed(m.Path) && !classFile(m.Name)
		},
		Visit: func(m *archive.Entry, content []byte) error {
			if n >= a.maxFindings || m.Size > a.maxSize || skipPath(m.Name) || e.PathAllowed(m.Path) {
				return nil // a nested archive read to be opened
			}
			for _, fi := range e.PathFindings(m.Path) {
				f := finding(&fi, "")
				f.Path = m.Path
				res.Findings = append(res.Findings, f)
				n++
			}
			if binary(content[:min(len(content), analyzer.SniffLen)]) {
				return nil
			}
			for _, fi := range e.Find(m.Path, content, a.maxFindings-n) {
				f := finding(&fi, "")
				f.Path = m.Path
				res.Findings = append(res.Findings, f)
				n++
			}
			return nil
		},
	}
	lim := archive.DefaultLimits()
	lim.Memory = file.Memory
	var err error
	if file.At != nil {
		_, err = archive.WalkAt(ctx, path, file.At, file.Size, lim, v)
	} else {
		_, err = archive.Walk(ctx, path, file.Data, lim, v)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// finding is the report form of an engine finding; where, when set,
// says where in the image config it is.
func finding(f *engine.Finding, where string) report.Finding {
	title := f.Description
	if where != "" {
		title += " (" + where + ")"
	}
	return report.Finding{
		Kind:     report.KindSecret,
		Rule:     f.Rule,
		Severity: f.Severity,
		Title:    title,
		Line:     f.Line,
		Excerpt:  f.Excerpt,
		Engine:   Engine,
		Encoded:  f.Encoded,
	}
}

// AnalyzeConfig implements analyzer.ConfigAnalyzer: the rules run over
// each environment entry ("NAME=value"), each label ("key=value") and each
// history entry's created_by, where build arguments leak (BuildKit writes
// "RUN |1 NPM_TOKEN=… /bin/sh -c …", "ARG NPM_TOKEN=…"). Settings whose
// name says they hold a secret (DB_PASSWORD, *_TOKEN, *_API_KEY…) and
// whose value is a literal, not a placeholder or a reference, are
// reported too (config-env-secret, config-build-arg-secret,
// config-label-secret) when gitleaks found nothing in them.
//
// An environment or label finding carries the layer of the ENV or LABEL
// step that set it (an empty-layer step: the next layer, or the one
// before it at the end of the history; none when the history does not
// say), a history finding the layer its step created. A secret already
// reported in the environment or a label, or in an earlier history step
// (every RUN after an ARG repeats it), is not reported again for history.
func (a *Analyzer) AnalyzeConfig(ctx context.Context, img *analyzer.Image, cfg *v1.ConfigFile) (*analyzer.Result, error) {
	if cfg == nil {
		return nil, nil
	}
	e, err := rules()
	if err != nil {
		return nil, err
	}
	var layers []report.Layer
	if img != nil {
		layers = img.Layers
	}
	steps := newHistorySteps(cfg.History, layers)
	var res analyzer.Result
	var seen engine.Seen
	// scan runs gitleaks' rules over text and reports whether they found
	// anything (new or not).
	scan := func(text, where, layer string, history bool) bool {
		found := e.Find("", []byte(text), a.maxFindings)
		for _, fi := range found {
			if !seen.Add(&fi) && history {
				continue
			}
			f := finding(&fi, where)
			f.Path, f.Layer, f.Line = ConfigPath, layer, 0
			res.Findings = append(res.Findings, f)
		}
		return len(found) > 0
	}
	literal := map[string]bool{} // name=value of literal findings
	for _, kv := range cfg.Config.Env {
		name, value, _ := strings.Cut(kv, "=")
		layer, _ := steps.setter("ENV", name)
		if !scan(kv, "env "+name, layer, false) && secretName(name) && literalSecret(name, value) {
			literal[kv] = true
			res.Findings = append(res.Findings, configFinding(RuleEnvSecret,
				"Literal secret in an ENV variable: every container of the image has it", "env "+name, name, value, layer))
		}
	}
	labels := make([]string, 0, len(cfg.Config.Labels))
	for k := range cfg.Config.Labels {
		labels = append(labels, k)
	}
	slices.Sort(labels)
	for _, k := range labels {
		v := cfg.Config.Labels[k]
		layer, _ := steps.setter("LABEL", k)
		if !scan(k+"="+v, "label "+k, layer, false) && secretName(k) && literalSecret(k, v) {
			res.Findings = append(res.Findings, configFinding(RuleLabelSecret,
				"Literal secret in a label: anyone who can pull the image reads it", "label "+k, k, v, layer))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, h := range cfg.History {
		if h.CreatedBy == "" {
			continue
		}
		step := fmt.Sprintf("history step %d", i+1)
		scan(h.CreatedBy, step, steps.layers[i], true)
		for _, kv := range buildArgs(h.CreatedBy) {
			name, value := kv[0], kv[1]
			key := name + "=" + value
			if literal[key] || !secretName(name) || !literalSecret(name, value) {
				continue
			}
			literal[key] = true
			if len(e.Find("", []byte(key), 1)) > 0 {
				continue // gitleaks' finding in this step (or an earlier one) says it
			}
			res.Findings = append(res.Findings, configFinding(RuleBuildArgSecret,
				"Literal secret in a build argument: the image history records it", "build arg "+name+", "+step, name, value, steps.layers[i]))
		}
	}
	return &res, nil
}

// RedactText implements analyzer.Redactor: the build steps a report
// shows whole get the same redaction as the findings' excerpts.
// Without rules nothing is known to be safe to show.
func (a *Analyzer) RedactText(text string) string {
	e, err := rules()
	if err != nil {
		return "(not shown: secret rules did not compile)"
	}
	return e.RedactText(text)
}
