package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/quarantine"
)

// Decisions (the label of customs_gate_manifest_requests_total).
const (
	decisionAllowed     = "allowed"
	decisionQuarantined = "quarantined"
	decisionUnscanned   = "unscanned"
	decisionUnavailable = "unavailable"
	decisionUpstream    = "upstream"
)

const (
	// retryNotReady is the Retry-After of a 503: records not read yet,
	// verdicts unreachable.
	retryNotReady = "5"
	// retryUnscanned is the Retry-After of an image not scanned yet (a
	// scan usually takes seconds).
	retryUnscanned = "10"
	// verdictTimeout bounds one lookup in the verdicts bucket.
	verdictTimeout = 5 * time.Second
	// scannedCacheSize bounds the digests remembered as scanned (~100
	// bytes each).
	scannedCacheSize = 65536
)

// manifestRequest is a GET or HEAD of /v2/<name>/manifests/<reference>,
// carried on the request context from the handler to ModifyResponse.
type manifestRequest struct {
	repository string
	reference  string
	// host is the Host the client used: one more name records may be
	// keyed under (pushes through that name name it).
	host string
}

type manifestKey struct{}

// inHostKey carries the client's Host, for Location rewriting.
type inHostKey struct{}

// parseManifestPath reads /v2/<name>/manifests/<reference>. The reference
// never contains a slash, so the last "/manifests/" separates them (a
// repository may have a path component named "manifests").
func parseManifestPath(p string) (repository, reference string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/manifests/")
	if i <= 0 {
		return "", "", false
	}
	repository, reference = rest[:i], rest[i+len("/manifests/"):]
	if reference == "" || strings.Contains(reference, "/") {
		return "", "", false
	}
	return repository, reference, true
}

func (s *Service) newProxy() http.Handler {
	tr := s.deps.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Only the configured upstream is reached, never through an
		// environment proxy.
		t.Proxy = nil
		// Every client of the gate shares these connections.
		t.MaxIdleConnsPerHost = 64
		tr = t
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(s.upstream)
			// X-Forwarded-For only. The registry builds Location URLs
			// and names itself in push events from Host (and the
			// forwarded host, dropped here): events then name the
			// upstream, so the scanner pulls from the registry itself,
			// not through a gate that may refuse unscanned images.
			pr.SetXForwarded()
			pr.Out.Header.Del("X-Forwarded-Host")
			pr.Out.Header.Del("X-Forwarded-Proto")
			if pr.In.Context().Value(manifestKey{}) != nil {
				// A 304 would let the client use a cached manifest
				// that is quarantined now: always fetch it.
				pr.Out.Header.Del("If-None-Match")
				pr.Out.Header.Del("If-Modified-Since")
			}
		},
		Transport:      tr,
		FlushInterval:  -1,
		BufferPool:     bufferPool{},
		ModifyResponse: s.modifyResponse,
		ErrorHandler:   s.proxyError,
		ErrorLog:       newStdLogger(s.deps.Log),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), inHostKey{}, r.Host)
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			if repo, ref, ok := parseManifestPath(r.URL.Path); ok {
				if err := s.setReady(ctx); err != nil {
					// Never serve a manifest before every record is read.
					s.refuse(w, r, decisionUnavailable, http.StatusServiceUnavailable, "UNAVAILABLE",
						"Customs quarantine records not read yet; retry", retryNotReady, repo, ref, "")
					return
				}
				ctx = context.WithValue(ctx, manifestKey{}, &manifestRequest{repository: repo, reference: ref, host: strings.ToLower(r.Host)})
			}
		}
		rp.ServeHTTP(w, r.WithContext(ctx))
	})
}

// modifyResponse sees every upstream response before anything is written
// to the client: Location headers are made relative, and a manifest is
// decided here, its response replaced when it is refused.
func (s *Service) modifyResponse(resp *http.Response) error {
	ctx := resp.Request.Context()
	inHost, _ := ctx.Value(inHostKey{}).(string)
	s.rewriteLocation(resp.Header, inHost)
	m, ok := ctx.Value(manifestKey{}).(*manifestRequest)
	if !ok {
		return nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// 404, 401, ...: the registry's answer, as it is.
		s.requests.WithLabelValues(decisionUpstream).Inc()
		return nil
	}
	digest := m.reference
	if !strings.Contains(digest, ":") {
		// A tag: the registry says what it resolved to.
		digest = resp.Header.Get("Docker-Content-Digest")
		if digest == "" {
			s.replace(resp, m, decisionUnavailable, http.StatusBadGateway, "UNAVAILABLE",
				"the registry did not name the manifest's digest; Customs cannot check it", "", "")
			return nil
		}
	}
	d := s.decide(ctx, m, digest)
	if d.decision == decisionAllowed {
		s.requests.WithLabelValues(decisionAllowed).Inc()
		s.deps.Log.Debug().Str("repository", m.repository).Str("reference", m.reference).Str("digest", digest).Msg("manifest allowed")
		return nil
	}
	s.replace(resp, m, d.decision, d.status, d.code, d.message, d.retryAfter, digest)
	return nil
}

