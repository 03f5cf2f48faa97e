package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/customs-scan/customs/pkg/report"
)

// Names of the built-in rules, written into Report.VerdictRule.
const (
	// RuleScanFailed keeps the verdict the scanner gave a failed scan:
	// quarantine for content it rejected, warn for anything else.
	RuleScanFailed = "default:scan-failed"
	// RuleIndex gives an image index the worst verdict of its images.
	RuleIndex = "default:index"
	// RuleMalware quarantines an image with any finding of kind "malware".
	RuleMalware = "default:malware"
	// RuleSuspicious warns for malware findings below HIGH (archive bombs).
	RuleSuspicious = "default:suspicious"
	// RuleLiveCredential quarantines an image with a secret finding whose
	// rule is a cloud credential, private key or forge token (see
	// LiveCredentialRules), or whose severity is CRITICAL.
	RuleLiveCredential = "default:live-credential"
	// RuleSeverity warns when any finding or vulnerability is at or above
	// the policy's warn_at severity (HIGH unless configured). A Go
	// vulnerability whose vulnerable functions are not in the binary
	// (reachable "false") does not count.
	RuleSeverity = "default:severity"
	// RulePass passes everything else.
	RulePass = "default:pass"
)

// DefaultWarnAt is the severity at and above which default:severity warns.
const DefaultWarnAt = report.SeverityHigh

// severityNone disables default:severity (warn_at: NONE).
const severityNone = "NONE"

// liveCredentialRules are the secret rule ids that default:live-credential
// quarantines: gitleaks v8.30 ids (checked against its default config),
// plus three ids other detectors use for credentials gitleaks has no rule
// for. Keep README.md in step.
var liveCredentialRules = []string{
	// Cloud providers.
	"alibaba-access-key-id",
	"alibaba-secret-key",
	"aws-access-token",
	"aws-amazon-bedrock-api-key-long-lived",
	"aws-secret-access-key", // not a gitleaks id
	"azure-ad-client-secret",
	"azure-storage-account-key", // not a gitleaks id
	"cloudflare-api-key",
	"cloudflare-global-api-key",
	"digitalocean-access-token",
	"digitalocean-pat",
	"digitalocean-refresh-token",
	"gcp-api-key",
	"gcp-service-account", // not a gitleaks id
	"hashicorp-tf-api-token",
	"heroku-api-key",
	"heroku-api-key-v2",
	"vault-service-token",
	"yandex-aws-access-token",
	// Private keys.
	"pkcs12-file",
	"private-key",
	// Source forges (push access to code and CI).
	"github-app-token",
	"github-fine-grained-pat",
	"github-oauth",
	"github-pat",
	"github-refresh-token",
	"gitlab-deploy-token",
	"gitlab-pat",
	"gitlab-pat-routable",
	"gitlab-runner-authentication-token",
	"gitlab-runner-authentication-token-routable",
}

var liveCredentialSet = func() map[string]bool {
	m := make(map[string]bool, len(liveCredentialRules))
	for _, id := range liveCredentialRules {
		m[id] = true
	}
	return m
}()

// LiveCredentialRules returns the secret rule ids that default:live-credential
// quarantines, sorted. Any secret finding of severity CRITICAL is
// quarantined too, whatever its rule.
func LiveCredentialRules() []string {
	s := slices.Clone(liveCredentialRules)
	slices.Sort(s)
	return s
}

// IsLiveCredential reports whether f is a secret default:live-credential
// quarantines.
func IsLiveCredential(f report.Finding) bool {
	if f.Kind != report.KindSecret {
		return false
	}
	return liveCredentialSet[f.Rule] || strings.EqualFold(f.Severity, report.SeverityCritical)
}

var severityRanks = map[string]int{
	report.SeverityUnknown:  0,
	report.SeverityLow:      1,
	report.SeverityMedium:   2,
	report.SeverityHigh:     3,
	report.SeverityCritical: 4,
}

// SeverityRank orders severities: UNKNOWN 0, LOW 1, MEDIUM 2, HIGH 3,
// CRITICAL 4. Case does not matter; anything else ranks as UNKNOWN.
func SeverityRank(s string) int {
	return severityRanks[strings.ToUpper(s)]
}

var verdictRanks = map[string]int{report.VerdictPass: 0, report.VerdictWarn: 1, report.VerdictQuarantine: 2}

// decideFailed is default:scan-failed.
func decideFailed(r *report.Report) Decision {
	v := r.Verdict
	if _, ok := verdictRanks[v]; !ok {
		v = report.VerdictWarn
	}
	reason := "scan failed"
	if r.Error != "" {
		reason += ": " + r.Error
	}
	return Decision{Verdict: v, Rule: RuleScanFailed, Reason: reason}
}

