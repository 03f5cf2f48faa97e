// Package web is the results service's web interface: server-rendered
// pages (html/template, assets embedded, no script) over the same store,
// tokens and quarantine controller as the report API.
//
//	/                           repositories, quarantined images, database and queue state
//	/repositories/{repository}  a repository's images, newest push first
//	/images/{digest}            an image's report: verdict, quarantine, vulnerabilities,
//	                            findings, layers, packages, what is new
//	/login, /logout             a browser session for an API token
//
// Pages need the read role, releasing an image the admin role; a token
// scoped to some repositories gets 404 for the others, as the API does.
// Browsers log in with an API token and get a signed session cookie (see
// session.go); the cookie also authenticates the API's GET routes, so the
// report downloads linked from a page work in the browser.
package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/vulndb"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/results/internal/reportstore"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Deps is what the pages read and act through: the results service's own
// store, tokens and quarantine controller.
type Deps struct {
	Store *reportstore.Store
	Auth  *apiauth.Authenticator
	// Quarantine is nil when CUSTOMS_QUARANTINE=off; its records bucket
	// is bound once the service serves (KV nil before).
	Quarantine     *quarantine.Controller
	QuarantineMode string
	// DB is the vulnerability database results holds (nil: none yet).
	DB func() *vulndb.DB
	// JetStream reads the scanner consumer's backlog for the overview.
	JetStream jetstream.JetStream
	// NewSince finds the image a report replaces and what is new since
	// (alerts.Publisher.NewSince: the page shows what the alert said).
	NewSince func(ctx context.Context, r *report.Report) (*report.Report, []*customsv1.AlertItem, error)
	// SessionKey derives the key that signs session cookies (the report
	// signing key, shared by every results replica); empty: a random key,
	// so sessions end at restart and hold on one replica only.
	SessionKey string
	Log        zerolog.Logger
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// handler serves the pages.
type handler struct {
	d        Deps
	pages    map[string]*template.Template
	sessions *sessions
	static   http.Handler
}

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// repositoryRE is the OCI repository name grammar (as reportapi's): a
// scoped caller cannot stretch a pattern with "team-a/..".
var repositoryRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

// Mount adds the pages to router and returns the service's handler:
// router wrapped so that a browser opening an alert's link to
// /v1/reports/{digest} is sent to /images/{digest}, and a browser session
// authenticates the API's GET routes (see apiHandler).
func Mount(router chi.Router, d Deps) http.Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	h := &handler{d: d, pages: parsePages()}
	h.sessions = newSessions(d.SessionKey, d.Now)
	if d.SessionKey == "" {
		d.Log.Info().Msg("web sessions are signed with a random key: they end when results restarts and hold on this replica only")
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		panic(fmt.Sprintf("web: embedded assets: %v", err)) // the embed pattern guarantees the directory
	}
	h.static = http.StripPrefix("/static/", http.FileServerFS(static))
	router.Group(func(r chi.Router) {
		r.Use(securityHeaders)
		r.Get("/static/*", h.serveStatic)
		r.Get("/login", h.loginForm)
		r.Post("/login", h.login)
		r.Get("/logout", h.logoutForm)
		r.Post("/logout", h.logout)
		r.Get("/", h.withReader(h.overview))
		r.Get("/repositories/*", h.withReader(h.repository))
		r.Get("/images/{digest}", h.withReader(h.image))
		r.Post("/images/{digest}/release", h.release)
	})
	return h.apiHandler(router)
}

// parsePages builds one template set per page: the layout plus the page.
func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"short":    shortDigest,
		"sevclass": func(s string) string { return "sev-" + strings.ToLower(reportstore.SeverityOf(s)) },
		"sevname":  reportstore.SeverityOf,
		"when":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"size":     humanSize,
		"join":     strings.Join,
		"osv":      osvURL,
		"add":      func(a, b uint64) uint64 { return a + b },
		"pagerNav": func(label string, p pager) pagerView { return pagerView{Label: label, P: p} },
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"overview", "repository", "image", "login", "logout", "error", "reload"} {
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/partials.html", "templates/"+name+".html"))
		pages[name] = t
	}
	return pages
}

// securityHeaders: pages carry report data (private), load nothing from
// elsewhere and run no script.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

func (h *handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	h.static.ServeHTTP(w, r)
}

// pagerView is a pager with the label of its navigation landmark.
type pagerView struct {
	Label string
	P     pager
}

// viewer is who a page is shown to.
type viewer struct {
	Name string
	Role apiauth.Role
	// LoggedIn: a session (Log out is offered); else a token in the
	// request or anonymous reads.
	LoggedIn bool
	Admin    bool
}

// pageData is what the layout renders around a page's Body.
type pageData struct {
	Title  string
	Viewer viewer
	// CSRF is the session's form token ("" without a session).
	CSRF string
	// Login offers the login form (anonymous readers may log in to act).
	Login bool
	// Refresh reloads the page at this same-site URL (see withReader).
	Refresh string
	Body    any
}

