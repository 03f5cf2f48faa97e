package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const secret = "INTERNAL-SERVICE-SECRET"

// recorder is a listener that records who contacted it and answers with
// a body that must never reach an error.
type recorder struct {
	mu    sync.Mutex
	auths []string
	n     int
	h     http.HandlerFunc
	srv   *httptest.Server
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	r := &recorder{h: h}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.n++
		r.auths = append(r.auths, req.Header.Get("Authorization"))
		r.mu.Unlock()
		if r.h != nil {
			r.h(w, req)
			return
		}
		_, _ = io.WriteString(w, secret)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) host() string { return strings.TrimPrefix(r.srv.URL, "http://") }

func (r *recorder) seen() (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n, append([]string{}, r.auths...)
}

func get(t *testing.T, rt http.RoundTripper, method, u string, hdr http.Header) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	return rt.RoundTrip(req)
}

func TestPolicyHosts(t *testing.T) {
	p := NewPolicy(WithRegistries(" GHCR.io:443", "reg.example:5000", "[::1]:5000"), WithInsecureRegistries("plain.example"),
		WithRedirectHosts("storage.example"))
	for host, want := range map[string]bool{
		"ghcr.io": true, "ghcr.io:443": true, "GHCR.IO": true, "reg.example:5000": true, "reg.example": false,
		"reg.example:5001": false, "[::1]:5000": true, "plain.example": true, "storage.example": false, "": false,
	} {
		if got := p.Registry(host); got != want {
			t.Errorf("Registry(%q) = %v, want %v", host, got, want)
		}
	}
	if !p.Insecure("plain.example") || p.Insecure("ghcr.io") {
		t.Error("insecure registries")
	}
	if p.Empty() || !NewPolicy().Empty() || !NewPolicy(WithRedirectHosts("x")).Empty() {
		t.Error("Empty")
	}
	// A host named without a port is that host on 443 and on 80.
	for _, hp := range []hostPort{hostOf("plain.example", "", "http"), hostOf("plain.example", "443", ""), hostOf("storage.example", "80", "")} {
		if !p.listed(hp) {
			t.Errorf("%v is not listed", hp)
		}
	}
	if p.listed(hostOf("storage.example", "8080", "")) {
		t.Error("another port of a listed host is listed")
	}
}

func TestPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"100.100.100.200": false, "0.0.0.0": false, "224.0.0.1": false, "255.255.255.255": false,
		"::1": false, "::": false, "fe80::1": false, "fd00:ec2::254": false, "ff02::1": false,
		"::ffff:127.0.0.1": false, "::ffff:8.8.8.8": true, "64:ff9b::a9fe:a9fe": false, "2002:7f00:1::": false,
	} {
		if got := Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestDialRefusesUnnamedNonPublicAddresses(t *testing.T) {
	rec := newRecorder(t, nil)
	_, port, _ := strings.Cut(rec.host(), ":")
	tr := NewTransport(NewPolicy(WithInsecureRegistries(rec.host())), nil)
	conn, err := tr.dial(context.Background(), "tcp", rec.host())
	if err != nil {
		t.Fatalf("named loopback registry: %v", err)
	}
	_ = conn.Close()
	// The same listener under a name that resolves to it, and as another
	// literal, is not named: refused once resolved.
	for _, addr := range []string{"localhost:" + port, "[::ffff:127.0.0.1]:" + port} {
		_, err := tr.dial(context.Background(), "tcp", addr)
		if !Refused(err) {
			t.Errorf("dial %s: %v, want a refusal", addr, err)
		}
	}
	if n, _ := rec.seen(); n != 0 {
		t.Errorf("listener contacted %d times", n)
	}
}

func TestRoundTripRules(t *testing.T) {
	reg := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	store := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "blob") })
	other := newRecorder(t, nil)
	_, otherPort, _ := strings.Cut(other.host(), ":")
	tr := NewTransport(NewPolicy(WithInsecureRegistries(reg.host()), WithRedirectHosts(store.host())), nil)
	rt, err := tr.For(reg.host())
	if err != nil {
		t.Fatal(err)
	}
	auth := http.Header{"Authorization": {"Basic c2VjcmV0OnNlY3JldA=="}, "Cookie": {"a=b"}}

	resp, err := get(t, rt, http.MethodGet, reg.srv.URL+"/v2/", auth)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("registry: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	if _, auths := reg.seen(); auths[0] == "" {
		t.Error("the registry did not get its credentials")
	}

	resp, err = get(t, rt, http.MethodGet, store.srv.URL+"/blob", auth)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("redirect host: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	if _, auths := store.seen(); auths[0] != "" {
		t.Errorf("redirect host got Authorization %q", auths[0])
	}
	if _, err := get(t, rt, http.MethodPost, store.srv.URL+"/token", nil); !Refused(err) {
		t.Errorf("POST to a redirect host: %v", err)
	}

	for _, u := range []string{other.srv.URL + "/token", "http://localhost:" + otherPort + "/token", "ftp://" + store.host() + "/x"} {
		_, err := get(t, rt, http.MethodGet, u, auth)
		var re *RefusedError
		if !errors.As(err, &re) || strings.Contains(err.Error(), "/token") {
			t.Errorf("GET %s: %v, want a refusal naming the host only", u, err)
		}
	}
	if n, _ := other.seen(); n != 0 {
		t.Errorf("unlisted host contacted %d times", n)
	}

	// A registry listed for HTTPS is not reached over plain HTTP, nor is
	// anything else while pulling from it.
	secure, err := NewTransport(NewPolicy(WithRegistries(reg.host()), WithRedirectHosts(store.host())), nil).For(reg.host())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{reg.srv.URL + "/v2/", store.srv.URL + "/blob"} {
		if _, err := get(t, secure, http.MethodGet, u, nil); !Refused(err) {
			t.Errorf("plain GET %s: %v", u, err)
		}
	}
	if _, err := tr.For(other.host()); !Refused(err) {
		t.Errorf("For(unlisted) = %v", err)
	}
	if _, err := NewTransport(NewPolicy(), nil).For(reg.host()); !Refused(err) {
		t.Errorf("empty policy: For = %v", err)
	}
}

