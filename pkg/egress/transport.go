package egress

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// maxErrorBody bounds how much of an error response is read to find its
// registry error codes (go-containerregistry reads 64 KiB as well).
const maxErrorBody = 64 << 10

// Transport carries every outgoing request of one process: a shared
// connection pool whose dialer checks resolved addresses. Use For to get
// the RoundTripper of one registry.
type Transport struct {
	policy *Policy
	base   *http.Transport
}

// NewTransport builds the process's transport. base supplies timeouts and
// TLS settings (nil: go-containerregistry's defaults); its proxy and dial
// functions are replaced: the address check must see the real destination,
// so environment proxies are not used.
func NewTransport(p *Policy, base *http.Transport) *Transport {
	if p == nil {
		p = NewPolicy()
	}
	if base == nil {
		base = &http.Transport{
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   50,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	} else {
		base = base.Clone()
	}
	t := &Transport{policy: p, base: base}
	base.Proxy = nil
	base.DialTLSContext = nil // TLS goes over DialContext, which checks the address
	base.DialContext = t.dial
	return t
}

// Policy is the policy t enforces.
func (t *Transport) Policy() *Policy { return t.policy }

// CloseIdleConnections closes pooled connections.
func (t *Transport) CloseIdleConnections() { t.base.CloseIdleConnections() }

// For returns the RoundTripper for pulls from registry (host[:port] as in
// the image reference). It refuses a registry the policy does not allow.
func (t *Transport) For(registry string) (http.RoundTripper, error) {
	self, ok := parseHost(registry)
	insecure, allowed := t.policy.registry(registry)
	if !ok || !allowed {
		return nil, &RefusedError{Host: registry, Reason: "not an allowlisted registry"}
	}
	return &guard{t: t, self: map[hostPort]bool{self: true}, insecure: insecure}, nil
}

// dial connects to addr (host:port of the request) and refuses, once the
// name is resolved, any non-public address of a host the policy does not
// name explicitly. Checking in Control sees the address actually dialled,
// so DNS answers cannot swap it after a check.
func (t *Transport) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("egress: dial %s: %w", addr, err)
	}
	target := hostOf(host, port, "")
	named := t.policy.listed(target)
	d := net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			if named {
				return nil
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !Public(ap.Addr()) {
				return &RefusedError{Host: target.String(), Reason: "resolves to a loopback, private or link-local address"}
			}
			return nil
		},
	}
	return d.DialContext(ctx, network, addr)
}

// Public reports whether a is a globally routable unicast address: not
// loopback, private (RFC 1918, ULA), shared (100.64/10, used for cloud
// metadata too), link-local (169.254/16, fe80::/10), unspecified,
// multicast or reserved. IPv4 inside IPv6 (mapped, NAT64, 6to4) is judged
// by its IPv4 address.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is6() {
		b := a.As16()
		switch {
		case netip.MustParsePrefix("64:ff9b::/96").Contains(a):
			return Public(netip.AddrFrom4([4]byte(b[12:16])))
		case netip.MustParsePrefix("2002::/16").Contains(a):
			return Public(netip.AddrFrom4([4]byte(b[2:6])))
		case netip.MustParsePrefix("64:ff9b:1::/48").Contains(a):
			return false
		}
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	if a.Is4() {
		for _, p := range []string{"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4"} {
			if netip.MustParsePrefix(p).Contains(a) {
				return false
			}
		}
	}
	return true
}

// guard is the RoundTripper of one registry.
type guard struct {
	t        *Transport
	self     map[hostPort]bool
	insecure bool
	// retryAfter is the last Retry-After of a 429 or 503 (nanoseconds).
	retryAfter atomic.Int64
}

// MaxRetryAfter bounds the delay a registry can ask for: a hostile or
// confused one must not park a job for a day.
const MaxRetryAfter = 5 * time.Minute

// RetryAfter returns the delay the registry last asked for with a 429 or
// 503 through rt (a RoundTripper from For), bounded by MaxRetryAfter; 0
// when it asked for none.
func RetryAfter(rt http.RoundTripper) time.Duration {
	g, ok := rt.(*guard)
	if !ok {
		return 0
	}
	return time.Duration(g.retryAfter.Load())
}

