package policy

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/customs-scan/customs/pkg/report"
)

// fuzzReports are the reports fuzzed policies decide: a clean image, one
// with every kind of finding and vulnerability, a failed scan, an index.
func fuzzReports() []*report.Report {
	failed := func(r *report.Report) { r.Status, r.Error, r.Verdict = report.StatusFailed, "boom", report.VerdictWarn }
	index := func(r *report.Report) {
		r.Manifests = []report.ManifestRef{{Digest: "sha256:1", Platform: "linux/amd64", Verdict: "pass"}, {Digest: "sha256:2", Platform: "linux/arm64"}}
	}
	tagged := func(r *report.Report) { r.Artifact.Tags = []string{"v1", "latest"} }
	return []*report.Report{
		img("team-a/app"),
		img("prod/api", tagged, withFindings(malware, awsKey, privKey, lowSecret, misconfig), withVulns(critFix, critNoFix, highVuln, medVuln)),
		img("sandbox/x/y", withFindings(critSec, slackTok), withVulns(medVuln)),
		img("a", failed),
		img("a", index),
	}
}

var fuzzVerdicts = []string{report.VerdictPass, report.VerdictWarn, report.VerdictQuarantine}

// checkDecisions decides every fuzz report with p: the verdict is one of
// the three, the rule one of p's (or a built-in one), and deciding again
// gives the same decision.
func checkDecisions(t *testing.T, p *Policy) {
	t.Helper()
	names := p.RuleNames()
	for _, r := range fuzzReports() {
		d := p.Decide(r)
		if !slices.Contains(fuzzVerdicts, d.Verdict) || d.Rule == "" || d.Reason == "" {
			t.Fatalf("decision %+v for %s", d, r.Artifact.Repository)
		}
		if !slices.Contains(names, d.Rule) && !strings.HasPrefix(d.Rule, "default:") {
			t.Fatalf("decided by %q, not one of %q", d.Rule, names)
		}
		if again := p.Decide(r); again.Verdict != d.Verdict || again.Rule != d.Rule || again.Reason != d.Reason || len(again.Errors) != len(d.Errors) {
			t.Fatalf("two decisions differ: %+v, then %+v", d, again)
		}
	}
}

// FuzzLoad loads arbitrary policy files (YAML or JSON, CEL rules, globs)
// and decides a few reports with what loaded. It checks that nothing
// panics, that a failure is an error, and checkDecisions.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(examplePolicy))
	for _, s := range []string{
		"",
		"warn_at: medium\n",
		"warn_at: NONE\ncost_limit: 1000\nrules:\n  - name: linear\n    when: 'packages.exists(p, p.name == \"pkg-4999\")'\n    verdict: pass\n",
		"rules:\n  - name: t\n    when: 'findings.all(f, false) && size(vulnerabilities) == 0 && artifact.tags.size() == 0'\n    verdict: warn\n",
		"rules:\n  - name: first-finding\n    when: 'findings[0].kind == \"secret\"'\n    verdict: quarantine\n",
		`{"warn_at": "LOW", "rules": [{"name": "j", "repositories": ["registry.example.com/**", "a"], "when": "artifact.repository.matches('^a$')", "verdict": "Pass", "reason": "json"}]}`,
		"rules:\n  - name: a\n    repositories: ['prod//x']\n    when: 'true'\n    verdict: pass\n",
		"rules: {}\n",
		"warn_at: HIGH\n---\nwarn_at: LOW\n",
		"rules:\n  - &a {name: a, when: 'true', verdict: warn}\n  - *a\n",
	} {
		f.Add([]byte(s))
	}
	if data, err := os.ReadFile("README.md"); err == nil {
		blocks := strings.Split(string(data), "```")
		for i := 1; i < len(blocks); i += 2 {
			if b, ok := strings.CutPrefix(blocks[i], "yaml\n"); ok {
				f.Add([]byte(b))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Load(strings.NewReader(string(data)))
		if err != nil {
			if p != nil {
				t.Fatalf("Load returned a policy and %v", err)
			}
			return
		}
		checkDecisions(t, p)
	})
}

// FuzzRule loads a policy of one rule with an arbitrary CEL expression
// and repository pattern (written as proper YAML, so every input reaches
// the compilers), decides the fuzz reports with it (checkDecisions), and
// checks the glob: a pattern without wildcards that compiles matches the
// repository it spells.
func FuzzRule(f *testing.F) {
	f.Add(`vulnerabilities.exists(v, v.severity == "CRITICAL" && v.fixed_version != "")`, "prod/*")
	f.Add(`findings.all(f, f.kind != "malware")`, "sandbox/**")
	f.Add(`true`, "mirror.example.com/**")
	f.Add(`artifact.tags.exists(t, t.startsWith("v")) || size(packages) > 3`, "team-a/app")
	f.Add(`findings.filter(f, f.severity in ["HIGH", "CRITICAL"]).map(f, f.rule).size() >= 2`, "registry.example.com:5000/a/b")
	f.Add(`os.id == "debian" && ignored_vulnerabilities.size() == 0 ? true : false`, "/a/?/c")
	f.Add(`findings[0].kind == "secret"`, "**")
	f.Add(`1 / 0 == 1`, "a.b/c-d_e")
	if data, err := os.ReadFile("README.md"); err == nil {
		blocks := strings.Split(string(data), "```")
		for i := 1; i < len(blocks); i += 2 {
			if b := blocks[i]; strings.HasPrefix(b, "\n") && !strings.Contains(b, "ERROR") {
				for _, line := range strings.Split(strings.TrimSpace(b), "\n") {
					f.Add(line, "team-a/**")
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, when, repo string) {
		load := func(name, when, verdict string) (*Policy, error) {
			src, err := yaml.Marshal(map[string]any{"rules": []map[string]any{{
				"name": name, "repositories": []string{repo}, "when": when, "verdict": verdict,
			}}})
			if err != nil {
				t.Skip("not representable in YAML")
			}
			return Load(strings.NewReader(string(src)))
		}
		p, err := load("fuzz", when, "warn")
		if err == nil {
			checkDecisions(t, p)
		}
		if strings.ContainsAny(repo, "*?") {
			return
		}
		p, err = load("glob", "true", "quarantine")
		if err != nil {
			return
		}
		spelled := strings.TrimPrefix(strings.TrimSpace(repo), "/")
		r := img(spelled)
		if d := p.Decide(r); d.Rule != "glob" {
			t.Fatalf("pattern %q does not match repository %q: %+v", repo, spelled, d)
		}
	})
}
