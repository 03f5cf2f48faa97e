package secrets_test

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
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

// TestEncoded: secrets in base64, hex and percent-encoded segments, and in
// encodings of encodings, are found and say how they were encoded; the
// excerpt shows the decoded line redacted, and neither the secret nor its
// encoded form appears in any finding.
func TestEncoded(t *testing.T) {
	e := newEngine(t)
	b64 := base64.StdEncoding.EncodeToString
	awsKeyID := "AKIAQ5ZJ3X7N2KPL4VWT"
	gh2 := "ghp_Yq8Lr2Xv9Tb4Nc6Md1Pw7Ks3Hy5Fj0GaUeWi"
	gh3 := "ghp_Xq8Lr2Xv9Tb4Nc6Md1Pw7Ks3Hy5Fj0GaUeWi"
	ghURL := strings.ReplaceAll(gh2, "_", "%5F")
	nested := b64([]byte(b64([]byte("token: " + gh3))))
	text := "server:\n  port: 8080\n" +
		"  auth: " + b64([]byte(githubPAT)) + "\n" + // line 3
		"  blob: " + hex.EncodeToString([]byte("aws_access_key_id="+awsKeyID)) + "\n" + // line 4
		"  url: https://api.example.com/?t=" + ghURL + "&x=1\n" + // line 5
		"  nested: " + nested + "\n" // line 6
	got := e.Find("app/config.yml", []byte(text), 100)
	var keys []string
	for _, f := range got {
		keys = append(keys, fmt.Sprintf("%s line %d encoded %q", f.Rule, f.Line, f.Encoded))
		for _, s := range []string{githubPAT, gh2, gh3, awsKeyID, b64([]byte(githubPAT)), nested, ghURL} {
			if strings.Contains(f.Excerpt, s) {
				t.Errorf("%s: excerpt %q holds %.12s…", f.Rule, f.Excerpt, s)
			}
		}
	}
	slices.Sort(keys)
	want := []string{
		`aws-access-token line 4 encoded "hex"`,
		`github-pat line 3 encoded "base64"`,
		`github-pat line 5 encoded "percent"`,
		`github-pat line 6 encoded "base64+base64"`,
	}
	if !slices.Equal(keys, want) {
		t.Errorf("got %q\nwant %q", keys, want)
	}
	for _, f := range got {
		if f.Rule == "github-pat" && f.Encoded == "base64" && f.Excerpt != "auth: ghp_…Wi" {
			t.Errorf("excerpt of the decoded line = %q", f.Excerpt)
		}
	}
	// Nothing encoded in ordinary content: hashes, binary data URIs,
	// identifiers, base64 of text without secrets.
	clean := "sha256: " + strings.Repeat("9f86d081884c7d65", 4) + "\n" +
		"img: data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\n" +
		"fn: __webpack_require__ addEventListenerOnce_1234567890\n" +
		"note: " + b64([]byte("just a note about the weather, nothing to see")) + "\n"
	if got := e.Find("app/x.yml", []byte(clean), 100); len(got) != 0 {
		t.Errorf("clean text: %+v", got)
	}
	off, err := secrets.New(secrets.WithDecodeDepth(0))
	if err != nil {
		t.Fatal(err)
	}
	// Without decoding, only the generic rule sees the base64 value.
	if got := off.Find("app/config.yml", []byte(text), 100); len(got) != 1 || got[0].Rule != "generic-api-key" || got[0].Encoded != "" {
		t.Errorf("decoding off: %+v", got)
	}
	one, err := secrets.New(secrets.WithDecodeDepth(1))
	if err != nil {
		t.Fatal(err)
	}
	if got := one.Find("", []byte("nested: "+nested), 100); len(got) != 0 {
		t.Errorf("depth 1 found a secret two encodings deep: %+v", got)
	}
}

// Rules finish building on their first run; a fresh engine shared by
// goroutines whose texts trigger the same rules at once finds what it
// finds alone (run with -race: the first runs share the rules).
func TestFirstRunsConcurrent(t *testing.T) {
	text := []byte("github:\n  token: " + githubPAT + "\naws_secret_access_key = " + awsSecret + "\n" +
		"password = \"Zx9!vQ2#rT8$wL4\"\napi_key: sk_live_" + strings.Repeat("a1B2", 6) + "\n")
	want := fmt.Sprint(newEngine(t).Find("app/config.yml", text, 100))
	e := newEngine(t)
	got := make([]string, 8)
	done := make(chan struct{})
	for i := range got {
		go func() {
			defer func() { done <- struct{}{} }()
			got[i] = fmt.Sprint(e.Find("app/config.yml", text, 100))
		}()
	}
	for range got {
		<-done
	}
	for i, g := range got {
		if g != want {
			t.Errorf("goroutine %d: %s\nwant %s", i, g, want)
		}
	}
	if !strings.Contains(want, "github-pat") {
		t.Errorf("nothing found: %s", want)
	}
}
