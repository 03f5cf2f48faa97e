// Package regauth reads the registry credentials file (CUSTOMS_REGISTRY_AUTH)
// and turns it into a go-containerregistry keychain that hands each
// registry host exactly its own credentials.
//
//	f, err := regauth.Load(path)                  // "" → an empty File
//	kc := f.Keychain(regauth.WithFallback(authn.DefaultKeychain))
//	img, err := remote.Image(ref, remote.WithAuthFromKeychain(kc))
//
// Credentials are static (username/password, a registry token, an OAuth2
// identity token) or, for Amazon ECR, an authorization token fetched with
// GetAuthorizationToken through the AWS SDK's default credential chain
// and cached until shortly before it expires.
//
// A host is matched exactly (host[:port], lowercase, ":443" dropped): no
// wildcards, no parent domains. Where go-containerregistry sends what the
// keychain returns is its business and pkg/egress's: Basic credentials
// only to the registry's own host, token realms elsewhere only when
// listed as token hosts.
//
// Secrets never format: Secret prints and marshals as "[redacted]", and
// File and Entry keep every secret in a Secret. Errors name files, keys
// and lines, never values.
package regauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/customs-scan/customs/pkg/egress"
	"github.com/customs-scan/customs/pkg/quarantine"
)

// Registry kinds (the same names pkg/quarantine's enforcers use).
const (
	KindDistribution = quarantine.KindDistribution
	KindHarbor       = quarantine.KindHarbor
	KindECR          = quarantine.KindECR
)

const redacted = "[redacted]"

// Secret is a credential. It formats (every fmt verb), stringifies and
// marshals (JSON, text) as "[redacted]"; Reveal returns the value. The
// value sits behind a pointer so that even reflection-based printing of
// a struct holding a Secret in an unexported field shows an address, not
// the value.
type Secret struct{ v *string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: &s} }

// Reveal returns the secret's value ("" when unset).
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether the secret is unset or empty.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return `regauth.Secret("` + redacted + `")` }

// Format keeps %x, %q, %#v and the rest from printing the value.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = io.WriteString(f, redacted)
}

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText implements encoding.TextMarshaler (zerolog, yaml, maps).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// HarborSettings reach Harbor's management API (labels, rescans) for the
// Harbor enforcer: by default https://<host> with the entry's credentials.
type HarborSettings struct {
	// URL is the API base, e.g. https://harbor.example.com.
	URL      string
	Username string
	Password Secret
}

// ECRSettings say how to get an ECR authorization token.
type ECRSettings struct {
	// Region of the registry (from the hostname unless given).
	Region string
	// RoleARN, when set, is assumed (sts:AssumeRole) with the default
	// credential chain's credentials.
	RoleARN string
	// Endpoint overrides the ECR API endpoint (stand-ins, VPC endpoints).
	Endpoint string
}

// Entry is the credentials of one registry host.
type Entry struct {
	// Host is host[:port], normalised (lowercase, no ":443").
	Host string
	// Username and Password: Basic credentials.
	Username string
	Password Secret
	// Token is a registry token, sent as "Authorization: Bearer <token>".
	Token Secret
	// IdentityToken is an OAuth2 refresh token exchanged at the
	// registry's token realm (docker login's identitytoken).
	IdentityToken Secret
	// Harbor is set for kind harbor.
	Harbor HarborSettings
	// ECR is set for kind ecr. An ECR entry without static credentials
	// gets its credentials from GetAuthorizationToken.
	ECR ECRSettings

	kind string
}

// Kind is the registry kind: distribution, harbor or ecr. Hosts named
// like ECR private registries default to ecr, others to distribution.
func (e Entry) Kind() string {
	if e.kind != "" {
		return e.kind
	}
	if quarantine.IsECRHost(e.Host) {
		return KindECR
	}
	return KindDistribution
}

// usesECRToken: credentials come from GetAuthorizationToken.
func (e Entry) usesECRToken() bool {
	return e.Kind() == KindECR && e.Username == "" && e.Token.IsZero() && e.IdentityToken.IsZero()
}

// authConfig is the entry's static credentials.
func (e Entry) authConfig() authn.AuthConfig {
	return authn.AuthConfig{
		Username: e.Username, Password: e.Password.Reveal(),
		RegistryToken: e.Token.Reveal(), IdentityToken: e.IdentityToken.Reveal(),
	}
}

