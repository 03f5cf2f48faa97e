package secrets_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/secrets"
)

func newEngine(t testing.TB) *secrets.Engine {
	t.Helper()
	e, err := secrets.New()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Made-up credentials of the right shapes.
const (
	githubPAT = "ghp_Zq8Lr2Xv9Tb4Nc6Md1Pw7Ks3Hy5Fj0GaUeWi"
	awsSecret = "Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7d"
)

func TestFind(t *testing.T) {
	e := newEngine(t)
	text := []byte("server:\n  port: 8080\ngithub:\n  token: " + githubPAT + "\n" +
		"aws_secret_access_key = " + awsSecret + "\n")
	got := e.Find("app/config.yml", text, 100)
	var keys []string
	for _, f := range got {
		keys = append(keys, f.Rule+" "+f.Severity+" "+string(rune('0'+f.Line)))
		if f.Description == "" {
			t.Errorf("%s: no description", f.Rule)
		}
		if strings.Contains(f.Excerpt, githubPAT) || strings.Contains(f.Excerpt, awsSecret) {
			t.Errorf("%s: excerpt %q holds a secret", f.Rule, f.Excerpt)
		}
	}
	slices.Sort(keys)
	// generic-api-key with the exact shape of an AWS secret is renamed.
	want := []string{"aws-secret-access-key CRITICAL 5", "github-pat CRITICAL 4"}
	if !slices.Equal(keys, want) {
		t.Errorf("got %q, want %q", keys, want)
	}
	if got := e.Find("app/config.yml", text, 1); len(got) != 1 {
		t.Errorf("limit 1: %d findings", len(got))
	}
	if got := e.Find("", []byte("GITHUB_TOKEN="+githubPAT), 10); len(got) != 1 || got[0].Excerpt != "GITHUB_TOKEN=ghp_…Wi" {
		t.Errorf("config string: %+v", got)
	}
	if got := e.Find("app/x", nil, 10); got != nil {
		t.Errorf("empty text: %+v", got)
	}
}

func TestPaths(t *testing.T) {
	e := newEngine(t)
	if !e.PathAllowed("app/node_modules/x/index.js") || e.PathAllowed("app/.env") {
		t.Error("global path allowlist")
	}
	got := e.PathFindings("app/certs/client.p12")
	if len(got) != 1 || got[0].Rule != "pkcs12-file" || got[0].Severity != "HIGH" || got[0].Line != 0 {
		t.Errorf("PathFindings = %+v", got)
	}
	if got := e.PathFindings("app/x.txt"); len(got) != 0 {
		t.Errorf("PathFindings(app/x.txt) = %+v", got)
	}
	rules := e.Rules()
	if len(rules) < 200 || !slices.Contains(rules, "github-pat") || !slices.Contains(rules, "pkcs12-file") {
		t.Errorf("%d rules", len(rules))
	}
}

func TestSeen(t *testing.T) {
	e := newEngine(t)
	a := e.Find("", []byte("RUN |1 GH="+githubPAT+" /bin/sh -c make"), 10)
	b := e.Find("", []byte("ENV GITHUB_TOKEN="+githubPAT), 10)
	other := e.Find("", []byte("ENV GITHUB_TOKEN=ghp_Yq8Lr2Xv9Tb4Nc6Md1Pw7Ks3Hy5Fj0GaUeWi"), 10)
	if len(a) != 1 || len(b) != 1 || len(other) != 1 {
		t.Fatalf("findings %d %d %d", len(a), len(b), len(other))
	}
	var s secrets.Seen
	if !s.Add(&a[0]) || s.Add(&b[0]) || !s.Add(&other[0]) || s.Add(&a[0]) {
		t.Error("Seen: the same secret is new twice, or another one is not")
	}
}
