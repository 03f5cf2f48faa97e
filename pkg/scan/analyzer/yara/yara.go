// Package yara is an analyzer that runs operators' YARA rules (compiled
// by pkg/yara, pure Go) over executables, scripts and archives.
//
//	a, err := yara.New(yara.Options{Files: []string{"/etc/customs/rules"}})
//	res, err := scan.Image(ctx, img, scan.WithAnalyzers(append(inspect.PackageAnalyzers(), a)...))
//
// Each matching rule is a malware finding: Rule "yara:<rule name>",
// Engine "yara", severity from the rule's meta "severity" (low, medium,
// high, critical) or HIGH. Findings survive a later layer deleting the
// file (Persistent).
package yara

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	engine "github.com/customs-scan/customs/pkg/yara"
)

// Name is the analyzer's name and the findings' Engine.
const Name = "yara"

// DefaultMaxFileSize bounds the files scanned by default.
const DefaultMaxFileSize = 64 << 20

// Options configure New. Exactly one of Source, Files or Rules is
// needed.
type Options struct {
	// Source is YARA rule text.
	Source string
	// Files are rule files or directories of *.yar / *.yara files.
	Files []string
	// Rules are already compiled rules (shared between analyzers).
	Rules *engine.Rules
	// MaxFileSize bounds the files scanned (default 64 MiB); larger ones
	// are not matched. It cannot raise scan.Limits.MaxAnalyzedFileSize.
	MaxFileSize int64
	// AllFiles scans every regular file up to MaxFileSize, not only the
	// suspicious ones (executables, scripts, archives, tmp/).
	AllFiles bool
	// SkipUnsupported leaves out rules outside the supported subset
	// instead of failing (see pkg/yara.CompileOptions); Rules().Skipped()
	// lists them, for the caller to log.
	SkipUnsupported bool
}

// Analyzer runs compiled YARA rules over files.
type Analyzer struct {
	rules *engine.Rules
	max   int64
	all   bool
}

var (
	_ analyzer.Analyzer   = (*Analyzer)(nil)
	_ analyzer.Persistent = (*Analyzer)(nil)
)

// New compiles the rules once and returns the analyzer.
func New(opts Options) (*Analyzer, error) {
	rules := opts.Rules
	n := 0
	for _, set := range []bool{opts.Source != "", len(opts.Files) > 0, opts.Rules != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("yara: give exactly one of Options.Source, Files or Rules")
	}
	var err error
	switch {
	case opts.Source != "":
		rules, err = engine.CompileWith(engine.CompileOptions{SkipUnsupported: opts.SkipUnsupported}, opts.Source)
	case len(opts.Files) > 0:
		rules, err = engine.CompileFilesWith(engine.CompileOptions{SkipUnsupported: opts.SkipUnsupported}, opts.Files...)
	}
	if err != nil {
		return nil, err
	}
	max := opts.MaxFileSize
	if max <= 0 {
		max = DefaultMaxFileSize
	}
	return &Analyzer{rules: rules, max: max, all: opts.AllFiles}, nil
}

// Rules returns the compiled rules.
func (a *Analyzer) Rules() *engine.Rules { return a.rules }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return Name }

// Version implements analyzer.Analyzer. The output also depends on the
// rules, which Fingerprint covers.
func (*Analyzer) Version() int { return 1 }

// KeepsDeleted implements analyzer.Persistent.
func (*Analyzer) KeepsDeleted() bool { return true }

// Match implements analyzer.Analyzer: executables (any x bit), files
// with a suspicious extension or under tmp/, var/tmp/, dev/shm/, not
// empty and not larger than MaxFileSize. It does not allocate.
func (a *Analyzer) Match(path string, mode fs.FileMode, size int64) bool {
	if size <= 0 || size > a.max {
		return false
	}
	return a.all || analyzer.Suspicious(path, mode)
}

// Analyze implements analyzer.Analyzer.
func (a *Analyzer) Analyze(ctx context.Context, f *analyzer.File) (*analyzer.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	matches := a.rules.Scan(f.Data)
	if len(matches) == 0 {
		return nil, nil
	}
	sum := sha256.Sum256(f.Data)
	digest := hex.EncodeToString(sum[:])
	out := &analyzer.Result{}
	for _, m := range matches {
		title := "YARA: " + m.Rule
		if d := m.Meta["description"]; d != "" {
			title += ": " + d
		}
		out.Findings = append(out.Findings, report.Finding{
			Kind:     report.KindMalware,
			Rule:     "yara:" + m.Rule,
			Severity: severity(m.Meta["severity"]),
			Title:    title,
			Excerpt:  excerpt(m.Strings),
			SHA256:   digest,
			Engine:   Name,
		})
	}
	return out, nil
}

// excerpt names the strings that matched and where (never their bytes).
func excerpt(s []engine.StringMatch) string {
	if len(s) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("matched ")
	for i, m := range s {
		if i == 5 {
			fmt.Fprintf(&b, ", … (%d strings)", len(s))
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s at 0x%x", m.ID, m.Offset)
		if m.Count > 1 {
			fmt.Fprintf(&b, " (%d×)", m.Count)
		}
	}
	return b.String()
}

// severity maps a rule's "severity" meta to a report severity; HIGH when
// absent or not recognized.
func severity(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical":
		return report.SeverityCritical
	case "high":
		return report.SeverityHigh
	case "medium", "moderate":
		return report.SeverityMedium
	case "low", "info", "informational":
		return report.SeverityLow
	}
	return report.SeverityHigh
}
