// Package egress decides where Customs may connect when it pulls an image,
// and keeps what it learns there out of reports and logs.
//
// A registry named in a job is untrusted input even when its host is
// allowlisted: it answers with token realms, redirects and foreign-layer
// URLs that name other hosts. go-containerregistry follows them with the
// default HTTP client and only refuses private IP literals, so a realm on
// "localhost" received the registry's credentials and a redirect to an
// internal service ended up in a report. Everything the scanner sends goes
// through a Transport instead:
//
//	p := egress.NewPolicy(egress.WithRegistries("ghcr.io"), egress.WithRedirectHosts("pkg-containers.githubusercontent.com"))
//	t := egress.NewTransport(p, nil)           // one per process: shares connections
//	rt, err := t.For("ghcr.io")                // one per job: knows whose credentials these are
//	img, err := remote.Image(ref, remote.WithTransport(rt))
//	img = p.Image(img, ref.Context(), opts...) // foreign-layer URLs are not fetched unless allowed
//
// Rules, in order:
//   - a request goes only to an allowlisted registry or a configured
//     redirect host (token realms and blob-storage redirects alike);
//   - Authorization (and cookies) reach only the job's registry and the
//     token hosts the operator listed; other hosts get GET and HEAD only,
//     so no credential travels in a body;
//   - plain HTTP only to an insecure registry, and to other hosts only
//     while pulling from one;
//   - at dial time the resolved address must be public (not loopback,
//     private, link-local, shared, unspecified or multicast) unless the
//     host was named explicitly in the policy;
//   - error responses reach go-containerregistry with their body replaced
//     by known registry error codes, and Sanitize rewrites errors so that
//     reports and logs carry a status code and a fixed reason, never a
//     remote body.
//
// A refusal is an error wrapping ErrRefused: permanent, since asking the
// same registry again gets the same answer.
package egress

import (
	"errors"
	"net"
	"strings"
)

// ErrRefused is wrapped by every refusal of this package.
var ErrRefused = errors.New("egress refused")

// RefusedError is a refused request or connection. Its message is fixed
// text naming the host only: it ends up in reports.
type RefusedError struct {
	// Host is host[:port] as requested (or dialled).
	Host string
	// Reason is fixed text.
	Reason string
}

