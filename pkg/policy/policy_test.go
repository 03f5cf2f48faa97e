package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/report"
)

func img(repo string, mods ...func(*report.Report)) *report.Report {
	r := &report.Report{
		Artifact: report.Artifact{Registry: "registry.example.com", Repository: repo, Digest: "sha256:aa"},
		Status:   report.StatusComplete,
	}
	for _, m := range mods {
		m(r)
	}
	r.Normalize()
	return r
}

func withFindings(fs ...report.Finding) func(*report.Report) {
	return func(r *report.Report) { r.Findings = append(r.Findings, fs...) }
}

func withVulns(vs ...report.Vulnerability) func(*report.Report) {
	return func(r *report.Report) { r.Vulnerabilities = append(r.Vulnerabilities, vs...) }
}

var (
	malware   = report.Finding{Kind: report.KindMalware, Rule: "EICAR-Test-File", Severity: report.SeverityCritical, Path: "eicar.com"}
	awsKey    = report.Finding{Kind: report.KindSecret, Rule: "aws-access-token", Severity: report.SeverityHigh, Path: "app/.env", Engine: "gitleaks"}
	privKey   = report.Finding{Kind: report.KindSecret, Rule: "private-key", Severity: report.SeverityHigh, Path: "root/.ssh/id_rsa"}
	critSec   = report.Finding{Kind: report.KindSecret, Rule: "some-new-rule", Severity: report.SeverityCritical, Path: "x"}
	slackTok  = report.Finding{Kind: report.KindSecret, Rule: "slack-bot-token", Severity: report.SeverityHigh, Path: "y"}
	lowSecret = report.Finding{Kind: report.KindSecret, Rule: "generic-api-key", Severity: report.SeverityMedium, Path: "z"}
	misconfig = report.Finding{Kind: report.KindMisconfig, Rule: "root-user", Severity: report.SeverityMedium, Path: "(image config)"}
	critFix   = report.Vulnerability{ID: "CVE-2024-1", Package: "openssl", Version: "3.0.1", FixedVersion: "3.0.2", Severity: report.SeverityCritical}
	critNoFix = report.Vulnerability{ID: "CVE-2024-2", Package: "zlib", Version: "1.2", Severity: report.SeverityCritical}
	highVuln  = report.Vulnerability{ID: "CVE-2024-3", Package: "curl", Version: "8.0", FixedVersion: "8.1", Severity: report.SeverityHigh}
	medVuln   = report.Vulnerability{ID: "CVE-2024-4", Package: "bash", Version: "5.0", Severity: report.SeverityMedium}
)