func TestRedirectIsCheckedPerHopWithoutCredentials(t *testing.T) {
	store := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "blob") })
	other := newRecorder(t, nil)
	reg := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		target := store.srv.URL
		if r.URL.Path == "/evil" {
			target = other.srv.URL
		}
		w.Header().Set("Location", target+"/data?X-Signature=sig")
		w.WriteHeader(http.StatusTemporaryRedirect)
		_, _ = io.WriteString(w, secret)
	})
	tr := NewTransport(NewPolicy(WithInsecureRegistries(reg.host()), WithRedirectHosts(store.host())), nil)
	rt, _ := tr.For(reg.host())
	// go-containerregistry's own client: the guard is below it.
	client := &http.Client{Transport: headerAdder{rt}}
	resp, err := client.Get(reg.srv.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(b) != "blob" {
		t.Errorf("body %q", b)
	}
	if _, auths := store.seen(); len(auths) != 1 || auths[0] != "" {
		t.Errorf("redirect host got Authorization %q", auths)
	}
	_, err = client.Get(reg.srv.URL + "/evil")
	if !Refused(err) || strings.Contains(Sanitize(err).Error(), "sig") {
		t.Errorf("redirect to an unlisted host: %v (sanitized %v)", err, Sanitize(err))
	}
	if n, _ := other.seen(); n != 0 {
		t.Errorf("unlisted redirect target contacted %d times", n)
	}
}

// headerAdder sets credentials on every request, as a careless client
// would on redirects.
type headerAdder struct{ rt http.RoundTripper }

func (h headerAdder) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer registry-token")
	return h.rt.RoundTrip(r)
}

func TestErrorBodiesNeverReachErrors(t *testing.T) {
	reg := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/json":
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":%q,"detail":%q},{"code":%q}]}`, secret, secret, secret)
		case "/text":
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, secret)
		}
	})
	tr := NewTransport(NewPolicy(WithInsecureRegistries(reg.host())), nil)
	rt, _ := tr.For(reg.host())
	for path, want := range map[string]string{"/json": "404 Not Found (MANIFEST_UNKNOWN)", "/text": "403 Forbidden"} {
		resp, err := get(t, rt, http.MethodGet, reg.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		cerr := transport.CheckError(resp, http.StatusOK)
		_ = resp.Body.Close()
		if strings.Contains(cerr.Error(), secret) {
			t.Errorf("%s: go-containerregistry's error quotes the body: %v", path, cerr)
		}
		serr := Sanitize(fmt.Errorf("get manifest: %w", cerr))
		if !strings.HasPrefix(serr.Error(), "get manifest: GET "+reg.host()+": answered "+want) {
			t.Errorf("%s: sanitized %q, want %q", path, serr, want)
		}
	}
}

func TestSanitize(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.WriteHeader(http.StatusBadGateway)
	_, _ = io.WriteString(rec, secret)
	resp := rec.Result()
	resp.Request = httptest.NewRequest(http.MethodGet, "http://reg.example/v2/x/blobs/sha256:1?token="+secret, nil)
	te := transport.CheckError(resp, http.StatusOK)
	ue := &url.Error{Op: "Get", URL: "https://user:pw@store.example/path?sig=" + secret, Err: errors.New("connection reset")}
	tok := fmt.Errorf("no token in bearer response:\n%s", secret)
	err := fmt.Errorf("layer: %w", errors.Join(te, ue, tok))
	got := Sanitize(err)
	if strings.Contains(got.Error(), secret) || strings.Contains(got.Error(), "pw") {
		t.Fatalf("Sanitize = %q", got)
	}
	for _, want := range []string{"GET reg.example: answered 502 Bad Gateway", `"https://store.example/path": connection reset`, "token response without a token"} {
		if !strings.Contains(got.Error(), want) {
			t.Errorf("Sanitize = %q, want it to contain %q", got, want)
		}
	}
	var back *transport.Error
	if !errors.As(got, &back) || back.StatusCode != http.StatusBadGateway {
		t.Error("the chain is lost")
	}
	plain := errors.New("plain")
	if Sanitize(plain) != plain || Sanitize(nil) != nil {
		t.Error("an error without remote text is returned as is")
	}
	if long := Sanitize(errors.New("no token in bearer response" + strings.Repeat("é", 2000))); len(long.Error()) > maxReason+8 {
		t.Errorf("len %d", len(long.Error()))
	}
}