type decision struct {
	decision   string
	status     int
	code       string
	message    string
	retryAfter string
}

var allowed = decision{decision: decisionAllowed}

// decide says whether the manifest digest of m.repository is served: not
// when a record under any of the registry's names blocks it; with
// unscanned=deny, only once a complete scan of it was stored.
func (s *Service) decide(ctx context.Context, m *manifestRequest, digest string) decision {
	set := s.set.Load()
	names := *s.names.Load()
	if m.host != "" && !slices.Contains(names, m.host) {
		names = append(slices.Clip(names), m.host)
	}
	for _, n := range names {
		if rec := set.Get(n, m.repository, digest); quarantine.Blocking(rec) {
			reason := rec.GetReason()
			if reason == "" {
				reason = "no reason recorded"
			}
			return decision{decision: decisionQuarantined, status: http.StatusForbidden, code: "DENIED",
				message: "quarantined by Customs: " + reason}
		}
	}
	if !s.deny || s.scanned.has(digest) {
		return allowed
	}
	kv := s.verdicts.Load()
	if kv == nil {
		return decision{decision: decisionUnavailable, status: http.StatusServiceUnavailable, code: "UNAVAILABLE",
			message: "Customs verdicts not available yet; retry", retryAfter: retryNotReady}
	}
	vctx, cancel := context.WithTimeout(ctx, verdictTimeout)
	defer cancel()
	ev, err := quarantine.GetVerdict(vctx, *kv, digest)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return decision{decision: decisionUnscanned, status: http.StatusForbidden, code: "DENIED",
			message: "not yet scanned by Customs", retryAfter: retryUnscanned}
	case err != nil:
		// Not knowing is not a reason to serve.
		s.deps.Log.Warn().Err(err).Str("digest", digest).Msg("cannot read the verdict; manifest refused with 503")
		return decision{decision: decisionUnavailable, status: http.StatusServiceUnavailable, code: "UNAVAILABLE",
			message: "Customs cannot check the scan status now; retry", retryAfter: retryNotReady}
	}
	switch ev.GetStatus() {
	case "complete":
		// A stored complete report is never replaced by a failed one.
		s.scanned.add(digest)
		return allowed
	case "failed":
		reason := ev.GetVerdictReason()
		if reason == "" {
			reason = "no reason recorded"
		}
		return decision{decision: decisionUnscanned, status: http.StatusForbidden, code: "DENIED",
			message: "Customs scan failed: " + reason}
	}
	return decision{decision: decisionUnscanned, status: http.StatusForbidden, code: "DENIED",
		message: "not yet scanned by Customs", retryAfter: retryUnscanned}
}

// registryError is the registry API's error body, which clients show
// ("denied: quarantined by Customs: ...").
type registryError struct {
	Errors []registryErrorEntry `json:"errors"`
}

type registryErrorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func errorBody(code, message string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// Reasons are shown as written ("<", ">" and "&" unescaped).
	enc.SetEscapeHTML(false)
	_ = enc.Encode(registryError{Errors: []registryErrorEntry{{Code: code, Message: message}}})
	return b.Bytes()
}

func errorHeader(body []byte, retryAfter string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Docker-Distribution-Api-Version", "registry/2.0")
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return h
}