func TestDefaultRules(t *testing.T) {
	failed := func(verdict string) func(*report.Report) {
		return func(r *report.Report) {
			r.Status, r.Error, r.Verdict = report.StatusFailed, "boom", verdict
			r.Findings = []report.Finding{malware} // ignored: the scan failed
		}
	}
	index := func(vs ...string) func(*report.Report) {
		return func(r *report.Report) {
			for i, v := range vs {
				r.Manifests = append(r.Manifests, report.ManifestRef{Digest: fmt.Sprintf("sha256:%d", i), Platform: fmt.Sprintf("linux/arch%d", i), Verdict: v})
			}
		}
	}
	tests := []struct {
		name          string
		r             *report.Report
		verdict, rule string
		reason        string // substring
	}{
		{"empty", img("a"), report.VerdictPass, RulePass, "at or above HIGH"},
		{"malware", img("a", withFindings(misconfig, malware, malware)), report.VerdictQuarantine, RuleMalware, "EICAR-Test-File in eicar.com (and 1 more)"},
		{"malware beats credential", img("a", withFindings(awsKey, malware)), report.VerdictQuarantine, RuleMalware, "malware"},
		{"archive bomb warns", img("a", withFindings(report.Finding{Kind: report.KindMalware, Rule: "archive-bomb", Severity: "MEDIUM", Path: "x.zip"})), report.VerdictWarn, RuleSuspicious, "archive-bomb"},
		{"aws key", img("a", withFindings(awsKey)), report.VerdictQuarantine, RuleLiveCredential, "aws-access-token in app/.env"},
		{"private key", img("a", withFindings(lowSecret, privKey)), report.VerdictQuarantine, RuleLiveCredential, "private-key"},
		{"critical secret of any rule", img("a", withFindings(critSec)), report.VerdictQuarantine, RuleLiveCredential, "some-new-rule"},
		{"other high secret warns", img("a", withFindings(slackTok)), report.VerdictWarn, RuleSeverity, "1 finding at or above HIGH"},
		{"medium secret passes", img("a", withFindings(lowSecret, misconfig)), report.VerdictPass, RulePass, ""},
		{"critical vuln warns", img("a", withVulns(medVuln, critNoFix, highVuln)), report.VerdictWarn, RuleSeverity, "2 vulnerabilities at or above HIGH (worst: CRITICAL CVE-2024-2 in zlib)"},
		{"lowercase severity", img("a", withVulns(report.Vulnerability{ID: "X", Severity: "high"})), report.VerdictWarn, RuleSeverity, ""},
		{"medium vuln passes", img("a", withVulns(medVuln)), report.VerdictPass, RulePass, ""},
		{"failed rejected", img("a", failed(report.VerdictQuarantine)), report.VerdictQuarantine, RuleScanFailed, "scan failed: boom"},
		{"failed transient", img("a", failed(report.VerdictWarn)), report.VerdictWarn, RuleScanFailed, ""},
		{"failed without verdict", img("a", failed("")), report.VerdictWarn, RuleScanFailed, ""},
		{"index worst", img("a", index("pass", "quarantine", "warn", "quarantine")), report.VerdictQuarantine, RuleIndex, "linux/arch1 is quarantine (and 1 more)"},
		{"index pass", img("a", index("pass", "pass")), report.VerdictPass, RuleIndex, ""},
		{"index unknown child", img("a", index("pass", "")), report.VerdictWarn, RuleIndex, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []*Policy{Default(), nil, {}} {
				d := p.Decide(tc.r)
				if d.Verdict != tc.verdict || d.Rule != tc.rule || !strings.Contains(d.Reason, tc.reason) {
					t.Fatalf("got %+v, want %s by %s with reason containing %q", d, tc.verdict, tc.rule, tc.reason)
				}
				if len(d.Errors) != 0 {
					t.Fatalf("errors: %v", d.Errors)
				}
			}
		})
	}
}

func TestWarnAt(t *testing.T) {
	r := img("a", withVulns(medVuln), withFindings(lowSecret))
	p := mustLoad(t, "warn_at: medium\n")
	if d := p.Decide(r); d.Verdict != report.VerdictWarn || d.Rule != RuleSeverity || !strings.Contains(d.Reason, "1 finding and 1 vulnerability at or above MEDIUM") {
		t.Fatalf("got %+v", d)
	}
	p = mustLoad(t, "warn_at: CRITICAL\n")
	if d := p.Decide(img("a", withVulns(highVuln))); d.Verdict != report.VerdictPass || d.Rule != RulePass {
		t.Fatalf("got %+v", d)
	}
	p = mustLoad(t, "warn_at: NONE\n")
	if d := p.Decide(img("a", withVulns(critFix))); d.Verdict != report.VerdictPass || d.Rule != RulePass {
		t.Fatalf("got %+v", d)
	}
	if d := p.Decide(img("a", withFindings(awsKey))); d.Verdict != report.VerdictQuarantine {
		t.Fatalf("NONE must keep the quarantine rules: %+v", d)
	}
	if _, err := Load(strings.NewReader("warn_at: SEVERE\n")); err == nil || !strings.Contains(err.Error(), "warn_at") {
		t.Fatalf("err = %v", err)
	}
}