// render writes a page whole, or a 500 when its template fails: a half
// page is worse than an error.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data pageData) {
	var buf bytes.Buffer
	if err := h.pages[name].Execute(&buf, data); err != nil {
		h.d.Log.Error().Err(err).Str("page", name).Str("path", r.URL.Path).Msg("page render failed")
		http.Error(w, "page render failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage is the body of the error template.
type errorPage struct {
	Status  int
	Heading string
	Message string
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, message string) {
	data := h.frame(r, http.StatusText(status))
	data.Body = errorPage{Status: status, Heading: http.StatusText(status), Message: message}
	h.render(w, r, status, "error", data)
}

// notFound is every "no such thing" answer, including things a scoped
// token may not see: the two must look the same.
func (h *handler) notFound(w http.ResponseWriter, r *http.Request, what string) {
	h.fail(w, r, http.StatusNotFound, "There is no "+what+", or it is not visible to you.")
}

// unavailable answers a storage or NATS failure.
func (h *handler) unavailable(w http.ResponseWriter, r *http.Request, err error, what string) {
	h.d.Log.Error().Err(err).Str("path", r.URL.Path).Str("reading", what).Msg("page data unavailable")
	h.fail(w, r, http.StatusServiceUnavailable, "The "+what+" cannot be read right now; try again shortly.")
}

type principalKey struct{}

// withReader admits callers with the read role. Anyone else is sent to
// the login form (a browser that followed a link from another site first
// gets one same-site reload: SameSite=Strict cookies are not sent on
// cross-site navigations).
func (h *handler) withReader(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := h.principal(r)
		if ok && p.Role.Allows(apiauth.RoleRead) {
			next(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
			return
		}
		if r.Header.Get("Authorization") != "" {
			h.fail(w, r, http.StatusUnauthorized, "The token in the Authorization header is not accepted.")
			return
		}
		if _, err := r.Cookie(sessionCookie); errors.Is(err, http.ErrNoCookie) && r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			h.render(w, r, http.StatusOK, "reload", pageData{Title: "Opening…", Refresh: r.URL.RequestURI(), Body: r.URL.RequestURI()})
			return
		}
		http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	}
}

// principalOf is the caller withReader admitted.
func principalOf(r *http.Request) apiauth.Principal {
	p, _ := r.Context().Value(principalKey{}).(apiauth.Principal)
	return p
}

// principal says who r comes from: a bearer token when the request
// carries one (curl against the pages), else the browser session, else
// the anonymous role (reads open on loopback, or authentication off).
// ok is false when none of them admits the caller.
func (h *handler) principal(r *http.Request) (apiauth.Principal, bool) {
	if r.Header.Get("Authorization") != "" {
		p, err := h.d.Auth.Authenticate(r)
		return p, err == nil
	}
	if p, ok := h.sessionPrincipal(r); ok {
		return p, true
	}
	anon := h.d.Auth.Anonymous()
	return apiauth.Principal{Role: anon}, anon != ""
}

// sessionPrincipal is the token a logged-in session stands for.
func (h *handler) sessionPrincipal(r *http.Request) (apiauth.Principal, bool) {
	s, ok := h.sessions.read(r)
	if !ok || s.Name == "" {
		return apiauth.Principal{}, false
	}
	return h.d.Auth.Session(s.Name, s.Fingerprint)
}

// frame is the page data every page starts from.
func (h *handler) frame(r *http.Request, title string) pageData {
	data := pageData{Title: title}
	if s, ok := h.sessions.read(r); ok {
		data.CSRF = h.sessions.csrfToken(s)
		if p, ok := h.d.Auth.Session(s.Name, s.Fingerprint); ok && s.Name != "" {
			data.Viewer = viewer{Name: p.Name, Role: p.Role, LoggedIn: true, Admin: p.Role.Allows(apiauth.RoleAdmin)}
			return data
		}
	}
	if p, ok := r.Context().Value(principalKey{}).(apiauth.Principal); ok {
		data.Viewer = viewer{Name: p.Name, Role: p.Role, Admin: p.Role.Allows(apiauth.RoleAdmin)}
	}
	// Logging in is worth offering when there are tokens to log in with.
	data.Login = h.d.Auth.Tokens() > 0
	return data
}

// apiHandler wraps the service's router for browsers: an alert's link to
// /v1/reports/{digest} opened in a browser (Accept: text/html, no bearer
// token, not a download from these pages) is redirected to the report
// page; a logged-in session authenticates the API's GET routes (reads
// only: a session never makes an API write, so the API needs no CSRF
// token).
func (h *handler) apiHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") || r.Header.Get("Authorization") != "" ||
			r.Method != http.MethodGet && r.Method != http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		if d, ok := strings.CutPrefix(r.URL.Path, "/v1/reports/"); ok && digestRE.MatchString(d) &&
			!r.URL.Query().Has("format") && acceptsHTML(r) && r.Header.Get("Sec-Fetch-Site") != "same-origin" {
			http.Redirect(w, r, "/images/"+d, http.StatusSeeOther)
			return
		}
		if p, ok := h.sessionPrincipal(r); ok {
			r = r.WithContext(apiauth.WithAuthenticated(r.Context(), p))
		}
		next.ServeHTTP(w, r)
	})
}

// acceptsHTML reports whether r asks for HTML explicitly (browsers do;
// curl's */* and API clients' application/json do not).
func acceptsHTML(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(mt, "text/html") {
			return true
		}
	}
	return false
}
