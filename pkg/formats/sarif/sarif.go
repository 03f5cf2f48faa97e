// Package sarif writes a Customs report as SARIF 2.1.0, the version
// GitHub code scanning accepts: one rule per vulnerability id and per
// finding rule (malware, secret, misconfig), with the security-severity
// GitHub rates alerts by; one result per affected package or finding,
// located at its file in the image, with a partial fingerprint from the
// image digest, the package purl (or the finding's path) and the id.
//
// GitHub refuses runs over 25,000 results or rules: the least severe
// results are left out beyond the limits, and a notification says so.
// Secret findings carry their rule, path and line, never the secret (not
// even the report's redacted excerpt).
package sarif

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"

	"github.com/customs-scan/customs/pkg/formats/internal/refs"
	"github.com/customs-scan/customs/pkg/report"
)

// ContentType is the IANA media type of SARIF.
const ContentType = "application/sarif+json"

// GitHub code scanning's limits per run.
const (
	MaxResults = 25_000
	MaxRules   = 25_000
)

// FingerprintKey names Customs' entry in partialFingerprints.
const FingerprintKey = "customs/v1"

// InformationURI is where the tool is described.
const InformationURI = "https://github.com/customs-scan/customs"

// Limits bound a run; zero fields mean GitHub's limits.
type Limits struct {
	Results int
	Rules   int
}

// Encode writes r as SARIF 2.1.0 within GitHub's limits.
func Encode(w io.Writer, r *report.Report) error {
	if err := Log(r, Limits{}).PrettyWrite(w); err != nil {
		return fmt.Errorf("sarif: %w", err)
	}
	return nil
}

// securitySeverity is the security-severity GitHub rates alerts by
// (Critical ≥ 9.0, High ≥ 7.0, Medium ≥ 4.0, Low > 0); none for UNKNOWN.
func securitySeverity(sev string) string {
	switch sev {
	case report.SeverityCritical:
		return "9.5"
	case report.SeverityHigh:
		return "8.0"
	case report.SeverityMedium:
		return "5.5"
	case report.SeverityLow:
		return "2.0"
	}
	return ""
}

// level is the SARIF level of a severity.
func level(sev string) string {
	switch sev {
	case report.SeverityCritical, report.SeverityHigh:
		return "error"
	case report.SeverityMedium:
		return "warning"
	}
	return "note"
}

// item is one result before the limits are applied.
type item struct {
	rule       string
	severity   string
	suppressed bool
	sortKey    string
	result     *sarif.Result
}

// ruleInfo accumulates what a rule says over its results.
type ruleInfo struct {
	id, short, full, help, helpURI string
	severity                       string
	tags                           []string
	props                          map[string]any
}