const examplePolicy = `
warn_at: HIGH            # optional, default HIGH
rules:
  - name: block-fixable-critical
    repositories: ["prod/*", "team-a/**"]
    when: 'vulnerabilities.exists(v, v.severity == "CRITICAL" && v.fixed_version != "")'
    verdict: quarantine
    reason: "fixable critical vulnerability"
  - name: allow-test-secrets
    repositories: ["sandbox/**"]
    when: 'findings.all(f, f.kind != "malware")'
    verdict: pass
  - name: sandbox-malware-warns
    repositories: ["sandbox/**"]
    when: 'findings.exists(f, f.kind == "malware")'
    verdict: warn
  - name: pinned-registry
    repositories: ["mirror.example.com/**"]
    when: 'true'
    verdict: pass
    reason: mirrored upstream images are judged upstream
`

func mustLoad(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := Load(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyFile(t *testing.T) {
	p := mustLoad(t, examplePolicy)
	mirror := img("library/nginx", withVulns(critFix))
	mirror.Artifact.Registry = "mirror.example.com"
	tests := []struct {
		name          string
		r             *report.Report
		verdict, rule string
		reason        string
	}{
		{"prod fixable critical", img("prod/api", withVulns(critFix)), report.VerdictQuarantine, "block-fixable-critical", "fixable critical vulnerability"},
		{"prod unfixable critical falls to defaults", img("prod/api", withVulns(critNoFix)), report.VerdictWarn, RuleSeverity, ""},
		{"* stays in one segment", img("prod/api/worker", withVulns(critFix)), report.VerdictWarn, RuleSeverity, ""},
		{"** crosses segments", img("team-a/x/y/z", withVulns(critFix)), report.VerdictQuarantine, "block-fixable-critical", ""},
		{"** matches zero segments", img("team-a", withVulns(critFix)), report.VerdictQuarantine, "block-fixable-critical", ""},
		{"prefix is not a segment", img("team-ab/x", withVulns(critFix)), report.VerdictWarn, RuleSeverity, ""},
		{"other repository", img("dev/api", withVulns(critFix)), report.VerdictWarn, RuleSeverity, ""},
		{"sandbox secret passes", img("sandbox/tools", withFindings(awsKey)), report.VerdictPass, "allow-test-secrets", "policy rule allow-test-secrets matched"},
		{"sandbox empty passes", img("sandbox/tools"), report.VerdictPass, "allow-test-secrets", ""},
		{"sandbox malware: next rule", img("sandbox/tools", withFindings(malware)), report.VerdictWarn, "sandbox-malware-warns", ""},
		{"non-sandbox secret quarantined", img("dev/tools", withFindings(awsKey)), report.VerdictQuarantine, RuleLiveCredential, ""},
		{"registry-qualified pattern", mirror, report.VerdictPass, "pinned-registry", "judged upstream"},
		{"registry-qualified pattern, other registry", img("library/nginx", withVulns(critFix)), report.VerdictWarn, RuleSeverity, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.r)
			if d.Verdict != tc.verdict || d.Rule != tc.rule || !strings.Contains(d.Reason, tc.reason) || len(d.Errors) != 0 {
				t.Fatalf("got %+v, want %s by %s", d, tc.verdict, tc.rule)
			}
		})
	}

	// Failed scans and indexes are not judged by operator rules.
	f := img("sandbox/tools", func(r *report.Report) { r.Status, r.Verdict = report.StatusFailed, report.VerdictQuarantine })
	if d := p.Decide(f); d.Rule != RuleScanFailed || d.Verdict != report.VerdictQuarantine {
		t.Fatalf("failed: %+v", d)
	}
	idx := img("sandbox/tools", func(r *report.Report) {
		r.Manifests = []report.ManifestRef{{Digest: "sha256:1", Verdict: report.VerdictQuarantine}}
	})
	if d := p.Decide(idx); d.Rule != RuleIndex || d.Verdict != report.VerdictQuarantine || !strings.Contains(d.Reason, "sha256:1 is quarantine") {
		t.Fatalf("index: %+v", d)
	}

	want := []string{"block-fixable-critical", "allow-test-secrets", "sandbox-malware-warns", "pinned-registry",
		RuleScanFailed, RuleIndex, RuleMalware, RuleLiveCredential, RuleSuspicious, RuleSeverity, RulePass}
	if got := p.RuleNames(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("RuleNames = %v", got)
	}
}

func TestLoadFileAndJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(examplePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(img("prod/x", withVulns(critFix))); d.Rule != "block-fixable-critical" {
		t.Fatalf("got %+v", d)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file loaded")
	}
	j := `{"warn_at": "CRITICAL", "rules": [{"name": "j", "when": "repository == 'x/y'", "verdict": "warn"}]}`
	p = mustLoad(t, j)
	if d := p.Decide(img("x/y")); d.Rule != "j" || d.Verdict != report.VerdictWarn {
		t.Fatalf("got %+v", d)
	}
	if p.WarnAt() != "CRITICAL" || Default().WarnAt() != "HIGH" {
		t.Fatal("WarnAt")
	}
	// An empty file is the default policy.
	p = mustLoad(t, "")
	if d := p.Decide(img("a", withVulns(highVuln))); d.Rule != RuleSeverity {
		t.Fatalf("got %+v", d)
	}
}

func TestExpressions(t *testing.T) {
	r := img("prod/app", withVulns(critFix, medVuln), withFindings(awsKey, report.Finding{Kind: report.KindSecret, Rule: "r", Line: 7}),
		func(r *report.Report) {
			r.OS = report.OS{ID: "debian", Version: "12"}
			r.Artifact.Tags = []string{"latest", "v1"}
			r.Artifact.Platform = "linux/amd64"
			r.Packages = []report.Package{{Name: "openssl", Version: "3.0.1", Ecosystem: "deb"},
				{Name: "jest", Version: "29.7.0", Ecosystem: "npm", Scope: report.ScopeDev}}
			r.Layers = []report.Layer{{Digest: "sha256:l1", Size: 10 << 20}}
			r.Scanner = report.Scanner{Name: "customs", Version: "dev"}
			r.Vulnerabilities[0].Aliases = []string{"GHSA-xxxx"}
			r.VulnerabilityDB = report.VulnerabilityDB{Status: report.VulnDBChecked, Version: "sha256:abc@2026-11-01T00:00:00Z"}
			r.IgnoredVulnerabilities = []report.IgnoredVulnerability{{Vulnerability: report.Vulnerability{ID: "CVE-2024-9"}, Status: "not_affected"}}
		})
	empty := img("prod/app")
	tests := []struct {
		expr        string
		want, empty bool
	}{
		{`vulnerabilities.exists(v, v.severity == "CRITICAL" && v.fixed_version != "")`, true, false},
		{`vulnerabilities.exists(v, v.severity == "CRITICAL")`, true, false},
		{`findings.exists(f, f.kind == "secret")`, true, false},
		{`findings.all(f, f.kind != "malware")`, true, true},
		{`findings.exists(f, f.line == 7)`, true, false},
		{`size(vulnerabilities) == 0 && size(packages) == 0 && size(layers) == 0`, false, true},
		{`vulnerabilities.exists(v, "GHSA-xxxx" in v.aliases)`, true, false},
		{`vulnerabilities.exists(v, severity_rank(v.severity) >= severity_rank("HIGH"))`, true, false},
		{`os.id == "debian" && os.version.startsWith("12")`, true, false},
		{`artifact.repository == repository && repository.startsWith("prod/") && registry == "registry.example.com"`, true, true},
		{`"latest" in artifact.tags && artifact.platform == "linux/amd64" && artifact.media_type == ""`, true, false},
		{`artifact.tags.size() == 0`, false, true},
		{`layers.exists(l, l.size > 5 * 1024 * 1024)`, true, false},
		{`packages.exists(p, p.name == "openssl" && p.ecosystem == "deb")`, true, false},
		{`packages.exists(p, p.scope == "dev" && p.name == "jest") && packages.exists(p, p.scope == "" && p.name == "openssl")`, true, false},
		{`findings.exists(f, f.encoded == "base64")`, false, false},
		{`vulnerabilities.exists(v, v.severity == "CRITICAL" && packages.exists(p, p.name == v.package && p.version == v.version && p.scope != "dev"))`, true, false},
		{`status == "complete" && scanner.name == "customs"`, true, false},
		{`artifact.digest.lowerAscii().matches("^sha256:")`, true, true},
		{`sets.contains(findings.map(f, f.rule), ["aws-access-token"])`, true, false},
		{`vulnerability_db_status == "not_checked"`, false, true},
		{`vulnerability_db_version.startsWith("sha256:")`, true, false},
		{`ignored_vulnerabilities.exists(v, v.id == "CVE-2024-9")`, true, false},
	}
	for _, tc := range tests {
		p := mustLoad(t, fmt.Sprintf("rules:\n  - name: t\n    when: %q\n    verdict: warn\n", tc.expr))
		for _, c := range []struct {
			r    *report.Report
			want bool
		}{{r, tc.want}, {empty, tc.empty}} {
			d := p.Decide(c.r)
			if len(d.Errors) != 0 {
				t.Fatalf("%s: %v", tc.expr, d.Errors)
			}
			if got := d.Rule == "t"; got != c.want {
				t.Errorf("%s = %v, want %v", tc.expr, got, c.want)
			}
		}
	}
	// Nil slices (a report that was not normalized) are empty lists.
	raw := &report.Report{Status: report.StatusComplete}
	p := mustLoad(t, "rules:\n  - name: t\n    when: 'findings.all(f, false) && size(vulnerabilities) == 0 && artifact.tags.size() == 0'\n    verdict: warn\n")
	if d := p.Decide(raw); d.Rule != "t" || len(d.Errors) != 0 {
		t.Fatalf("got %+v", d)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		src  string
		want []string
	}{
		{"rules:\n  - name: typo\n    when: 'vulnerabilities.exists(v, v.fixed == \"\")'\n    verdict: warn\n",
			[]string{`policy:2: rules[0] "typo": ERROR: when:1:28: undefined field 'fixed'`}},
		{"rules:\n  - name: ok\n    when: 'true'\n    verdict: warn\n  - name: syntax\n    when: 'findings.exists(f, f.kind == )'\n    verdict: warn\n",
			[]string{`policy:5: rules[1] "syntax": ERROR: when:1:`, "Syntax error"}},
		{"rules:\n  - name: undeclared\n    when: 'cves.exists(c, true)'\n    verdict: warn\n", []string{`"undeclared"`, "undeclared reference to 'cves'"}},
		{"rules:\n  - name: notbool\n    when: 'findings'\n    verdict: warn\n", []string{`"notbool"`, "want a bool"}},
		{"rules:\n  - name: v\n    when: 'true'\n    verdict: block\n", []string{`"v"`, `verdict "block"`}},
		{"rules:\n  - name: v\n    when: 'true'\n", []string{`"v"`, "verdict is required"}},
		{"rules:\n  - when: 'true'\n    verdict: pass\n", []string{"rules[0]", "name is required"}},
		{"rules:\n  - name: default:malware\n    when: 'true'\n    verdict: pass\n", []string{"reserved"}},
		{"rules:\n  - name: a\n    when: 'true'\n    verdict: pass\n  - name: a\n    when: 'true'\n    verdict: pass\n", []string{"rules[1]", "duplicate"}},
		{"rules:\n  - name: a\n    verdict: pass\n", []string{`"a"`, "'when' is required"}},
		{"rules:\n  - name: a\n    repositories: ['prod//x']\n    when: 'true'\n    verdict: pass\n", []string{`"a"`, "empty path segment"}},
		{"rules:\n  - name: a\n    repository: prod\n    when: 'true'\n    verdict: pass\n", []string{"field repository not found"}},
		{"warn_at: HIGH\ncost_limit: 1000000000\n", []string{"cost_limit"}},
		{"rules: {}\n", []string{"cannot unmarshal"}},
		{"warn_at: HIGH\n---\nwarn_at: LOW\n", []string{"more than one YAML document"}},
	}
	for _, tc := range tests {
		_, err := Load(strings.NewReader(tc.src))
		if err == nil {
			t.Errorf("%q loaded", tc.src)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not contain %q", tc.src, err, w)
			}
		}
	}
	// Every broken rule is reported, not only the first.
	_, err := Load(strings.NewReader("rules:\n  - name: a\n    when: 'nope'\n    verdict: pass\n  - name: b\n    when: 'nada'\n    verdict: pass\n"))
	if err == nil || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestEvaluationErrorsSkipTheRule(t *testing.T) {
	p := mustLoad(t, `
rules:
  - name: first-finding
    when: 'findings[0].kind == "secret"'
    verdict: pass
  - name: fallback
    when: 'size(findings) == 0'
    verdict: warn
`)
	d := p.Decide(img("a"))
	if d.Rule != "fallback" || len(d.Errors) != 1 || !strings.Contains(d.Errors[0].Error(), `policy rule "first-finding"`) {
		t.Fatalf("got %+v", d)
	}
	d = p.Decide(img("a", withFindings(malware)))
	if d.Rule != RuleMalware || len(d.Errors) != 0 {
		t.Fatalf("got %+v", d)
	}
}

