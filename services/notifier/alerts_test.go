package notifier_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/notifier"
)

// secretURL is a chat webhook URL: its path is the credential, and no
// error or log line may show it.
const secretURL = "https://hooks.slack.example/services/T000/B000/SECRETtoken123"

func TestAlertsFileErrors(t *testing.T) {
	t.Setenv("SLACK_URL", secretURL)
	t.Setenv("EMPTY_URL", "")
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "destinations: []\nroutse: []\n", "line 2: unknown key \"routse\""},
		{"unknown destination key", `
destinations:
  - name: a
    type: slack
    url_env: SLACK_URL
    channel: "#sec"
routes:
  - destinations: [a]
`, "line 6: unknown key \"channel\""},
		{"unknown route key", `
destinations:
  - {name: a, type: slack, url_env: SLACK_URL}
routes:
  - destinations: [a]
    severity: HIGH
`, "line 6: unknown key \"severity\""},
		{"undefined destination", `
destinations:
  - {name: a, type: slack, url_env: SLACK_URL}
routes:
  - destinations: [a, b]
`, "line 5: destination \"b\" is not defined"},
		{"unknown type", `
destinations:
  - {name: a, type: hipchat, url_env: SLACK_URL}
routes:
  - destinations: [a]
`, "line 3: type \"hipchat\""},
		{"two urls", `
destinations:
  - name: a
    type: slack
    url: "` + secretURL + `"
    url_env: SLACK_URL
routes:
  - destinations: [a]
`, "line 6: url is given twice"},
		{"no url", `
destinations:
  - {name: a, type: slack}
routes:
  - destinations: [a]
`, "line 3: destination a has no url"},
		{"unset env", `
destinations:
  - {name: a, type: slack, url_env: EMPTY_URL}
routes:
  - destinations: [a]
`, "line 3: url_env: environment variable \"EMPTY_URL\" is not set or empty"},
		{"not a URL", `
destinations:
  - {name: a, type: slack, url: "hooks.slack.example/services/T000/B000/SECRETtoken123"}
routes:
  - destinations: [a]
`, "line 3: destination a: url does not hold an http(s) URL"},
		{"unparsable URL", `
destinations:
  - {name: a, type: slack, url: "https://hooks.slack.example/services/%zzSECRETtoken123"}
routes:
  - destinations: [a]
`, "does not hold an http(s) URL"},
		{"webhook without secret", `
destinations:
  - {name: a, type: webhook, url_env: SLACK_URL}
routes:
  - destinations: [a]
`, "needs a signing secret"},
		{"bad secret", `
destinations:
  - {name: a, type: webhook, url_env: SLACK_URL, secret: "whsec_SECRETtoken123"}
routes:
  - destinations: [a]
`, "line 3: destination a: secret:"},
		{"secret on a chat type", `
destinations:
  - {name: a, type: slack, url_env: SLACK_URL, secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
routes:
  - destinations: [a]
`, "only for type webhook"},
		{"bad severity", `
destinations:
  - {name: a, type: slack, url_env: SLACK_URL}
routes:
  - {destinations: [a], min_severity: SEVERE}
`, "line 5: min_severity \"SEVERE\""},
		{"bad kind", `
destinations:
  - {name: a, type: slack, url_env: SLACK_URL}
routes:
  - destinations: [a]
    kinds: [vulnerability, secrets]
`, "line 6: kind \"secrets\""},
		{"bad pattern", `
destinations:
  - {name: a, type: slack, url_env: SLACK_URL}
routes:
  - destinations: [a]
    repositories: ["a/**/b"]
`, "line 6: repository pattern \"a/**/b\""},
		{"duplicate name", `
destinations:
  - {name: a, type: slack, url_env: SLACK_URL}
  - {name: a, type: teams, url_env: SLACK_URL}
routes:
  - destinations: [a]
`, "line 4: destination name \"a\" already used on line 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := notifier.LoadConfig(file)
			if err == nil {
				t.Fatalf("loaded; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SECRETtoken123") {
				t.Errorf("error quotes the URL or secret: %q", err)
			}
		})
	}
}