// File is a loaded credentials file. The zero File and nil hold no
// entries. Safe for concurrent use.
type File struct {
	path    string
	entries map[string]Entry
	ecr     map[string]*ecrSource
	opts    options
}

// String names the file and its hosts (never credentials).
func (f *File) String() string {
	if f == nil {
		return "regauth.File(empty)"
	}
	return fmt.Sprintf("regauth.File(%s: %s)", f.path, strings.Join(f.Hosts(), ", "))
}

// GoString is String: %#v must not walk into the entries.
func (f *File) GoString() string { return f.String() }

// Format keeps every verb on String.
func (f *File) Format(s fmt.State, _ rune) { _, _ = io.WriteString(s, f.String()) }

// Hosts lists the hosts the file has credentials for, sorted.
func (f *File) Hosts() []string {
	if f == nil {
		return nil
	}
	out := make([]string, 0, len(f.entries))
	for h := range f.entries {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// Len is the number of entries.
func (f *File) Len() int {
	if f == nil {
		return 0
	}
	return len(f.entries)
}

// Entry returns the credentials for host (host[:port] as in an image
// reference); an exact match only.
func (f *File) Entry(host string) (Entry, bool) {
	if f == nil {
		return Entry{}, false
	}
	e, ok := f.entries[normalizeHost(host)]
	return e, ok
}

// normalizeHost is egress's host form, with Docker Hub's aliases folded
// onto the name go-containerregistry uses (index.docker.io).
func normalizeHost(h string) string {
	h = egress.NormalizeHost(h)
	switch h {
	case "docker.io", "registry-1.docker.io":
		return "index.docker.io"
	}
	return h
}

// Option configures Load.
type Option func(*options)

type options struct {
	now func() time.Time
	// refreshBefore: a cached ECR token is refreshed once less than this
	// remains (0: half its lifetime, at least 30 minutes).
	refreshBefore time.Duration
}

// WithClock replaces time.Now for token expiry (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithRefreshBefore refreshes a cached ECR token once less than d of its
// lifetime remains. The default is half its lifetime but at least 30
// minutes: a 12-hour token is replaced after 6 hours, so a scan (at most
// CUSTOMS_SCAN_TIMEOUT) never starts on a token about to expire.
func WithRefreshBefore(d time.Duration) Option { return func(o *options) { o.refreshBefore = d } }

// KeychainOption configures Keychain.
type KeychainOption func(*keychain)

// WithFallback consults kc for hosts the file does not name (the scanner
// passes authn.DefaultKeychain: the Docker config and credential
// helpers). A host the file names never reaches kc, even when its
// credentials fail: a failure is an error, not an anonymous pull.
func WithFallback(kc authn.Keychain) KeychainOption {
	return func(k *keychain) { k.fallback = kc }
}

// Keychain resolves the credentials of exactly the registry host of the
// resource (authn.Resource.RegistryStr()); a host not in the file gets
// the fallback's, or none (anonymous). An ECR entry fetches (or reuses) an
// authorization token, and its error is the keychain's error: the pull
// fails with the reason instead of going on anonymously.
func (f *File) Keychain(opts ...KeychainOption) authn.Keychain {
	k := &keychain{f: f}
	for _, o := range opts {
		o(k)
	}
	return k
}

type keychain struct {
	f        *File
	fallback authn.Keychain
}

// Resolve implements authn.Keychain.
func (k *keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain: go-containerregistry
// passes the pull's context, which bounds an ECR token request.
func (k *keychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	e, ok := k.f.Entry(r.RegistryStr())
	if !ok {
		if k.fallback != nil {
			return authn.Resolve(ctx, k.fallback, r)
		}
		return authn.Anonymous, nil
	}
	if !e.usesECRToken() {
		return authn.FromConfig(e.authConfig()), nil
	}
	src := k.f.ecr[e.Host]
	if src == nil {
		return nil, fmt.Errorf("regauth: %s: no ECR token source", e.Host)
	}
	// Fetch now so that a failure fails the pull here, with its reason.
	if _, err := src.token(ctx); err != nil {
		return nil, err
	}
	return &ecrAuthenticator{src: src}, nil
}
