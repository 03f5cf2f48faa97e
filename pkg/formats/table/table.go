// Package table writes a report for people: a summary first, then the
// vulnerabilities (most severe first, fixable before unfixable), the
// ignored ones, the findings and, when asked, the packages.
package table

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/customs-scan/customs/pkg/formats/internal/refs"
	"github.com/customs-scan/customs/pkg/report"
)

// ContentType is plain text.
const ContentType = "text/plain; charset=utf-8"

// Options choose what is written.
type Options struct {
	// Packages adds the package list.
	Packages bool
	// Color uses ANSI colours for severities and the verdict: for a
	// terminal only (the caller knows whether it writes to one).
	Color bool
}

// ANSI colours, after Trivy's severity palette.
const (
	reset   = "\x1b[0m"
	bold    = "\x1b[1m"
	red     = "\x1b[31m"
	boldRed = "\x1b[1;31m"
	yellow  = "\x1b[33m"
	green   = "\x1b[32m"
	blue    = "\x1b[34m"
	grey    = "\x1b[90m"
)

func severityColor(sev string) string {
	switch sev {
	case report.SeverityCritical:
		return boldRed
	case report.SeverityHigh:
		return red
	case report.SeverityMedium:
		return yellow
	case report.SeverityLow:
		return blue
	}
	return grey
}

func verdictColor(v string) string {
	switch v {
	case report.VerdictQuarantine:
		return boldRed
	case report.VerdictWarn:
		return yellow
	case report.VerdictPass:
		return green
	}
	return ""
}

// Encode writes one report.
func Encode(w io.Writer, r *report.Report, opts Options) error {
	t := &writer{opts: opts}
	t.report(r)
	_, err := io.WriteString(w, t.b.String())
	return err
}

// EncodeAll writes several reports (an index's platforms and the index),
// separated by a blank line.
func EncodeAll(w io.Writer, rs []*report.Report, opts Options) error {
	t := &writer{opts: opts}
	for i, r := range rs {
		if i > 0 {
			t.b.WriteString("\n")
		}
		t.report(r)
	}
	_, err := io.WriteString(w, t.b.String())
	return err
}

type writer struct {
	b    strings.Builder
	opts Options
}

func (t *writer) color(c, s string) string {
	if !t.opts.Color || c == "" || s == "" {
		return s
	}
	return c + s + reset
}

func (t *writer) line(format string, args ...any) {
	fmt.Fprintf(&t.b, format+"\n", args...)
}

