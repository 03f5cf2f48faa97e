package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func cookieOf(t *testing.T, rec *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	t.Fatal("no session cookie set")
	return nil
}

func TestSessionCookiesAreSignedAndExpire(t *testing.T) {
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	s := newSessions("a-signing-key-of-at-least-32-bytes!!", func() time.Time { return now })
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "https://customs.example/login", nil)
	s.start(rec, req, "ops", "fp")
	c := cookieOf(t, rec)
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Errorf("cookie attributes: %+v", c)
	}
	read := func(value string) (session, bool) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: value})
		return s.read(r)
	}
	if v, ok := read(c.Value); !ok || v.Name != "ops" || v.Fingerprint != "fp" {
		t.Fatalf("read back: %+v, %v", v, ok)
	}
	payload, sig, _ := strings.Cut(c.Value, ".")
	forged := s.encode(session{Name: "ops", Fingerprint: "fp", Expires: now.Add(time.Hour).Unix(), Nonce: "n"})
	other := newSessions("another-signing-key-of-32-bytes-at-least", s.now)
	for name, v := range map[string]string{
		"tampered payload": strings.ToUpper(payload[:1]) + payload[1:] + "." + sig,
		"no signature":     payload,
		"other key":        other.encode(session{Name: "ops", Fingerprint: "fp", Expires: now.Add(time.Hour).Unix(), Nonce: "n"}),
	} {
		if _, ok := read(v); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, ok := read(forged); !ok {
		t.Error("a cookie signed with the key is refused")
	}
	now = now.Add(sessionTTL)
	if _, ok := read(c.Value); ok {
		t.Error("an expired session is accepted")
	}
	// Plain HTTP: not Secure (the browser would drop it).
	rec = httptest.NewRecorder()
	s.start(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8082/login", nil), "", "")
	if cookieOf(t, rec).Secure {
		t.Error("Secure cookie over plain HTTP")
	}
}

func TestCSRFTokensAreBoundToTheSession(t *testing.T) {
	s := newSessions("", time.Now)
	a, b := session{Nonce: "one"}, session{Nonce: "two"}
	if s.csrfToken(a) == s.csrfToken(b) || s.csrfToken(a) != s.csrfToken(session{Nonce: "one", Name: "x"}) {
		t.Fatal("CSRF tokens must follow the session nonce")
	}
}

func TestSafeNextStaysOnSite(t *testing.T) {
	for in, want := range map[string]string{
		"/images/sha256:ab?severity=HIGH": "/images/sha256:ab?severity=HIGH",
		"":                                "/",
		"//evil.example/":                 "/",
		"/\\evil.example":                 "/",
		"https://evil.example/":           "/",
		"javascript:alert(1)":             "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestAcceptsHTML(t *testing.T) {
	for accept, want := range map[string]bool{
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": true,
		"application/json": false,
		"*/*":              false,
		"":                 false,
		"TEXT/HTML; q=1":   true,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept", accept)
		if got := acceptsHTML(r); got != want {
			t.Errorf("acceptsHTML(%q) = %v", accept, got)
		}
	}
}