func (e *RefusedError) Error() string {
	return "egress refused " + e.Host + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Refused reports whether err is (or wraps) a refusal of this package.
func Refused(err error) bool { return errors.Is(err, ErrRefused) }

// Policy says which hosts the scanner may reach. The zero Policy (and
// NewPolicy with no options) allows nothing.
type Policy struct {
	// registries maps an allowlisted registry to whether it is insecure
	// (reached over plain HTTP).
	registries map[hostPort]bool
	redirects  map[hostPort]bool
	// tokens are token-realm hosts the operator trusts with the registry's
	// credentials (Docker Hub's auth.docker.io).
	tokens  map[hostPort]bool
	foreign bool
}

// Option configures a Policy.
type Option func(*Policy)

// WithRegistries allowlists registries reached over HTTPS (host[:port]).
func WithRegistries(hosts ...string) Option {
	return func(p *Policy) { p.addRegistries(hosts, false) }
}

// WithInsecureRegistries allowlists registries reached over plain HTTP.
func WithInsecureRegistries(hosts ...string) Option {
	return func(p *Policy) { p.addRegistries(hosts, true) }
}

// WithRedirectHosts allows hosts registries legitimately send the scanner
// to: blob storage (S3, GCS, a CDN) and token realms on a separate host.
// They never receive the registry's credentials.
func WithRedirectHosts(hosts ...string) Option {
	return func(p *Policy) {
		for _, h := range hosts {
			if hp, ok := parseHost(h); ok {
				p.redirects[hp] = true
			}
		}
	}
}

// WithTokenHosts names token-realm hosts that may receive the registry's
// credentials (Basic auth, OAuth form posts): a registry whose realm is on
// another host (Docker Hub: auth.docker.io) cannot pull private images
// otherwise. Only hosts listed here, never a realm a registry names.
func WithTokenHosts(hosts ...string) Option {
	return func(p *Policy) {
		for _, h := range hosts {
			if hp, ok := parseHost(h); ok {
				p.tokens[hp] = true
			}
		}
	}
}

// WithForeignLayers lets layers be fetched from the URLs their descriptor
// lists (non-distributable layers), subject to the same host rules.
func WithForeignLayers(allow bool) Option {
	return func(p *Policy) { p.foreign = allow }
}

// NewPolicy builds a Policy.
func NewPolicy(opts ...Option) *Policy {
	p := &Policy{registries: map[hostPort]bool{}, redirects: map[hostPort]bool{}, tokens: map[hostPort]bool{}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func (p *Policy) addRegistries(hosts []string, insecure bool) {
	for _, h := range hosts {
		if hp, ok := parseHost(h); ok {
			// A host listed both ways may be reached both ways.
			p.registries[hp] = p.registries[hp] || insecure
		}
	}
}

// Empty reports whether no registry is allowlisted (nothing may be pulled).
func (p *Policy) Empty() bool { return p == nil || len(p.registries) == 0 }

// Registry reports whether host (host[:port], as in an image reference) is
// an allowlisted registry.
func (p *Policy) Registry(host string) bool {
	_, ok := p.registry(host)
	return ok
}

// Insecure reports whether host is an allowlisted plain-HTTP registry.
func (p *Policy) Insecure(host string) bool {
	insecure, _ := p.registry(host)
	return insecure
}

// ForeignLayers reports whether foreign-layer URLs may be fetched.
func (p *Policy) ForeignLayers() bool { return p != nil && p.foreign }

func (p *Policy) registry(host string) (insecure, ok bool) {
	if p == nil {
		return false, false
	}
	hp, valid := parseHost(host)
	if !valid {
		return false, false
	}
	return lookup(p.registries, hp)
}

// listed reports whether hp was named in the policy (registry or redirect
// host): such a host may resolve to a private address.
func (p *Policy) listed(hp hostPort) bool {
	if _, ok := lookup(p.registries, hp); ok {
		return true
	}
	if _, ok := lookup(p.tokens, hp); ok {
		return true
	}
	_, ok := lookup(p.redirects, hp)
	return ok
}

// tokenHost reports whether hp may receive the registry's credentials.
func (p *Policy) tokenHost(hp hostPort) bool {
	_, ok := lookup(p.tokens, hp)
	return ok
}

// NormalizeHost is the form hosts are compared in: lowercase, no
// surrounding space, ":443" dropped.
func NormalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ":443")
}

// hostPort is a normalised host: lowercase name or IP without brackets,
// and a port where "" means 443 (the registry default).
type hostPort struct{ host, port string }

func (h hostPort) String() string {
	if h.port == "" {
		if strings.Contains(h.host, ":") {
			return "[" + h.host + "]"
		}
		return h.host
	}
	return net.JoinHostPort(h.host, h.port)
}

// parseHost reads host, host:port, [v6] or [v6]:port.
func parseHost(s string) (hostPort, bool) {
	s = NormalizeHost(s)
	if s == "" {
		return hostPort{}, false
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		if h == "" {
			return hostPort{}, false
		}
		return canonical(h, p), true
	}
	return canonical(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""), true
}

// hostOf is the hostPort a request URL (or a dialled address) goes to;
// scheme supplies the default port when there is none.
func hostOf(host, port, scheme string) hostPort {
	if port == "" && scheme == "http" {
		port = "80"
	}
	return canonical(strings.ToLower(host), port)
}

func canonical(host, port string) hostPort {
	if port == "443" {
		port = ""
	}
	return hostPort{host: host, port: port}
}

// lookup finds hp in set; an entry without a port stands for the host on
// 443 and on 80 (the same registry over HTTPS or plain HTTP).
func lookup(set map[hostPort]bool, hp hostPort) (value, ok bool) {
	if v, ok := set[hp]; ok {
		return v, true
	}
	if hp.port == "80" {
		v, ok := set[hostPort{host: hp.host}]
		return v, ok
	}
	return false, false
}
