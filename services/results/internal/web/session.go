package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Sessions are signed cookies, not server-side state: any results
// replica holding the same key accepts them. The cookie holds the token's
// name and a fingerprint of its hash (never the token), an expiry and a
// random nonce, signed with HMAC-SHA256. Each request looks the token up
// again (apiauth.Session), so a token removed from the tokens file, or
// rotated under the same name, ends its sessions at the next restart that
// loads the new file. Logging out deletes the cookie from the browser; a
// copy taken before stays valid until it expires (sessionTTL).
//
// Every form (login, logout, release) carries a CSRF token bound to the
// session: HMAC(key, nonce). A browser without a session gets an
// anonymous one (no name) when it first sees a form.
const (
	sessionCookie = "customs_session"
	sessionTTL    = 12 * time.Hour
	// maxFormBytes bounds what a form post may send.
	maxFormBytes = 64 << 10
)

// session is the signed content of the cookie.
type session struct {
	Name        string `json:"n,omitempty"`
	Fingerprint string `json:"f,omitempty"`
	Expires     int64  `json:"x"`
	Nonce       string `json:"s"`
}

type sessions struct {
	key []byte
	now func() time.Time
}

// newSessions derives the cookie key from secret (the report signing
// key, so replicas agree) or makes a random one.
func newSessions(secret string, now func() time.Time) *sessions {
	key := make([]byte, 32)
	if secret == "" {
		_, _ = rand.Read(key) // never fails (crypto/rand panics instead)
	} else {
		// A key of its own: a session cookie can never pass as a signed
		// report event or the reverse.
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte("customs web sessions v1"))
		key = m.Sum(nil)
	}
	return &sessions{key: key, now: now}
}

func (s *sessions) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// encode is the cookie value: payload.signature, both base64url.
func (s *sessions) encode(v session) string {
	body, _ := json.Marshal(v) // strings and an int: cannot fail
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac("session", payload))
}

// read returns r's session when its cookie is present, signed by this
// key and not expired.
func (s *sessions) read(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	payload, sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return session{}, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("session", payload)) {
		return session{}, false
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return session{}, false
	}
	var v session
	if err := json.Unmarshal(body, &v); err != nil || v.Nonce == "" || s.now().Unix() >= v.Expires {
		return session{}, false
	}
	return v, true
}

// start sets a new session cookie (a fresh nonce: a login never keeps
// the pre-login session's CSRF token).
func (s *sessions) start(w http.ResponseWriter, r *http.Request, name, fingerprint string) session {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	v := session{Name: name, Fingerprint: fingerprint, Expires: s.now().Add(sessionTTL).Unix(),
		Nonce: base64.RawURLEncoding.EncodeToString(nonce)}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.encode(v), Path: "/", MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, Secure: isHTTPS(r), SameSite: http.SameSiteStrictMode,
	})
	return v
}

// end deletes the cookie.
func (s *sessions) end(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: isHTTPS(r), SameSite: http.SameSiteStrictMode})
}

// ensure returns r's session, starting an anonymous one when there is
// none (a form needs a CSRF token before anyone logs in).
func (s *sessions) ensure(w http.ResponseWriter, r *http.Request) session {
	if v, ok := s.read(r); ok {
		return v
	}
	return s.start(w, r, "", "")
}

func (s *sessions) csrfToken(v session) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf", v.Nonce))
}

// checkForm parses a posted form and checks that it comes from this
// site's pages: the request is same-origin (when the browser says), and
// its csrf field is the session's token. It returns the session.
func (s *sessions) checkForm(w http.ResponseWriter, r *http.Request) (session, bool) {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return session{}, false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return session{}, false
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return session{}, false
	}
	v, ok := s.read(r)
	if !ok {
		return session{}, false
	}
	want := s.csrfToken(v)
	got := r.PostForm.Get("csrf")
	return v, subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// isHTTPS: the request reached us, or the proxy in front of us, over
// TLS. X-Forwarded-Proto can only make the cookie stricter, so trusting
// it is harmless.
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// loginPage is the body of the login template.
type loginPage struct {
	Next    string
	Error   string
	Ended   bool
	Already string
	Open    bool
}

// safeNext keeps a post-login redirect on this site: a path, never
// "//host" or a scheme.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

func (h *handler) loginForm(w http.ResponseWriter, r *http.Request) {
	_, cookieErr := r.Cookie(sessionCookie)
	_, valid := h.sessions.read(r)
	v := h.sessions.ensure(w, r)
	data := h.frame(r, "Log in")
	data.CSRF = h.sessions.csrfToken(v)
	body := loginPage{Next: safeNext(r.URL.Query().Get("next")), Open: h.d.Auth.Anonymous() != "",
		Ended: cookieErr == nil && !valid}
	if data.Viewer.LoggedIn {
		body.Already = data.Viewer.Name
	}
	data.Login = false
	data.Body = body
	h.render(w, r, http.StatusOK, "login", data)
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.sessions.checkForm(w, r); !ok {
		h.fail(w, r, http.StatusForbidden, "The form expired or did not come from this site. Open the login page again.")
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	p, fp, err := h.d.Auth.Login(strings.TrimSpace(r.PostForm.Get("token")))
	if err != nil {
		h.d.Log.Info().Str("remote", r.RemoteAddr).Msg("web login refused")
		v, _ := h.sessions.read(r)
		data := h.frame(r, "Log in")
		data.CSRF = h.sessions.csrfToken(v)
		data.Login = false
		data.Body = loginPage{Next: next, Error: "That token is not accepted.", Open: h.d.Auth.Anonymous() != ""}
		h.render(w, r, http.StatusUnauthorized, "login", data)
		return
	}
	h.sessions.start(w, r, p.Name, fp)
	h.d.Log.Info().Str("token", p.Name).Str("role", string(p.Role)).Msg("web login")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *handler) logoutForm(w http.ResponseWriter, r *http.Request) {
	v := h.sessions.ensure(w, r)
	data := h.frame(r, "Log out")
	data.CSRF = h.sessions.csrfToken(v)
	h.render(w, r, http.StatusOK, "logout", data)
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.sessions.checkForm(w, r); !ok {
		h.fail(w, r, http.StatusForbidden, "The form expired or did not come from this site.")
		return
	}
	h.sessions.end(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// urlQueryEscape escapes a value for a query string.
func urlQueryEscape(s string) string { return url.QueryEscape(s) }