func TestCostLimit(t *testing.T) {
	big := make([]report.Package, 5000)
	for i := range big {
		big[i] = report.Package{Name: fmt.Sprintf("pkg-%d", i), Version: "1"}
	}
	r := img("a", func(r *report.Report) { r.Packages = big }, withFindings(malware))
	p := mustLoad(t, `
rules:
  - name: quadratic
    when: 'packages.all(a, packages.all(b, a.name + b.name != ""))'
    verdict: pass
  - name: linear
    when: 'packages.exists(p, p.name == "pkg-4999")'
    verdict: warn
`)
	start := time.Now()
	d := p.Decide(r)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("evaluation took %v", el)
	}
	if d.Rule != "linear" || len(d.Errors) != 1 || !strings.Contains(d.Errors[0].Error(), "cost limit exceeded") {
		t.Fatalf("got %+v", d)
	}
	// A tighter configured limit stops the linear rule too: defaults decide.
	p = mustLoad(t, "cost_limit: 1000\nrules:\n  - name: linear\n    when: 'packages.exists(p, p.name == \"pkg-4999\")'\n    verdict: pass\n")
	d = p.Decide(r)
	if d.Rule != RuleMalware || len(d.Errors) != 1 || !strings.Contains(d.Errors[0].Error(), "cost limit exceeded") {
		t.Fatalf("got %+v", d)
	}
}

