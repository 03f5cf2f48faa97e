// Package apiauth authenticates HTTP API callers by bearer token.
//
// Tokens are named, carry a role (read or admin) and optionally a list of
// repository patterns the token may see. They come from a YAML file that
// stores only their SHA-256 (see Load) and/or from one plain admin token
// given in the environment. A request presents one as
// "Authorization: Bearer <token>" (the scheme is case-insensitive):
//
//	auth, err := apiauth.New(apiauth.Config{TokensFile: path})
//	r.With(auth.Middleware(apiauth.RoleRead)).Get("/v1/reports/{digest}", h)
//
// Handlers then ask FromContext(ctx).CanSee(repository) and answer 404 for
// a repository outside the token's scope, so names don't leak.
package apiauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/customs-scan/customs/pkg/httpx"
)

// Role is what a token may do. Admin includes read.
type Role string

// The roles.
const (
	RoleRead  Role = "read"
	RoleAdmin Role = "admin"
)

// Allows reports whether a caller with role r may use a route that needs need.
func (r Role) Allows(need Role) bool {
	switch r {
	case RoleAdmin:
		return need == RoleAdmin || need == RoleRead
	case RoleRead:
		return need == RoleRead
	}
	return false
}

func parseRole(s string) (Role, error) {
	switch Role(strings.ToLower(strings.TrimSpace(s))) {
	case RoleRead:
		return RoleRead, nil
	case RoleAdmin:
		return RoleAdmin, nil
	}
	return "", fmt.Errorf("role %q: want read or admin", s)
}

// Token is one accepted token, known only by its hash.
type Token struct {
	Name string
	Role Role
	// Repositories limits what the token sees (nil: every repository); see
	// MatchRepository for the pattern syntax.
	Repositories []string
	hash         [sha256.Size]byte
}

// Hash is the SHA-256 hex of a token, as the tokens file stores it.
func Hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Principal is who made a request.
type Principal struct {
	// Name is the token's name; empty for a caller without a token.
	Name string
	Role Role
	// Repositories as in Token; nil: every repository.
	Repositories []string
}

// Anonymous reports whether the caller presented no token.
func (p Principal) Anonymous() bool { return p.Name == "" }

// Scoped reports whether the caller sees only some repositories.
func (p Principal) Scoped() bool { return p.Repositories != nil }

// CanSee reports whether the caller may see repository's reports.
func (p Principal) CanSee(repository string) bool {
	if p.Repositories == nil {
		return true
	}
	for _, pat := range p.Repositories {
		if MatchRepository(pat, repository) {
			return true
		}
	}
	return false
}