// parseRetryAfter reads delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// RoundTrip sees every hop: go-containerregistry's http.Client follows
// redirects above it, so each redirect arrives here as its own request.
func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	target := hostOf(req.URL.Hostname(), req.URL.Port(), req.URL.Scheme)
	refuse := func(reason string) (*http.Response, error) {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, &RefusedError{Host: target.String(), Reason: reason}
	}
	if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
		return refuse("scheme is neither https nor http")
	}
	// Plain HTTP is for insecure registries, and for where they send us.
	if req.URL.Scheme == "http" && !g.insecure {
		return refuse("plain HTTP while pulling from a registry not listed as insecure")
	}
	if _, self := lookup(g.self, target); self || g.t.policy.tokenHost(target) {
		return g.send(req)
	}
	if !g.t.policy.listed(target) {
		return refuse("not an allowlisted registry or redirect host (CUSTOMS_REGISTRY_REDIRECT_HOSTS)")
	}
	// Token realms and storage redirects get no credentials: not in a
	// header, and (no POST) not in an OAuth form body either.
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return refuse("only GET and HEAD go to hosts other than the registry")
	}
	if req.Header.Get("Authorization") != "" || req.Header.Get("Cookie") != "" || req.Header.Get("Proxy-Authorization") != "" {
		req = req.Clone(req.Context())
		req.Header.Del("Authorization")
		req.Header.Del("Cookie")
		req.Header.Del("Proxy-Authorization")
	}
	return g.send(req)
}

func (g *guard) send(req *http.Request) (*http.Response, error) {
	resp, err := g.t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	// The reason phrase is the server's text; errors quote resp.Status.
	resp.Status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		g.retryAfter.Store(int64(parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())))
	}
	if resp.StatusCode >= 300 {
		scrubBody(resp, req.Method == http.MethodHead)
	}
	return resp, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the pool.
func (g *guard) CloseIdleConnections() { g.t.CloseIdleConnections() }

// scrubBody replaces the body of a redirect or error response: the error
// go-containerregistry builds from it quotes the body, and a redirect
// target's body (an internal service's answer) must not reach a report.
// Only known registry error codes survive, with their fixed messages.
func scrubBody(resp *http.Response, head bool) {
	var body []byte
	if !head && resp.StatusCode >= 400 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		body = knownErrors(raw)
	}
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Content-Length")
	resp.Uncompressed = false
	if len(body) > 0 {
		resp.Header.Set("Content-Type", "application/json")
	}
}

// knownErrors re-encodes a registry error body with only the error codes
// of the distribution spec, each with its fixed message; nil when none.
func knownErrors(raw []byte) []byte {
	var in struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(raw, &in) != nil {
		return nil
	}
	type diag struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	var out struct {
		Errors []diag `json:"errors"`
	}
	for _, e := range in.Errors {
		if msg, ok := errorCodes()[e.Code]; ok {
			out.Errors = append(out.Errors, diag{Code: e.Code, Message: msg})
		}
	}
	if len(out.Errors) == 0 {
		return nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil
	}
	return b
}

// errorCodes are the registry error codes (distribution spec and
// docker/distribution) with fixed messages.
func errorCodes() map[string]string {
	return map[string]string{
		"BLOB_UNKNOWN":          "blob unknown to registry",
		"BLOB_UPLOAD_INVALID":   "blob upload invalid",
		"BLOB_UPLOAD_UNKNOWN":   "blob upload unknown to registry",
		"DIGEST_INVALID":        "provided digest did not match uploaded content",
		"MANIFEST_BLOB_UNKNOWN": "manifest references a manifest or blob unknown to registry",
		"MANIFEST_INVALID":      "manifest invalid",
		"MANIFEST_UNKNOWN":      "manifest unknown to registry",
		"MANIFEST_UNVERIFIED":   "manifest failed signature verification",
		"NAME_INVALID":          "invalid repository name",
		"NAME_UNKNOWN":          "repository name not known to registry",
		"SIZE_INVALID":          "provided length did not match content length",
		"TAG_INVALID":           "manifest tag did not match URI",
		"UNAUTHORIZED":          "authentication required",
		"DENIED":                "requested access to the resource is denied",
		"UNSUPPORTED":           "the operation is unsupported",
		"TOOMANYREQUESTS":       "too many requests",
		"UNKNOWN":               "unknown error",
		"UNAVAILABLE":           "service unavailable",
	}
}