// A foreign layer's URLs are not fetched unless allowed; when allowed,
// they follow the host rules and get no credentials.
func TestForeignLayers(t *testing.T) {
	layer, err := random.Layer(256, types.DockerForeignLayer)
	if err != nil {
		t.Fatal(err)
	}
	blob := func(w http.ResponseWriter, _ *http.Request) {
		rc, _ := layer.Compressed()
		defer rc.Close()
		_, _ = io.Copy(w, rc)
	}
	sink := newRecorder(t, blob)
	// By name: go-containerregistry itself refuses private IP literals.
	_, sinkPort, _ := strings.Cut(sink.host(), ":")
	sinkHost := "localhost:" + sinkPort
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, URLs: []string{"http://" + sinkHost + "/layer"}, MediaType: types.DockerForeignLayer})
	if err != nil {
		t.Fatal(err)
	}
	regSrv := httptest.NewServer(basicAuth(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(regSrv.Close)
	host := strings.TrimPrefix(regSrv.URL, "http://")
	ref, _ := name.ParseReference(host+"/team/win:latest", name.Insecure)
	creds := remote.WithAuth(&authn.Basic{Username: "u", Password: "p"})
	if err := remote.Write(ref, img, creds); err != nil { // foreign layer not uploaded
		t.Fatal(err)
	}

	fetch := func(p *Policy) error {
		rt, err := NewTransport(p, nil).For(host)
		if err != nil {
			t.Fatal(err)
		}
		opts := []remote.Option{remote.WithTransport(rt), creds, remote.WithRetryBackoff(remote.Backoff{Steps: 1})}
		got, err := remote.Image(ref, opts...)
		if err != nil {
			t.Fatal(err)
		}
		ls, err := p.Image(got, ref.Context(), opts...).Layers()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := ls[0].Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		_ = rc.Close()
		return err
	}

	for _, p := range []*Policy{
		NewPolicy(WithInsecureRegistries(host), WithRedirectHosts(sinkHost)), // not allowed
		NewPolicy(WithInsecureRegistries(host), WithForeignLayers(true)),     // allowed, host not listed
	} {
		err := fetch(p)
		if !Refused(err) || strings.Contains(Sanitize(err).Error(), secret) {
			t.Errorf("foreign layers %v: %v", p.ForeignLayers(), err)
		}
	}
	if n, _ := sink.seen(); n != 0 {
		t.Fatalf("foreign URL fetched %d times", n)
	}
	if err := fetch(NewPolicy(WithInsecureRegistries(host), WithRedirectHosts(sinkHost), WithForeignLayers(true))); err != nil {
		t.Fatalf("allowed foreign layer: %v", err)
	}
	if n, auths := sink.seen(); n != 1 || auths[0] != "" {
		t.Errorf("foreign URL: %d requests, Authorization %q", n, auths)
	}
}

// basicAuth asks for Basic credentials, so that clients send them.
func basicAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

var _ v1.Image = (*registryOnlyImage)(nil)

// A token realm the operator listed as a token host (Docker Hub's
// auth.docker.io) gets the registry's credentials, POST included; the same
// host listed only as a redirect host does not.
func TestTokenHostsGetCredentials(t *testing.T) {
	reg := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	realm := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"token":"t"}`) })
	auth := http.Header{"Authorization": {"Basic c2VjcmV0OnNlY3JldA=="}}

	rt, err := NewTransport(NewPolicy(WithInsecureRegistries(reg.host()), WithTokenHosts(realm.host())), nil).For(reg.host())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		resp, err := get(t, rt, m, realm.srv.URL+"/token", auth)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s token host: %v %v", m, resp, err)
		}
		_ = resp.Body.Close()
	}
	if n, auths := realm.seen(); n != 2 || auths[0] == "" || auths[1] == "" {
		t.Errorf("token host saw %d requests with Authorization %q", n, auths)
	}

	asRedirect, err := NewTransport(NewPolicy(WithInsecureRegistries(reg.host()), WithRedirectHosts(realm.host())), nil).For(reg.host())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := get(t, asRedirect, http.MethodGet, realm.srv.URL+"/token", auth)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if _, auths := realm.seen(); auths[2] != "" {
		t.Errorf("a redirect host got Authorization %q", auths[2])
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"-3":                            0,
		"86400":                         MaxRetryAfter, // bounded
		"Sun, 06 Dec 2026 12:00:30 GMT": 30 * time.Second,
		"Sun, 06 Dec 2026 11:00:00 GMT": 0,
		"soon":                          0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}