func (t *writer) report(r *report.Report) {
	a := r.Artifact
	t.line("%s", t.color(bold, refs.ImageName(a)))
	kv := [][2]string{}
	if a.Platform != "" {
		kv = append(kv, [2]string{"platform", a.Platform})
	}
	if r.OS.ID != "" {
		os := r.OS.ID + " " + r.OS.Version
		if r.OS.Name != "" {
			os += " (" + r.OS.Name + ")"
		}
		kv = append(kv, [2]string{"os", strings.TrimSpace(os)})
	}
	verdict := t.color(verdictColor(r.Verdict), strings.ToUpper(r.Verdict))
	if r.VerdictReason != "" {
		verdict += " — " + r.VerdictReason
	}
	if r.VerdictRule != "" {
		verdict += " [" + r.VerdictRule + "]"
	}
	kv = append(kv, [2]string{"verdict", verdict})
	if r.Status == report.StatusFailed {
		kv = append(kv, [2]string{"scan", "FAILED: " + r.Error})
	}
	if r.LatestAttempt != nil {
		kv = append(kv, [2]string{"latest attempt", "failed: " + r.LatestAttempt.Error})
	}
	kv = append(kv, [2]string{"layers", fmt.Sprint(len(r.Layers))}, [2]string{"packages", fmt.Sprint(len(r.Packages))})
	kv = append(kv, [2]string{"vulnerabilities", t.vulnSummary(r)})
	if n := len(r.IgnoredVulnerabilities); n > 0 {
		kv = append(kv, [2]string{"ignored", fmt.Sprint(n)})
	}
	kv = append(kv, [2]string{"findings", t.findingSummary(r)})
	switch {
	case r.VulnerabilityDB.Status == report.VulnDBChecked:
		kv = append(kv, [2]string{"vulnerability db", r.VulnerabilityDB.Version})
	case r.VulnerabilityDB.Note != "":
		kv = append(kv, [2]string{"vulnerability db", "NOT CHECKED: " + r.VulnerabilityDB.Note})
	}
	width := 0
	for _, p := range kv {
		width = max(width, len(p[0]))
	}
	for _, p := range kv {
		t.line("  %-*s  %s", width+1, p[0]+":", p[1])
	}

	if len(r.Manifests) > 0 {
		rows := [][]cell{}
		for _, m := range r.Manifests {
			v := m.Verdict
			if m.Status == report.StatusFailed {
				v = "failed: " + m.Error
			}
			rows = append(rows, []cell{{s: m.Platform}, {s: m.Digest}, {s: v, color: verdictColor(m.Verdict)}})
		}
		t.table([]string{"PLATFORM", "DIGEST", "VERDICT"}, rows)
	}

	if len(r.Vulnerabilities) > 0 {
		vs := append([]report.Vulnerability(nil), r.Vulnerabilities...)
		sort.SliceStable(vs, func(i, j int) bool {
			a, b := vs[i], vs[j]
			if ra, rb := refs.SeverityRank(a.Severity), refs.SeverityRank(b.Severity); ra != rb {
				return ra > rb
			}
			if fa, fb := a.FixedVersion != "", b.FixedVersion != ""; fa != fb {
				return fa
			}
			if a.Package != b.Package {
				return a.Package < b.Package
			}
			return a.ID < b.ID
		})
		rows := make([][]cell, 0, len(vs))
		for _, v := range vs {
			rows = append(rows, []cell{
				{s: v.Severity, color: severityColor(v.Severity)}, {s: v.ID}, {s: v.Package}, {s: v.Version},
				{s: v.FixedVersion}, {s: v.Path}, {s: truncate(v.Summary, 60)},
			})
		}
		t.table([]string{"SEVERITY", "VULNERABILITY", "PACKAGE", "VERSION", "FIXED IN", "PATH", "SUMMARY"}, rows)
	}
	if len(r.IgnoredVulnerabilities) > 0 {
		rows := make([][]cell, 0, len(r.IgnoredVulnerabilities))
		for _, v := range r.IgnoredVulnerabilities {
			why := v.Status
			if v.Justification != "" {
				why += ": " + v.Justification
			}
			rows = append(rows, []cell{{s: v.ID}, {s: v.Package}, {s: v.Version}, {s: why}, {s: truncate(v.Reason, 60)}, {s: v.Source}})
		}
		t.table([]string{"IGNORED", "PACKAGE", "VERSION", "STATUS", "REASON", "SOURCE"}, rows)
	}
	if len(r.Findings) > 0 {
		fs := append([]report.Finding(nil), r.Findings...)
		sort.SliceStable(fs, func(i, j int) bool {
			a, b := fs[i], fs[j]
			if ra, rb := refs.SeverityRank(a.Severity), refs.SeverityRank(b.Severity); ra != rb {
				return ra > rb
			}
			if a.Kind != b.Kind {
				return a.Kind < b.Kind
			}
			return a.Path < b.Path
		})
		rows := make([][]cell, 0, len(fs))
		for _, f := range fs {
			path := f.Path
			if f.Line > 0 {
				path += fmt.Sprintf(":%d", f.Line)
			}
			// The title only: a secret's excerpt stays in the JSON report.
			rows = append(rows, []cell{{s: f.Severity, color: severityColor(f.Severity)}, {s: f.Kind}, {s: f.Rule}, {s: path}, {s: truncate(f.Title, 70)}})
		}
		t.table([]string{"SEVERITY", "KIND", "RULE", "PATH", "TITLE"}, rows)
	}
	if t.opts.Packages && len(r.Packages) > 0 {
		ps := append([]report.Package(nil), r.Packages...)
		sort.SliceStable(ps, func(i, j int) bool {
			if ps[i].Ecosystem != ps[j].Ecosystem {
				return ps[i].Ecosystem < ps[j].Ecosystem
			}
			if ps[i].Name != ps[j].Name {
				return ps[i].Name < ps[j].Name
			}
			return ps[i].Path < ps[j].Path
		})
		rows := make([][]cell, 0, len(ps))
		for _, p := range ps {
			v := p.Version
			if p.Scope == report.ScopeDev {
				v += " (dev)" // a development dependency of its lockfile
			}
			rows = append(rows, []cell{{s: p.Name}, {s: v}, {s: p.Ecosystem}, {s: p.Path}})
		}
		t.table([]string{"PACKAGE", "VERSION", "ECOSYSTEM", "PATH"}, rows)
	}
}

func (t *writer) vulnSummary(r *report.Report) string {
	if len(r.Vulnerabilities) == 0 {
		if r.VulnerabilityDB.Status != report.VulnDBChecked {
			return "not checked"
		}
		return "0"
	}
	counts := map[string]int{}
	fixable := 0
	for _, v := range r.Vulnerabilities {
		counts[v.Severity]++
		if v.FixedVersion != "" {
			fixable++
		}
	}
	parts := []string{}
	for _, s := range []string{report.SeverityCritical, report.SeverityHigh, report.SeverityMedium, report.SeverityLow, report.SeverityUnknown} {
		if counts[s] > 0 {
			parts = append(parts, t.color(severityColor(s), fmt.Sprintf("%d %s", counts[s], s)))
		}
	}
	return fmt.Sprintf("%d (%s; %d fixable)", len(r.Vulnerabilities), strings.Join(parts, ", "), fixable)
}

func (t *writer) findingSummary(r *report.Report) string {
	if len(r.Findings) == 0 {
		return "0"
	}
	counts := map[string]int{}
	for _, f := range r.Findings {
		counts[f.Kind]++
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	s := fmt.Sprintf("%d (%s)", len(r.Findings), strings.Join(parts, ", "))
	if r.FindingsOmitted > 0 {
		s += fmt.Sprintf(", %d more not listed", r.FindingsOmitted)
	}
	return s
}

type cell struct {
	s     string
	color string
}

// table writes aligned columns. Widths are measured on the text, and
// colour codes added afterwards, so colour does not break alignment
// (text/tabwriter would count the escape codes).
func (t *writer) table(header []string, rows [][]cell) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c.s))
		}
	}
	t.b.WriteString("\n")
	hs := make([]cell, len(header))
	for i, h := range header {
		hs[i] = cell{s: h, color: bold}
	}
	t.row(widths, hs)
	for _, row := range rows {
		t.row(widths, row)
	}
}

func (t *writer) row(widths []int, row []cell) {
	var line strings.Builder
	for i, c := range row {
		pad := widths[i] - utf8.RuneCountInString(c.s)
		line.WriteString(t.color(c.color, c.s))
		if i < len(row)-1 {
			line.WriteString(strings.Repeat(" ", pad+2))
		}
	}
	t.b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
}

// truncate keeps table rows on one line.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