// decideIndex is default:index: the worst verdict of the index's images. A
// missing or unknown child verdict counts as warn.
func decideIndex(r *report.Report) Decision {
	best, worst := -1, -1
	counts := map[string]int{}
	for i, m := range r.Manifests {
		cv := childVerdict(m)
		counts[cv]++
		if verdictRanks[cv] > best {
			best, worst = verdictRanks[cv], i
		}
	}
	v := report.VerdictPass
	reason := fmt.Sprintf("worst verdict of its %d images", len(r.Manifests))
	if worst >= 0 {
		m := r.Manifests[worst]
		v = childVerdict(m)
		name := m.Platform
		if name == "" {
			name = m.Digest
		}
		reason += fmt.Sprintf(": %s is %s", name, v)
		if n := counts[v]; n > 1 {
			reason += fmt.Sprintf(" (and %d more)", n-1)
		}
	}
	return Decision{Verdict: v, Rule: RuleIndex, Reason: reason}
}

func childVerdict(m report.ManifestRef) string {
	if _, ok := verdictRanks[m.Verdict]; ok {
		return m.Verdict
	}
	return report.VerdictWarn
}

// decideDefaults runs default:malware, default:live-credential,
// default:severity and default:pass in that order.
func (p *Policy) decideDefaults(r *report.Report) Decision {
	if d, ok := decideFindings(r, RuleMalware, "malware", isMalware); ok {
		return d
	}
	if d, ok := decideFindings(r, RuleLiveCredential, "live credential", IsLiveCredential); ok {
		return d
	}
	// Below-HIGH malware findings (an archive bomb: suspicious, but test
	// archives in language caches look the same) warn, not quarantine.
	if d, ok := decideFindings(r, RuleSuspicious, "suspicious content", func(f report.Finding) bool {
		return f.Kind == report.KindMalware
	}); ok {
		d.Verdict = report.VerdictWarn
		return d
	}
	if p.warnAt != severityNone {
		if d, ok := p.decideSeverity(r); ok {
			return d
		}
		return Decision{Verdict: report.VerdictPass, Rule: RulePass,
			Reason: "no finding or vulnerability at or above " + p.warnAt}
	}
	return Decision{Verdict: report.VerdictPass, Rule: RulePass, Reason: "no malware or live credential"}
}

// isMalware: a malware finding at HIGH or above, or without a severity.
func isMalware(f report.Finding) bool {
	return f.Kind == report.KindMalware && (f.Severity == "" || SeverityRank(f.Severity) >= SeverityRank(report.SeverityHigh))
}

func decideFindings(r *report.Report, rule, what string, match func(report.Finding) bool) (Decision, bool) {
	first, n := -1, 0
	for i, f := range r.Findings {
		if match(f) {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if n == 0 {
		return Decision{}, false
	}
	f := r.Findings[first]
	name := f.Rule
	if name == "" {
		name = f.Title
	}
	reason := what
	if name != "" {
		reason += " " + name
	}
	if f.Path != "" {
		reason += " in " + f.Path
	}
	if n > 1 {
		reason += fmt.Sprintf(" (and %d more)", n-1)
	}
	return Decision{Verdict: report.VerdictQuarantine, Rule: rule, Reason: reason}, true
}

func (p *Policy) decideSeverity(r *report.Report) (Decision, bool) {
	threshold := SeverityRank(p.warnAt)
	var nf, nv int
	worstRank, worstName := -1, ""
	for _, f := range r.Findings {
		if rk := SeverityRank(f.Severity); rk >= threshold {
			nf++
			if rk > worstRank {
				worstRank, worstName = rk, strings.TrimSpace(f.Kind+" "+f.Rule)
			}
		}
	}
	for _, v := range r.Vulnerabilities {
		if v.Reachable == report.ReachableFalse {
			continue
		}
		if rk := SeverityRank(v.Severity); rk >= threshold {
			nv++
			if rk > worstRank {
				worstRank, worstName = rk, strings.TrimSpace(v.ID+" in "+v.Package)
			}
		}
	}
	if nf+nv == 0 {
		return Decision{}, false
	}
	var parts []string
	if nf > 0 {
		parts = append(parts, plural(nf, "finding"))
	}
	if nv > 0 {
		parts = append(parts, plural(nv, "vulnerability"))
	}
	worst := report.SeverityUnknown
	for s, rk := range severityRanks {
		if rk == worstRank {
			worst = s
		}
	}
	reason := fmt.Sprintf("%s at or above %s (worst: %s %s)", strings.Join(parts, " and "), p.warnAt, worst, worstName)
	return Decision{Verdict: report.VerdictWarn, Rule: RuleSeverity, Reason: reason}, true
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(noun, "y"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