func TestApply(t *testing.T) {
	r := img("prod/api", withVulns(critFix))
	r.Verdict = "stale"
	d := mustLoad(t, examplePolicy).Apply(r)
	if r.Verdict != report.VerdictQuarantine || r.VerdictRule != "block-fixable-critical" || r.VerdictReason != "fixable critical vulnerability" || d.Verdict != r.Verdict {
		t.Fatalf("report %q %q %q", r.Verdict, r.VerdictRule, r.VerdictReason)
	}
	r = img("dev/api")
	Default().Apply(r)
	if r.Verdict != report.VerdictPass || r.VerdictRule != RulePass || r.VerdictReason == "" {
		t.Fatalf("report %q %q %q", r.Verdict, r.VerdictRule, r.VerdictReason)
	}
}

func TestRepoPattern(t *testing.T) {
	tests := []struct {
		pat, repo string
		want      bool
	}{
		{"**", "a/b/c", true},
		{"*", "a", true},
		{"*", "a/b", false},
		{"a/*", "a/b", true},
		{"a/*", "a", false},
		{"a/b*", "a/bcd", true},
		{"a/?", "a/b", true},
		{"a/?", "a/bc", false},
		{"**/app", "app", true},
		{"**/app", "x/y/app", true},
		{"**/app", "x/myapp", false},
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "a/x/y/c", false},
		{"a.b/c", "axb/c", false},
		{"/prod/*", "prod/x", true},
		{"reg.example.com:5000/prod/*", "prod/x", true}, // with registry reg.example.com:5000
	}
	for _, tc := range tests {
		rp, err := compileRepoPattern(tc.pat)
		if err != nil {
			t.Fatal(err)
		}
		if got := rp.match("reg.example.com:5000", tc.repo); got != tc.want {
			t.Errorf("%q ~ %q = %v, want %v", tc.pat, tc.repo, got, tc.want)
		}
	}
}