// Log converts r into a SARIF log of one run within lim.
func Log(r *report.Report, lim Limits) *sarif.Report {
	if lim.Results <= 0 {
		lim.Results = MaxResults
	}
	if lim.Rules <= 0 {
		lim.Rules = MaxRules
	}
	rules := map[string]*ruleInfo{}
	var items []item
	notes := []*sarif.Notification{}
	digest := r.Artifact.Digest

	for i := range r.Vulnerabilities {
		items = append(items, vulnItem(digest, r.Vulnerabilities[i], rules, nil))
	}
	for i := range r.IgnoredVulnerabilities {
		iv := r.IgnoredVulnerabilities[i]
		justification := iv.Status
		if iv.Justification != "" {
			justification += " (" + iv.Justification + ")"
		}
		if iv.Reason != "" {
			justification += ": " + iv.Reason
		}
		if iv.Source != "" {
			justification += " [ignored by " + iv.Source + "]"
		}
		kind, status := "external", "accepted"
		items = append(items, vulnItem(digest, iv.Vulnerability, rules, &sarif.Suppression{Kind: &kind, Status: &status, Justification: &justification}))
	}
	for _, f := range r.Findings {
		if f.Path == "(omitted)" {
			// CapFindings' summary line: not a finding of its own.
			notes = append(notes, notification("warning", f.Title))
			continue
		}
		items = append(items, findingItem(digest, f, rules))
	}

	// The most severe first, so the limits leave out the least severe;
	// suppressed results after the others.
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if a.suppressed != b.suppressed {
			return !a.suppressed
		}
		if ra, rb := refs.SeverityRank(a.severity), refs.SeverityRank(b.severity); ra != rb {
			return ra > rb
		}
		return a.sortKey < b.sortKey
	})

	run := sarif.NewRunWithInformationURI("customs", InformationURI)
	driver := run.Tool.Driver
	if r.Scanner.Version != "" {
		driver.WithVersion(r.Scanner.Version)
	}
	ruleIndex := map[string]int{}
	droppedResults := 0
	for _, it := range items {
		idx, known := ruleIndex[it.rule]
		if len(run.Results) >= lim.Results || !known && len(driver.Rules) >= lim.Rules {
			droppedResults++
			continue
		}
		if !known {
			idx = len(driver.Rules)
			ruleIndex[it.rule] = idx
			driver.AddRule(rules[it.rule].descriptor())
		}
		it.result.WithRuleIndex(idx)
		run.AddResult(it.result)
	}
	if droppedResults > 0 {
		notes = append(notes, notification("warning", fmt.Sprintf(
			"%d of %d results left out: GitHub code scanning accepts at most %d results and %d rules per run; the most severe were kept",
			droppedResults, len(items), lim.Results, lim.Rules)))
	}
	if r.FindingsOmitted > 0 {
		notes = append(notes, notification("warning", fmt.Sprintf("%d findings were left out of the report by the per-rule cap (the verdict counted them)", r.FindingsOmitted)))
	}

	inv := sarif.NewInvocation().WithExecutionSuccessful(r.Status != report.StatusFailed)
	if !r.StartedAt.IsZero() {
		inv.WithStartTimeUtc(r.StartedAt.UTC().Format(time.RFC3339))
	}
	if !r.FinishedAt.IsZero() {
		inv.WithEndTimeUtc(r.FinishedAt.UTC().Format(time.RFC3339))
	}
	if r.Status == report.StatusFailed {
		notes = append(notes, notification("error", "scan failed: "+r.Error))
	}
	if r.VulnerabilityDB.Status != report.VulnDBChecked && r.VulnerabilityDB.Note != "" {
		notes = append(notes, notification("note", "vulnerabilities not checked: "+r.VulnerabilityDB.Note))
	}
	inv.WithToolExecutionNotifications(notes)
	run.AddInvocation(inv)

	props := sarif.NewPropertyBag()
	for k, v := range map[string]string{
		"image": refs.ImageName(r.Artifact), "digest": digest, "platform": r.Artifact.Platform,
		"verdict": r.Verdict, "verdict_rule": r.VerdictRule, "verdict_reason": r.VerdictReason,
		"vulnerability_db": r.VulnerabilityDB.Version,
	} {
		if v != "" {
			props.Add(k, v)
		}
	}
	run.WithProperties(props)
	// GitHub's analysis category: one per repository, so the SARIF of
	// several images uploaded to one code repository do not close each
	// other's alerts.
	if repo := refs.Repository(r.Artifact); repo != "" {
		run.WithAutomationDetails(sarif.NewRunAutomationDetails().WithID("customs/" + repo + "/"))
	}

	log := sarif.NewReport()
	log.AddRun(run)
	return log
}

func notification(lvl, text string) *sarif.Notification {
	return sarif.NewNotification().WithLevel(lvl).WithMessage(sarif.NewTextMessage(text))
}

func fingerprint(digest, where, id string) string {
	sum := sha256.Sum256([]byte(digest + "\x00" + where + "\x00" + id))
	return hex.EncodeToString(sum[:])
}

// uri is a path in the image as a relative URI; findings in the image
// config have no file and are located at "image-config".
func uri(path string) string {
	if path == "" || strings.HasPrefix(path, "(") {
		return "image-config"
	}
	return (&url.URL{Path: strings.TrimPrefix(path, "/")}).String()
}

func location(path string, line int) *sarif.Location {
	pl := sarif.NewPhysicalLocation().WithArtifactLocation(sarif.NewSimpleArtifactLocation(uri(path)))
	if line > 0 {
		pl.WithRegion(sarif.NewRegion().WithStartLine(line))
	}
	return sarif.NewLocationWithPhysicalLocation(pl)
}

func vulnItem(digest string, v report.Vulnerability, rules map[string]*ruleInfo, sup *sarif.Suppression) item {
	ri := rules[v.ID]
	if ri == nil {
		ri = &ruleInfo{id: v.ID, tags: []string{"security", "vulnerability"}, props: map[string]any{}}
		ri.short = v.ID
		if v.Summary != "" {
			ri.short = v.ID + ": " + v.Summary
		}
		ri.full = ri.short
		if len(v.Aliases) > 0 {
			ri.full += " (" + strings.Join(v.Aliases, ", ") + ")"
		}
		ri.helpURI = "https://osv.dev/vulnerability/" + url.PathEscape(v.ID)
		ri.help = vulnHelp(v)
		if v.CVSS != nil {
			ri.props["cvss_vector"] = v.CVSS.Vector
			if v.CVSS.Score != nil {
				ri.props["cvss_score"] = *v.CVSS.Score
			}
		}
		if len(v.CWEs) > 0 {
			for _, c := range v.CWEs {
				ri.tags = append(ri.tags, "external/cwe/"+strings.ToLower(c))
			}
		}
		rules[v.ID] = ri
	}
	if refs.SeverityRank(v.Severity) >= refs.SeverityRank(ri.severity) {
		ri.severity = v.Severity
	}

	msg := fmt.Sprintf("%s %s is affected by %s", v.Package, v.Version, v.ID)
	if len(v.Aliases) > 0 {
		msg += " (" + strings.Join(v.Aliases, ", ") + ")"
	}
	if v.Summary != "" {
		msg += ": " + v.Summary
	}
	if v.FixedVersion != "" {
		msg += ". Fixed in " + v.FixedVersion + "."
	} else {
		msg += ". No fix is known."
	}
	where := v.PURL
	if where == "" {
		where = v.Package + "@" + v.Version + " " + v.Path
	}
	res := sarif.NewRuleResult(v.ID).
		WithLevel(level(v.Severity)).
		WithMessage(sarif.NewTextMessage(msg)).
		WithLocations([]*sarif.Location{location(v.Path, 0)}).
		WithPartialFingerprints(map[string]string{FingerprintKey: fingerprint(digest, where, v.ID)})
	props := sarif.NewPropertyBag()
	for k, val := range map[string]string{
		"package": v.Package, "installed_version": v.Version, "fixed_version": v.FixedVersion,
		"purl": v.PURL, "layer": v.Layer, "severity": v.Severity, "ecosystem": v.Ecosystem,
	} {
		if val != "" {
			props.Add(k, val)
		}
	}
	res.WithProperties(props)
	if sup != nil {
		res.WithSuppressions([]*sarif.Suppression{sup})
	}
	return item{rule: v.ID, severity: v.Severity, suppressed: sup != nil, sortKey: v.ID + "\x00" + v.Package + "\x00" + v.Version + "\x00" + v.Path, result: res}
}