func TestAlertsFileLoads(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SLACK_URL", secretURL)
	t.Setenv("SIEM_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err := os.WriteFile(filepath.Join(dir, "teams-url"), []byte("https://example.logic.azure.com/workflows/abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(file, []byte(`
public_url: https://customs.example.com/
destinations:
  - name: sec-slack
    type: slack
    url_env: SLACK_URL
  - name: teams
    type: teams
    url_file: teams-url
    rate_per_second: 0.5
  - name: siem
    type: webhook
    url: https://siem.example.com/customs
    secret_env: SIEM_SECRET
routes:
  - repositories: ["payments/*", "public/**"]
    min_severity: high
    kinds: [vulnerability, malware, secret, misconfig, quarantine]
    verdicts: [quarantine, warn]
    destinations: [sec-slack, siem]
  - destinations: [teams]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := notifier.LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "https://customs.example.com" {
		t.Errorf("public_url %q", c.PublicURL)
	}
	var names []string
	for _, d := range c.Destinations {
		names = append(names, d.String())
		if strings.Contains(d.String(), "SECRETtoken123") {
			t.Errorf("%v shows its URL", d)
		}
	}
	if want := []string{"sec-slack (slack)", "teams (teams)", "siem (webhook)"}; !slices.Equal(names, want) {
		t.Errorf("destinations %q, want %q", names, want)
	}
	if d, _ := c.Destination("teams"); d.RatePerSecond != 0.5 {
		t.Errorf("teams rate %v", d.RatePerSecond)
	}
	if d, _ := c.Destination("sec-slack"); d.RatePerSecond != 1 {
		t.Errorf("slack default rate %v, want 1", d.RatePerSecond)
	}
	if r := c.Routes[0]; r.MinSeverity != "HIGH" || len(r.Verdicts) != 2 {
		t.Errorf("route %+v", r)
	}
}

func items(specs ...string) []*customsv1.AlertItem {
	var out []*customsv1.AlertItem
	for _, s := range specs {
		kind, sev, _ := strings.Cut(s, ":")
		out = append(out, &customsv1.AlertItem{Kind: kind, Id: s, Severity: sev})
	}
	return out
}

func ids(a *customsv1.Alert) []string {
	var out []string
	for _, it := range a.GetNewItems() {
		out = append(out, it.GetId())
	}
	return out
}

func TestPlan(t *testing.T) {
	c := &notifier.AlertsConfig{
		Destinations: []notifier.Destination{{Name: "sec"}, {Name: "team"}, {Name: "quarantine"}, {Name: "public"}},
		Routes: []notifier.Route{
			{Repositories: []string{"payments/*"}, MinSeverity: "HIGH", Kinds: []string{"vulnerability", "malware"}, Destinations: []string{"sec"}},
			{Repositories: []string{"payments/*"}, Kinds: []string{"secret"}, Destinations: []string{"sec", "team"}},
			{Kinds: []string{"quarantine"}, Verdicts: []string{"quarantine"}, Destinations: []string{"quarantine"}},
			{Repositories: []string{"public/**"}, Destinations: []string{"public"}},
		},
	}
	for _, tc := range []struct {
		name  string
		alert *customsv1.Alert
		want  map[string][]string // destination → item ids
		quar  []string            // destinations whose copy keeps the quarantine part
	}{
		{
			name:  "min_severity filters a MEDIUM-only push out",
			alert: &customsv1.Alert{Kind: "push", Repository: "payments/api", Verdict: "warn", NewItems: items("vulnerability:MEDIUM", "vulnerability:LOW")},
			want:  map[string][]string{},
		},
		{
			name:  "kinds and severity per route, union per destination, alert order kept",
			alert: &customsv1.Alert{Kind: "push", Repository: "payments/api", Verdict: "warn", NewItems: items("vulnerability:CRITICAL", "secret:HIGH", "vulnerability:MEDIUM", "misconfig:HIGH", "malware:LOW")},
			want: map[string][]string{
				"sec":  {"vulnerability:CRITICAL", "secret:HIGH", "malware:LOW"},
				"team": {"secret:HIGH"},
			},
		},
		{
			name:  "* stays in one segment",
			alert: &customsv1.Alert{Kind: "push", Repository: "payments/tools/api", Verdict: "warn", NewItems: items("vulnerability:CRITICAL")},
			want:  map[string][]string{},
		},
		{
			name:  "/** matches everything below",
			alert: &customsv1.Alert{Kind: "rematch", Repository: "public/web/frontend", Verdict: "pass", NewItems: items("vulnerability:LOW")},
			want:  map[string][]string{"public": {"vulnerability:LOW"}},
		},
		{
			name: "a quarantining push: items where items go, the quarantine part where quarantine goes",
			alert: &customsv1.Alert{Kind: "push", Repository: "payments/api", Verdict: "quarantine", NewItems: items("malware:CRITICAL"),
				Quarantine: &customsv1.AlertQuarantine{State: "quarantined", Mode: "enforce", By: "customs"}},
			want: map[string][]string{"sec": {"malware:CRITICAL"}, "quarantine": nil},
			quar: []string{"quarantine"},
		},
		{
			name: "a release goes only where quarantine news goes",
			alert: &customsv1.Alert{Kind: "release", Repository: "payments/api", Verdict: "quarantine", NewItems: items("malware:CRITICAL"),
				Quarantine: &customsv1.AlertQuarantine{State: "released", By: "alice", Reason: "false positive"}},
			// kinds [quarantine]: the news, without the items.
			want: map[string][]string{"quarantine": nil},
			quar: []string{"quarantine"},
		},
		{
			name:  "verdicts restrict",
			alert: &customsv1.Alert{Kind: "quarantine", Repository: "other/app", Verdict: "warn", Quarantine: &customsv1.AlertQuarantine{State: "quarantined", By: "bob"}},
			want:  map[string][]string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := c.Plan(tc.alert)
			if len(plan) != len(tc.want) {
				t.Errorf("plan reaches %d destinations, want %v", len(plan), tc.want)
			}
			for name, want := range tc.want {
				got, ok := plan[name]
				if !ok {
					t.Errorf("%s: no message", name)
					continue
				}
				if !slices.Equal(ids(got), want) {
					t.Errorf("%s: items %q, want %q", name, ids(got), want)
				}
				if q := got.GetQuarantine() != nil; q != slices.Contains(tc.quar, name) {
					t.Errorf("%s: quarantine part kept = %v", name, q)
				}
			}
			if len(tc.alert.GetNewItems()) > 0 && tc.alert.GetNewItems()[0] == nil {
				t.Error("the published alert was changed")
			}
		})
	}
}

// The compose stack's alerts file loads (with the URL its environment
// gives it).
func TestDeployAlertsExample(t *testing.T) {
	t.Setenv("SLACK_WEBHOOK_URL", secretURL)
	c, err := notifier.LoadConfig("../../deploy/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Destinations) != 1 || len(c.Routes) != 1 || c.PublicURL == "" {
		t.Errorf("deploy/alerts.yml: %+v", c)
	}
}