func TestLiveCredentialRules(t *testing.T) {
	rules := LiveCredentialRules()
	for _, id := range []string{"aws-access-token", "private-key", "github-pat", "gitlab-pat", "gcp-api-key", "azure-ad-client-secret"} {
		found := false
		for _, r := range rules {
			found = found || r == id
		}
		if !found {
			t.Errorf("%s missing", id)
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range rules {
		if !strings.Contains(string(readme), "`"+id+"`") {
			t.Errorf("README.md does not list %s", id)
		}
	}
	rules[0] = "mutated"
	if LiveCredentialRules()[0] == "mutated" {
		t.Fatal("LiveCredentialRules returned the internal slice")
	}
	if IsLiveCredential(report.Finding{Kind: report.KindMalware, Rule: "private-key"}) {
		t.Fatal("only secrets are credentials")
	}
}

func TestConcurrentDecide(t *testing.T) {
	p := mustLoad(t, examplePolicy)
	reports := []*report.Report{img("prod/api", withVulns(critFix)), img("sandbox/x", withFindings(awsKey)), img("dev/x")}
	want := []string{"block-fixable-critical", "allow-test-secrets", RulePass}
	done := make(chan error)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 50; i++ {
				k := (g + i) % len(reports)
				if d := p.Decide(reports[k]); d.Rule != want[k] {
					done <- fmt.Errorf("got %s, want %s", d.Rule, want[k])
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadmeExamples keeps README.md honest: its policy file loads and its
// example expressions compile.
func TestReadmeExamples(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(data), "```")
	var yamls, exprs int
	for i := 1; i < len(blocks); i += 2 {
		b := blocks[i]
		switch {
		case strings.HasPrefix(b, "yaml\n"):
			yamls++
			if _, err := Load(strings.NewReader(strings.TrimPrefix(b, "yaml\n"))); err != nil {
				t.Errorf("README policy: %v", err)
			}
		case strings.HasPrefix(b, "\n") && !strings.Contains(b, "ERROR"):
			for _, line := range strings.Split(strings.TrimSpace(b), "\n") {
				exprs++
				src := fmt.Sprintf("rules:\n  - name: x\n    when: %q\n    verdict: warn\n", line)
				if _, err := Load(strings.NewReader(src)); err != nil {
					t.Errorf("README expression %s: %v", line, err)
				}
			}
		}
	}
	if yamls != 1 || exprs != 6 {
		t.Fatalf("found %d policies and %d expressions in README.md", yamls, exprs)
	}
}

// A Go vulnerability whose vulnerable functions are not in the binary
// (reachable "false") is listed but does not make default:severity warn;
// "unknown" and "true" do. A rule still sees it.
func TestUnreachableGoVulnerabilities(t *testing.T) {
	vuln := func(reach string) *report.Report {
		return &report.Report{Status: report.StatusComplete, Vulnerabilities: []report.Vulnerability{
			{ID: "GO-2022-1059", Package: "golang.org/x/text", Severity: report.SeverityHigh, Reachable: reach},
		}}
	}
	for reach, want := range map[string]string{
		report.ReachableFalse: report.VerdictPass, report.ReachableUnknown: report.VerdictWarn,
		report.ReachableTrue: report.VerdictWarn, "": report.VerdictWarn,
	} {
		if d := Default().Decide(vuln(reach)); d.Verdict != want {
			t.Errorf("reachable %q: %+v, want %s", reach, d, want)
		}
	}
	p := mustLoad(t, "rules:\n  - name: all-go\n    when: 'vulnerabilities.exists(v, v.reachable == \"false\" && severity_rank(v.severity) >= 3)'\n    verdict: warn\n")
	if d := p.Decide(vuln(report.ReachableFalse)); d.Verdict != report.VerdictWarn || d.Rule != "all-go" {
		t.Errorf("rule on unreachable: %+v", d)
	}
}