// replace turns an upstream response into a refusal; nothing of the
// manifest (body, digest, ETag) reaches the client.
func (s *Service) replace(resp *http.Response, m *manifestRequest, dec string, status int, code, message, retryAfter, digest string) {
	s.requests.WithLabelValues(dec).Inc()
	s.logRefusal(dec, status, m.repository, m.reference, digest, message)
	// Drained (manifests are small) so the upstream connection is reused.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
	body := errorBody(code, message)
	resp.StatusCode = status
	resp.Status = strconv.Itoa(status) + " " + http.StatusText(status)
	resp.Header = errorHeader(body, retryAfter)
	resp.ContentLength = int64(len(body))
	resp.Trailer = nil
	resp.TransferEncoding = nil
	if resp.Request.Method == http.MethodHead {
		// The server writes no body to a HEAD; a non-empty one here
		// would fail the proxy's copy.
		resp.Body = http.NoBody
		return
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
}

// refuse answers a manifest request without asking the upstream.
func (s *Service) refuse(w http.ResponseWriter, r *http.Request, dec string, status int, code, message, retryAfter, repo, ref, digest string) {
	s.requests.WithLabelValues(dec).Inc()
	s.logRefusal(dec, status, repo, ref, digest, message)
	body := errorBody(code, message)
	for k, v := range errorHeader(body, retryAfter) {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func (s *Service) logRefusal(dec string, status int, repo, ref, digest, message string) {
	ev := s.deps.Log.Info()
	if dec == decisionUnavailable {
		ev = s.deps.Log.Warn()
	}
	ev.Str("decision", dec).Int("status", status).Str("repository", repo).Str("reference", ref).
		Str("digest", digest).Str("detail", message).Msg("manifest refused")
}

// rewriteLocation makes a Location naming the upstream (or the gate, under
// any of its names) relative, so the client's next request of an upload
// comes back through the gate. Redirects elsewhere (blob storage) stay.
func (s *Service) rewriteLocation(h http.Header, inHost string) {
	loc := h.Get("Location")
	if loc == "" {
		return
	}
	u, err := url.Parse(loc)
	if err != nil || !u.IsAbs() {
		return
	}
	host := strings.ToLower(u.Host)
	if !sameHost(host, s.upstream) && !strings.EqualFold(host, inHost) && !slices.Contains(*s.names.Load(), host) {
		return
	}
	rel := url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery, Fragment: u.Fragment}
	h.Set("Location", rel.String())
}

// sameHost compares host with the upstream's, the default port spelled
// out or not.
func sameHost(host string, up *url.URL) bool {
	if strings.EqualFold(host, up.Host) {
		return true
	}
	port := map[string]string{"http": "80", "https": "443"}[up.Scheme]
	withPort := func(h string) string {
		if _, _, err := net.SplitHostPort(h); err == nil {
			return h
		}
		return net.JoinHostPort(strings.Trim(h, "[]"), port)
	}
	return strings.EqualFold(withPort(host), withPort(up.Host))
}

// proxyError answers when the upstream cannot be reached or a transfer
// broke; the registry error format, so clients show the reason.
func (s *Service) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client went away; nobody reads an answer.
		s.deps.Log.Debug().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("client gone during proxied request")
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	s.deps.Log.Warn().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("upstream request failed")
	if _, ok := r.Context().Value(manifestKey{}).(*manifestRequest); ok {
		s.requests.WithLabelValues(decisionUnavailable).Inc()
	}
	body := errorBody("UNAVAILABLE", "registry behind the Customs gate unreachable")
	for k, v := range errorHeader(body, retryNotReady) {
		w.Header()[k] = v
	}
	w.WriteHeader(http.StatusBadGateway)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// bufferPool recycles the proxy's copy buffers (one per transfer
// otherwise); 64 KiB halves the writes of a blob against the default 32.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// scannedCache remembers digests with a complete scan (which stays
// complete), so only unscanned digests cost a KV lookup. Bounded: when full,
// an arbitrary entry makes room.
type scannedCache struct {
	mu  sync.RWMutex
	max int
	m   map[string]struct{}
}

func newScannedCache(max int) *scannedCache {
	return &scannedCache{max: max, m: make(map[string]struct{})}
}

func (c *scannedCache) has(digest string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.m[digest]
	return ok
}

func (c *scannedCache) add(digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[digest]; ok {
		return
	}
	if len(c.m) >= c.max {
		for k := range c.m { // map order is random: a random eviction
			delete(c.m, k)
			break
		}
	}
	c.m[digest] = struct{}{}
}

// stdLogger routes net/http's and the proxy's own log lines into zerolog,
// under a fixed message.
type stdLogger struct{ log zerolog.Logger }

func (l stdLogger) Write(p []byte) (int, error) {
	l.log.Warn().Str("detail", strings.TrimSpace(string(p))).Msg("http server or proxy error")
	return len(p), nil
}

func newStdLogger(lg zerolog.Logger) *log.Logger { return log.New(stdLogger{lg}, "", 0) }
