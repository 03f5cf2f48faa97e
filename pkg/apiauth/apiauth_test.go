package apiauth_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/apiauth"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const tokensYAML = `# API tokens (hashes only)
tokens:
  - name: team-a-ci
    sha256: %A%
    role: read
    repositories: ["team-a/*", "shared/base"]
  - name: reader
    sha256: %R%
    role: READ
  - name: ops
    sha256: %O%
    role: admin
`

func tokensFile(t *testing.T) string {
	t.Helper()
	r := strings.NewReplacer("%A%", apiauth.Hash("team-a-secret"), "%R%", strings.ToUpper(apiauth.Hash("reader-secret")), "%O%", apiauth.Hash("ops-secret"))
	return writeFile(t, r.Replace(tokensYAML))
}

// serve runs a real server with a read route and an admin route; the
// handlers echo who called.
func serve(t *testing.T, a *apiauth.Authenticator) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	echo := func(w http.ResponseWriter, r *http.Request) {
		p := apiauth.FromContext(r.Context())
		_, _ = io.WriteString(w, p.Name+"|"+string(p.Role)+"|"+strings.Join(p.Repositories, ","))
	}
	mux.Handle("/read", a.Middleware(apiauth.RoleRead)(http.HandlerFunc(echo)))
	mux.Handle("/admin", a.Middleware(apiauth.RoleAdmin)(http.HandlerFunc(echo)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type result struct {
	code int
	body string
	www  string
}

func call(t *testing.T, srv *httptest.Server, path, auth string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{code: resp.StatusCode, body: string(b), www: resp.Header.Get("WWW-Authenticate")}
}

func TestMiddlewareRolesAndStatuses(t *testing.T) {
	a, err := apiauth.New(apiauth.Config{TokensFile: tokensFile(t), AdminToken: "env-admin"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Tokens() != 4 {
		t.Fatalf("Tokens() = %d, want 4", a.Tokens())
	}
	srv := serve(t, a)
	cases := []struct {
		path, auth string
		code       int
		body, www  string
	}{
		{"/read", "", 401, "missing bearer token", `Bearer realm="customs"`},
		{"/read", "Bearer wrong", 401, "wrong bearer token", `error="invalid_token"`},
		{"/read", "Basic cmVhZGVyLXNlY3JldA==", 401, "wrong bearer token", `error="invalid_token"`},
		{"/read", "Bearer reader-secret2", 401, "", "invalid_token"},
		{"/read", "Bearer reader-secret", 200, "reader|read|", ""},
		{"/read", "bearer reader-secret", 200, "reader|read|", ""},
		{"/read", "BEARER reader-secret", 200, "reader|read|", ""},
		{"/read", "Bearer team-a-secret", 200, "team-a-ci|read|team-a/*,shared/base", ""},
		{"/admin", "Bearer reader-secret", 403, "token reader has the read role", `error="insufficient_scope"`},
		{"/admin", "Bearer ops-secret", 200, "ops|admin|", ""},
		{"/read", "Bearer ops-secret", 200, "ops|admin|", ""},
		{"/admin", "Bearer env-admin", 200, "admin-token|admin|", ""},
		{"/admin", "", 401, "missing", "Bearer"},
	}
	for _, c := range cases {
		got := call(t, srv, c.path, c.auth)
		if got.code != c.code || !strings.Contains(got.body, c.body) || !strings.Contains(got.www, c.www) {
			t.Errorf("%s with %q: %d %q (WWW-Authenticate %q); want %d %q (%q)", c.path, c.auth, got.code, got.body, got.www, c.code, c.body, c.www)
		}
		if c.code == 200 && got.www != "" {
			t.Errorf("%s with %q: WWW-Authenticate %q on success", c.path, c.auth, got.www)
		}
	}
}

func TestAnonymousRoles(t *testing.T) {
	// Reads open (customs up on loopback): reads pass, admin needs a token.
	a, err := apiauth.New(apiauth.Config{Anonymous: apiauth.RoleRead})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, a)
	if got := call(t, srv, "/read", ""); got.code != 200 || got.body != "|read|" {
		t.Errorf("open reads, anonymous read: %d %q", got.code, got.body)
	}
	if got := call(t, srv, "/admin", ""); got.code != 401 || got.www == "" {
		t.Errorf("open reads, anonymous admin: %d %q", got.code, got.www)
	}

	// Reads open with an admin token configured: a wrong token is still wrong.
	a, err = apiauth.New(apiauth.Config{Anonymous: apiauth.RoleRead, AdminToken: "adm"})
	if err != nil {
		t.Fatal(err)
	}
	srv = serve(t, a)
	for path, want := range map[string]int{"/read": 200, "/admin": 401} {
		if got := call(t, srv, path, ""); got.code != want {
			t.Errorf("open reads + admin token, anonymous %s: %d, want %d", path, got.code, want)
		}
	}
	if got := call(t, srv, "/read", "Bearer nope"); got.code != 401 {
		t.Errorf("open reads + admin token, wrong token: %d, want 401", got.code)
	}
	if got := call(t, srv, "/admin", "bearer adm"); got.code != 200 {
		t.Errorf("open reads + admin token, admin: %d, want 200", got.code)
	}

	// Off: everything open.
	a, err = apiauth.New(apiauth.Config{Anonymous: apiauth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if got := call(t, serve(t, a), "/admin", ""); got.code != 200 {
		t.Errorf("auth off, admin: %d", got.code)
	}
}

func TestNewRefusesNoTokens(t *testing.T) {
	if _, err := apiauth.New(apiauth.Config{}); err == nil || err != apiauth.ErrNoTokens {
		t.Fatalf("New with nothing: %v, want ErrNoTokens", err)
	}
	if _, err := apiauth.New(apiauth.Config{AdminToken: " padded "}); err == nil {
		t.Fatal("admin token with white space accepted")
	}
	if _, err := apiauth.New(apiauth.Config{TokensFile: filepath.Join(t.TempDir(), "absent.yaml")}); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	h := apiauth.Hash("x")
	cases := []struct{ name, body, want string }{
		{"empty", "", "empty file"},
		{"not a mapping", "- a\n", "line 1"},
		{"unknown top key", "token:\n  - name: a\n", `line 1: unknown key "token"`},
		{"no list", "tokens: {}\n", "line 1: tokens must be a list"},
		{"empty list", "tokens: []\n", "empty"},
		{"plain token", "tokens:\n  - name: a\n    sha256: hunter2\n    role: read\n", "line 3: sha256 must be 64 hex digits"},
		{"bad role", "tokens:\n  - name: a\n    sha256: " + h + "\n    role: root\n", `line 4: role "root"`},
		{"no role", "tokens:\n  - name: a\n    sha256: " + h + "\n", `line 2: token "a" has no role`},
		{"no name", "tokens:\n  - sha256: " + h + "\n    role: read\n", "line 2: token without a name"},
		{"unknown key", "tokens:\n  - name: a\n    sha256: " + h + "\n    role: read\n    repo: [x]\n", `line 5: unknown key "repo"`},
		{"empty scope", "tokens:\n  - name: a\n    sha256: " + h + "\n    role: read\n    repositories: []\n", "line 5: repositories must be a non-empty list"},
		{"bad pattern", "tokens:\n  - name: a\n    sha256: " + h + "\n    role: read\n    repositories:\n      - ok/*\n      - \"bad[\"\n", "line 7: repository pattern"},
		{"inner **", "tokens:\n  - name: a\n    sha256: " + h + "\n    role: read\n    repositories: [\"a/**/b\"]\n", "trailing /**"},
		{"duplicate name", "tokens:\n  - {name: a, sha256: " + h + ", role: read}\n  - {name: a, sha256: " + apiauth.Hash("y") + ", role: read}\n", `line 3: token name "a" already used on line 2`},
		{"duplicate hash", "tokens:\n  - {name: a, sha256: " + h + ", role: read}\n  - {name: b, sha256: " + h + ", role: admin}\n", `line 3: token "b" has the same hash as token "a"`},
		{"yaml syntax", "tokens:\n  - name: [a\n", "line"},
		{"two documents", "tokens: []\n---\ntokens: []\n", "more than one"},
	}
	for _, c := range cases {
		_, err := apiauth.Parse([]byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
	// Every bad entry is reported, not just the first.
	_, err := apiauth.Parse([]byte("tokens:\n  - {name: a, sha256: x, role: read}\n  - {name: b, sha256: " + h + ", role: boss}\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("two bad entries: %v", err)
	}
}

func TestScope(t *testing.T) {
	p := apiauth.Principal{Name: "t", Role: apiauth.RoleRead, Repositories: []string{"team-a/*", "shared/base", "team-*/tools/**"}}
	for repo, want := range map[string]bool{
		"team-a/app":           true,
		"team-a/sub/app":       false, // * stays inside one segment
		"team-a":               false,
		"team-b/app":           false,
		"shared/base":          true,
		"shared/base2":         false,
		"team-c/tools/x":       true,
		"team-c/tools/x/y":     true,
		"team-c/tools":         false,
		"team-c/other/x":       false,
		"team-a/../team-b/app": false,
	} {
		if got := p.CanSee(repo); got != want {
			t.Errorf("CanSee(%q) = %v, want %v", repo, got, want)
		}
	}
	if !(apiauth.Principal{Role: apiauth.RoleRead}).CanSee("anything/at/all") {
		t.Error("an unscoped principal must see every repository")
	}
	if apiauth.FromContext(t.Context()).CanSee("x") {
		t.Error("a request that went through no middleware must see nothing")
	}
	if !apiauth.MatchRepository("team-a/**", "team-a/x/y") || apiauth.MatchRepository("team-a/**", "team-ab/x") {
		t.Error("MatchRepository with /**")
	}
}

func TestSwitch(t *testing.T) {
	for v, want := range map[string]bool{"": false, "on": false, "off": true, "OFF": true, " Off ": true} {
		off, err := apiauth.Switch("CUSTOMS_X", v)
		if err != nil || off != want {
			t.Errorf("Switch(%q) = %v, %v; want %v", v, off, err, want)
		}
	}
	if _, err := apiauth.Switch("CUSTOMS_X", "false"); err == nil || !strings.Contains(err.Error(), "CUSTOMS_X") {
		t.Errorf("Switch(false): %v", err)
	}
}

func TestLoginAndSession(t *testing.T) {
	a, err := apiauth.New(apiauth.Config{AdminToken: "s3cret-admin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Login("wrong"); err == nil {
		t.Fatal("Login accepted a wrong token")
	}
	if _, _, err := a.Login(""); err == nil {
		t.Fatal("Login accepted an empty token")
	}
	p, fp, err := a.Login("s3cret-admin")
	if err != nil || p.Name != "admin-token" || p.Role != apiauth.RoleAdmin || strings.Contains(fp, "s3cret") {
		t.Fatalf("Login = %+v, %q, %v", p, fp, err)
	}
	if got, ok := a.Session(p.Name, fp); !ok || got.Role != apiauth.RoleAdmin {
		t.Fatalf("Session = %+v, %v", got, ok)
	}
	// The same name with another token (rotated): the session ends.
	b, err := apiauth.New(apiauth.Config{AdminToken: "rotated-admin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Session(p.Name, fp); ok {
		t.Fatal("a session outlived its token")
	}
}

func TestMiddlewareTakesACallerAuthenticatedInProcess(t *testing.T) {
	a, err := apiauth.New(apiauth.Config{AdminToken: "s3cret-admin"})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Middleware(apiauth.RoleAdmin)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(apiauth.FromContext(r.Context()).Name))
	}))
	for _, c := range []struct {
		p    *apiauth.Principal
		code int
	}{
		{nil, http.StatusUnauthorized},
		{&apiauth.Principal{Name: "web-admin", Role: apiauth.RoleAdmin}, http.StatusOK},
		{&apiauth.Principal{Name: "web-reader", Role: apiauth.RoleRead}, http.StatusForbidden},
	} {
		req := httptest.NewRequest(http.MethodGet, "/v1/x", nil)
		if c.p != nil {
			req = req.WithContext(apiauth.WithAuthenticated(req.Context(), *c.p))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.code {
			t.Errorf("%+v: %d; want %d", c.p, rec.Code, c.code)
		}
	}
}