func vulnHelp(v report.Vulnerability) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**", v.ID)
	if len(v.Aliases) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(v.Aliases, ", "))
	}
	b.WriteString("\n\n")
	if v.Summary != "" {
		b.WriteString(v.Summary + "\n\n")
	}
	if v.CVSS != nil {
		fmt.Fprintf(&b, "CVSS %s: `%s`", v.CVSS.Version, v.CVSS.Vector)
		if v.CVSS.Score != nil {
			fmt.Fprintf(&b, " (base score %.1f)", *v.CVSS.Score)
		}
		b.WriteString("\n\n")
	}
	if len(v.CWEs) > 0 {
		b.WriteString("Weaknesses: " + strings.Join(v.CWEs, ", ") + "\n\n")
	}
	for _, u := range v.References {
		b.WriteString("- " + u + "\n")
	}
	return strings.TrimSpace(b.String())
}

func findingItem(digest string, f report.Finding, rules map[string]*ruleInfo) item {
	id := f.Kind + "/" + f.Rule
	ri := rules[id]
	if ri == nil {
		ri = &ruleInfo{id: id, tags: []string{"security", f.Kind}, props: map[string]any{}}
		ri.short = fmt.Sprintf("%s finding: %s", f.Kind, f.Rule)
		ri.full = ri.short
		if f.Engine != "" {
			ri.full += " (found by " + f.Engine + ")"
		}
		ri.help = ri.full
		rules[id] = ri
	}
	if refs.SeverityRank(f.Severity) >= refs.SeverityRank(ri.severity) {
		ri.severity = f.Severity
	}
	// Title names what was found, never a secret's value; the excerpt is
	// left out even though the report redacts it.
	msg := f.Title
	if msg == "" {
		msg = ri.short
	}
	res := sarif.NewRuleResult(id).
		WithLevel(level(f.Severity)).
		WithMessage(sarif.NewTextMessage(msg)).
		WithLocations([]*sarif.Location{location(f.Path, f.Line)}).
		WithPartialFingerprints(map[string]string{FingerprintKey: fingerprint(digest, f.Path, id)})
	props := sarif.NewPropertyBag()
	for k, val := range map[string]string{
		"kind": f.Kind, "layer": f.Layer, "severity": f.Severity, "engine": f.Engine, "sha256": f.SHA256,
	} {
		if val != "" {
			props.Add(k, val)
		}
	}
	res.WithProperties(props)
	return item{rule: id, severity: f.Severity, sortKey: id + "\x00" + f.Path + "\x00" + fmt.Sprint(f.Line), result: res}
}

func (ri *ruleInfo) descriptor() *sarif.ReportingDescriptor {
	d := sarif.NewRule(ri.id).
		WithShortDescription(sarif.NewMultiformatMessageString().WithText(ri.short)).
		WithFullDescription(sarif.NewMultiformatMessageString().WithText(ri.full)).
		WithDefaultConfiguration(sarif.NewReportingConfiguration().WithLevel(level(ri.severity)))
	if ri.helpURI != "" {
		d.WithHelpURI(ri.helpURI)
	}
	if ri.help != "" {
		d.WithMarkdownHelp(ri.help)
	}
	props := sarif.NewPropertyBag()
	for k, v := range ri.props {
		props.Add(k, v)
	}
	if s := securitySeverity(ri.severity); s != "" {
		props.Add("security-severity", s)
	}
	tags := append([]string{}, ri.tags...)
	if ri.severity != "" {
		tags = append(tags, strings.ToLower(ri.severity))
	}
	props.WithTags(tags)
	d.WithProperties(props)
	return d
}
