package web_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/customs-scan/customs/services/results"
)

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// browser is an HTTP client with a cookie jar that does not follow
// redirects: what a browser session sends, checkable step by step.
type browser struct {
	t    *testing.T
	e    *env
	c    *http.Client
	csrf string
}

func newBrowser(t *testing.T, e *env) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values, headers ...string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.url+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindStringSubmatch(string(out)); m != nil {
		b.csrf = m[1]
	}
	return resp, string(out)
}

// login opens the login form and posts token; it returns the status.
func (b *browser) login(token string) int {
	b.t.Helper()
	if resp, body := b.do(http.MethodGet, "/login", nil); resp.StatusCode != http.StatusOK || b.csrf == "" {
		b.t.Fatalf("GET /login: %d %s", resp.StatusCode, body)
	}
	resp, _ := b.do(http.MethodPost, "/login", url.Values{"csrf": {b.csrf}, "token": {token}, "next": {"/"}})
	return resp.StatusCode
}

// Pages and the API share tokens and visibility rules; forms need a
// session's CSRF token; the release needs the admin role.
func TestAccessControl(t *testing.T) {
	e := start(t, results.Config{APITokensFile: writeTokens(t), Quarantine: "enforce"})
	f := e.seed(t)
	bad := f.malicious.Artifact.Digest

	t.Run("API", func(t *testing.T) {
		for _, c := range []struct {
			method, path, token string
			code                int
		}{
			{"GET", "/v1/reports/" + bad, "", 401},
			{"GET", "/v1/reports/" + bad, "wrong-token", 401},
			{"GET", "/v1/reports/" + bad, readerToken, 200},
			{"POST", "/v1/quarantine/" + bad + "/release", readerToken, 403},
			{"GET", "/v1/reports/" + bad, teamBToken, 404},
			{"GET", "/v1/reports?repository=team-a/app", teamBToken, 404},
			{"GET", "/v1/reports/" + f.index.Artifact.Digest, teamBToken, 200},
		} {
			resp, body := e.call(t, c.method, c.path, c.token, strings.NewReader(`{"reason":"x"}`))
			if resp.StatusCode != c.code {
				t.Errorf("%s %s with %q: %d %s; want %d", c.method, c.path, c.token, resp.StatusCode, body, c.code)
			}
		}
	})

	t.Run("pages", func(t *testing.T) {
		resp, _ := e.call(t, "GET", "/images/"+bad, "", nil)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=") {
			t.Errorf("page without a token: %d %q; want a redirect to the login form", resp.StatusCode, loc)
		}
		resp, _ = e.call(t, "GET", "/images/"+bad, "", nil, "Sec-Fetch-Site", "cross-site")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("cross-site navigation without a cookie: %d; want the same-site reload page", resp.StatusCode)
		}
		if resp, _ := e.call(t, "GET", "/", "wrong-token", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("page with a wrong token: %d; want 401", resp.StatusCode)
		}
		for _, c := range []struct {
			path, token string
			code        int
			has         string
		}{
			{"/", readerToken, 200, "team-a/app"},
			{"/images/" + bad, readerToken, 200, "XMRig cryptominer"},
			{"/repositories/team-a/app", readerToken, 200, short(bad)},
			// Scoped: team-a's image and repository are missing, not forbidden.
			{"/images/" + bad, teamBToken, 404, "not visible to you"},
			{"/repositories/team-a/app", teamBToken, 404, "not visible to you"},
			{"/?q=" + bad, teamBToken, 200, "No image has the digest"},
			{"/images/" + f.index.Artifact.Digest, teamBToken, 200, "linux/arm64"},
			{"/images/sha256:" + strings.Repeat("0", 64), readerToken, 404, "There is no"},
			{"/repositories/no/such/repo", readerToken, 404, "There is no"},
		} {
			resp, body := e.call(t, "GET", c.path, c.token, nil)
			if resp.StatusCode != c.code || !strings.Contains(body, c.has) {
				t.Errorf("GET %s with %s: %d; want %d with %q", c.path, c.token, resp.StatusCode, c.code, c.has)
			}
		}
		// A scoped token's overview lists its own team only.
		_, body := e.call(t, "GET", "/", teamBToken, nil)
		if strings.Contains(body, "team-a/") || !strings.Contains(body, "team-b/multi") {
			t.Errorf("team-b's overview shows other teams or misses its own")
		}
	})

	t.Run("alert links", func(t *testing.T) {
		resp, _ := e.call(t, "GET", "/v1/reports/"+bad, "", nil, "Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/images/"+bad {
			t.Errorf("browser opening an alert's link: %d %q; want a redirect to the page", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, _ = e.call(t, "GET", "/v1/reports/"+bad, "", nil, "Accept", "application/json")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("API client without a token: %d; want 401", resp.StatusCode)
		}
		resp, _ = e.call(t, "GET", "/v1/reports/"+bad, readerToken, nil, "Accept", "text/html")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("a token in the request: %d; want the JSON", resp.StatusCode)
		}
	})

	t.Run("sessions and release", func(t *testing.T) {
		b := newBrowser(t, e)
		if code := b.login("not-a-token"); code != http.StatusUnauthorized {
			t.Errorf("login with a wrong token: %d; want 401", code)
		}
		// A form without the session's CSRF token is refused.
		if resp, _ := b.do("POST", "/login", url.Values{"token": {readerToken}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("login without CSRF token: %d; want 403", resp.StatusCode)
		}
		if code := b.login(readerToken); code != http.StatusSeeOther {
			t.Fatalf("reader login: %d", code)
		}
		var session *http.Cookie
		for _, c := range b.c.Jar.Cookies(mustURL(t, e.url)) {
			if c.Name == "customs_session" {
				session = c
			}
		}
		if session == nil || strings.Contains(session.Value, readerToken) {
			t.Fatalf("session cookie: %+v", session)
		}
		resp, body := b.do("GET", "/images/"+bad, nil)
		if resp.StatusCode != http.StatusOK || strings.Contains(body, "Release image") {
			t.Errorf("reader's image page: %d, release button shown: %v", resp.StatusCode, strings.Contains(body, "Release image"))
		}
		// The session authenticates the API's reads (downloads).
		if resp, _ := b.do("GET", "/v1/reports/"+bad, nil, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusOK {
			t.Errorf("report download with a reader session: %d; want 200", resp.StatusCode)
		}
		release := url.Values{"csrf": {b.csrf}, "registry": {registry}, "repository": {"team-a/app"}, "reason": {"false positive"}}
		if resp, _ := b.do("POST", "/images/"+bad+"/release", release); resp.StatusCode != http.StatusForbidden {
			t.Errorf("release by a reader: %d; want 403", resp.StatusCode)
		}

		admin := newBrowser(t, e)
		if code := admin.login(adminToken); code != http.StatusSeeOther {
			t.Fatalf("admin login: %d", code)
		}
		if _, body := admin.do("GET", "/images/"+bad, nil); !strings.Contains(body, "Release image") {
			t.Fatal("admin's image page has no release button")
		}
		release.Set("csrf", "forged")
		if resp, _ := admin.do("POST", "/images/"+bad+"/release", release); resp.StatusCode != http.StatusForbidden {
			t.Errorf("release with a wrong CSRF token: %d; want 403", resp.StatusCode)
		}
		release.Set("csrf", admin.csrf)
		if resp, _ := admin.do("POST", "/images/"+bad+"/release", release, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site release: %d; want 403", resp.StatusCode)
		}
		release.Set("reason", " ")
		if resp, _ := admin.do("POST", "/images/"+bad+"/release", release); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("release without a reason: %d; want 400", resp.StatusCode)
		}
		release.Set("reason", "false positive: the miner is a test fixture")
		resp, _ = admin.do("POST", "/images/"+bad+"/release", release)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("release: %d", resp.StatusCode)
		}
		e.waitFor(t, "/v1/quarantine/"+bad, func(code int, body string) bool {
			return code == 200 && strings.Contains(body, `"state": "released"`) && strings.Contains(body, `"released_by": "ops"`)
		})
		// Logging out ends the session in this browser.
		if resp, _ := admin.do("POST", "/logout", url.Values{"csrf": {admin.csrf}}); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("logout: %d", resp.StatusCode)
		}
		if resp, _ := admin.do("GET", "/", nil); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("overview after logout: %d; want a redirect to the login form", resp.StatusCode)
		}
	})
}

// Customs up on loopback: reads open, the login form lets an admin in to
// release.
func TestOpenReadsStillLogInToRelease(t *testing.T) {
	e := start(t, results.Config{AdminToken: adminToken, AnonymousReads: true, Quarantine: "enforce"})
	f := e.seed(t)
	bad := f.malicious.Artifact.Digest
	anon := newBrowser(t, e)
	resp, body := anon.do("GET", "/images/"+bad, nil)
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "Release image") || !strings.Contains(body, `href="/login"`) {
		t.Fatalf("anonymous image page: %d, release shown %v, login offered %v", resp.StatusCode,
			strings.Contains(body, "Release image"), strings.Contains(body, `href="/login"`))
	}
	if resp, _ := anon.do("POST", "/images/"+bad+"/release", url.Values{"csrf": {anon.csrf}, "reason": {"x"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous release: %d; want 403", resp.StatusCode)
	}
	if code := anon.login(adminToken); code != http.StatusSeeOther {
		t.Fatalf("admin login: %d", code)
	}
	if _, body := anon.do("GET", "/images/"+bad, nil); !strings.Contains(body, "Release image") {
		t.Fatal("admin has no release button")
	}
}

func short(d string) string { return strings.TrimPrefix(d, "sha256:")[:12] }

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