// MatchRepository matches a repository name against a scope pattern:
// path.Match syntax, where * does not cross a "/" ("team-a/*" is
// team-a/app but not team-a/tools/app), plus a trailing "/**" for
// everything below a prefix ("team-a/**").
func MatchRepository(pattern, repository string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/**"); ok {
		// The prefix may hold wildcards too: match it against as many
		// leading segments, and require at least one more.
		n := strings.Count(prefix, "/") + 1
		parts := strings.SplitN(repository, "/", n+1)
		if len(parts) <= n {
			return false
		}
		ok, _ := path.Match(prefix, strings.Join(parts[:n], "/"))
		return ok
	}
	ok, _ := path.Match(pattern, repository)
	return ok
}

func validPattern(p string) error {
	if strings.TrimSpace(p) == "" {
		return errors.New("empty repository pattern")
	}
	base := strings.TrimSuffix(p, "/**")
	if strings.Contains(base, "**") {
		return fmt.Errorf("repository pattern %q: ** is allowed only as a trailing /**", p)
	}
	if _, err := path.Match(base, ""); err != nil {
		return fmt.Errorf("repository pattern %q: %w", p, err)
	}
	return nil
}

// Config says where tokens come from and what a caller without one may do.
type Config struct {
	// TokensFile is a YAML file of hashed tokens (see Load).
	TokensFile string
	// AdminToken is one more token, given in plain, with the admin role
	// (named "admin-token").
	AdminToken string
	// Anonymous is the role of a request without a token: "" (none: 401),
	// RoleRead (reads open, e.g. `customs up` on loopback) or RoleAdmin
	// (authentication off). With no tokens configured it must be set.
	Anonymous Role
}

// Authenticator checks requests against the configured tokens.
type Authenticator struct {
	tokens    []Token
	anonymous Role
}

// ErrNoTokens is returned by New when nothing would let a caller in.
var ErrNoTokens = errors.New("no API tokens configured")

// New loads the tokens. It fails when there are none and anonymous callers
// get no role: an API nobody can use is a configuration mistake.
func New(cfg Config) (*Authenticator, error) {
	a := &Authenticator{anonymous: cfg.Anonymous}
	switch cfg.Anonymous {
	case "", RoleRead, RoleAdmin:
	default:
		return nil, fmt.Errorf("anonymous role %q: want read, admin or none", cfg.Anonymous)
	}
	if cfg.TokensFile != "" {
		toks, err := Load(cfg.TokensFile)
		if err != nil {
			return nil, err
		}
		a.tokens = toks
	}
	if cfg.AdminToken != "" {
		if strings.TrimSpace(cfg.AdminToken) != cfg.AdminToken {
			return nil, errors.New("admin token has leading or trailing white space")
		}
		t := Token{Name: "admin-token", Role: RoleAdmin, hash: sha256.Sum256([]byte(cfg.AdminToken))}
		for _, o := range a.tokens {
			if o.hash == t.hash {
				return nil, fmt.Errorf("admin token is also token %q of the tokens file", o.Name)
			}
		}
		a.tokens = append(a.tokens, t)
	}
	if len(a.tokens) == 0 && a.anonymous == "" {
		return nil, ErrNoTokens
	}
	return a, nil
}

// Tokens is how many tokens are accepted.
func (a *Authenticator) Tokens() int { return len(a.tokens) }

// Anonymous is the role of a caller without a token ("" none).
func (a *Authenticator) Anonymous() Role { return a.anonymous }

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive (RFC 7235).
func BearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}

// Errors of Authenticate.
var (
	ErrNoToken  = errors.New("missing bearer token in Authorization header")
	ErrBadToken = errors.New("wrong bearer token")
)

// Authenticate says who made r. Without an Authorization header the caller
// is anonymous (with the configured anonymous role, possibly none); a
// header that is present must carry a known token, unless no tokens are
// configured at all (authentication off or reads open without tokens).
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	anon := Principal{Role: a.anonymous}
	if r.Header.Get("Authorization") == "" || len(a.tokens) == 0 {
		if a.anonymous == "" {
			return anon, ErrNoToken
		}
		return anon, nil
	}
	got, ok := BearerToken(r)
	if !ok {
		return anon, ErrBadToken
	}
	h := sha256.Sum256([]byte(got))
	// Every token is compared, in constant time, so timing says nothing
	// about which (or whether one) matched.
	match := -1
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(h[:], a.tokens[i].hash[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return anon, ErrBadToken
	}
	t := a.tokens[match]
	return Principal{Name: t.Name, Role: t.Role, Repositories: t.Repositories}, nil
}

type ctxKey struct{}

// FromContext returns the caller Middleware put in ctx (the zero
// Principal, which may see nothing, when there is none).
func FromContext(ctx context.Context) Principal {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	if !ok {
		return Principal{Repositories: []string{}}
	}
	return p
}

// WithPrincipal returns ctx carrying p (for handlers tested without Middleware).
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

type authenticatedKey struct{}

// WithAuthenticated returns ctx carrying a caller that an in-process layer
// authenticated another way (the web interface's session cookie, which
// stands for one of these tokens): Middleware takes it instead of looking
// for a bearer token. Context values never come from the network.
func WithAuthenticated(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, authenticatedKey{}, p)
}

// Middleware admits callers whose role allows need: 401 with
// WWW-Authenticate without a valid token, 403 with a valid one of too
// small a role. A caller put in the context by WithAuthenticated is
// judged by its role as a token's would be.
func (a *Authenticator) Middleware(need Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := a.Authenticate(r)
			if outer, ok := r.Context().Value(authenticatedKey{}).(Principal); ok {
				p, err = outer, nil
			}
			switch {
			case errors.Is(err, ErrNoToken):
				w.Header().Set("WWW-Authenticate", `Bearer realm="customs"`)
				httpx.WriteError(w, http.StatusUnauthorized, err.Error())
				return
			case err != nil:
				w.Header().Set("WWW-Authenticate", `Bearer realm="customs", error="invalid_token"`)
				httpx.WriteError(w, http.StatusUnauthorized, err.Error())
				return
			case !p.Role.Allows(need):
				if p.Anonymous() {
					w.Header().Set("WWW-Authenticate", `Bearer realm="customs"`)
					httpx.WriteError(w, http.StatusUnauthorized, "this needs a token with the "+string(need)+" role")
					return
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="customs", error="insufficient_scope"`)
				httpx.WriteError(w, http.StatusForbidden, fmt.Sprintf("token %s has the %s role; this needs %s", p.Name, p.Role, need))
				return
			}
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		})
	}
}

// Switch reads an explicit on/off setting such as CUSTOMS_API_AUTH: unset
// or "on" is on, "off" is off (case-insensitive); anything else is an
// error naming the variable.
func Switch(variable, value string) (off bool, err error) {
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "", "on":
		return false, nil
	case "off":
		return true, nil
	}
	return false, fmt.Errorf("%s=%q: want off (or unset)", variable, value)
}

// Login authenticates a token typed into a login form and returns its
// principal and a fingerprint of the token (derived from its hash, not
// the token) for a session to remember: Session(name, fingerprint) gives
// the principal back for as long as that exact token is accepted.
func (a *Authenticator) Login(token string) (Principal, string, error) {
	h := sha256.Sum256([]byte(token))
	match := -1
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(h[:], a.tokens[i].hash[:]) == 1 {
			match = i
		}
	}
	if token == "" || match < 0 {
		return Principal{}, "", ErrBadToken
	}
	t := a.tokens[match]
	return Principal{Name: t.Name, Role: t.Role, Repositories: t.Repositories}, fingerprint(t.hash), nil
}

// Session returns the principal of the token a session was opened with
// (Login's name and fingerprint); false when no accepted token has that
// name and hash any more (removed, or rotated under the same name), which
// ends the session.
func (a *Authenticator) Session(name, fp string) (Principal, bool) {
	for i := range a.tokens {
		t := &a.tokens[i]
		if t.Name == name && subtle.ConstantTimeCompare([]byte(fingerprint(t.hash)), []byte(fp)) == 1 {
			return Principal{Name: t.Name, Role: t.Role, Repositories: t.Repositories}, true
		}
	}
	return Principal{}, false
}

// fingerprint names a token's hash in sessions without being usable as
// either the token or its hash.
func fingerprint(hash [sha256.Size]byte) string {
	f := sha256.Sum256(append([]byte("customs-session\x00"), hash[:]...))
	return hex.EncodeToString(f[:16])
}
