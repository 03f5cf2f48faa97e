package scanner_test

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/scanner"
)

// internalSecret is what the "internal service" answers: it must never
// reach a report, a dead letter or a log.
const internalSecret = "INTERNAL-SERVICE-RESPONSE-7f3a"

var registryCreds = authn.AuthConfig{Username: "customs", Password: "registry-password"}

// standin is a registry under the test's control in front of
// go-containerregistry's: it asks for Basic credentials (so the scanner
// sends them) and can answer with a token realm on another host or
// redirect manifests and blobs elsewhere.
type standin struct {
	inner  http.Handler
	srv    *httptest.Server
	direct string // host of the registry without the stand-in
	// realm, when set, is a Bearer challenge answered to every request.
	realm             string
	redirectManifests string // base URL manifest requests are redirected to
	redirectBlobs     string // base URL blob requests are redirected to
	redirectOnly      string // when set, only blob paths containing it are redirected
	requests          atomic.Int32
	credentialed      atomic.Int32 // requests that carried the credentials
}

func (s *standin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if s.realm != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+s.realm+`",service="standin"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != registryCreds.Username || p != registryCreds.Password {
		w.Header().Set("WWW-Authenticate", `Basic realm="standin"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.credentialed.Add(1)
	switch {
	case s.redirectManifests != "" && strings.Contains(r.URL.Path, "/manifests/"):
		http.Redirect(w, r, s.redirectManifests+r.URL.Path, http.StatusTemporaryRedirect)
	case s.redirectBlobs != "" && strings.Contains(r.URL.Path, "/blobs/") && strings.Contains(r.URL.Path, s.redirectOnly):
		http.Redirect(w, r, s.redirectBlobs+r.URL.Path+"?X-Amz-Signature=sig", http.StatusTemporaryRedirect)
	default:
		s.inner.ServeHTTP(w, r)
	}
}

func (s *standin) host() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// sink is a second listener: an internal service, or blob storage. It
// records whether it was contacted and with which Authorization headers.
type sink struct {
	srv   *httptest.Server
	mu    sync.Mutex
	auths []string
	paths []string
	// serve answers; nil: the internal service's secret body.
	serve http.Handler
}

func newSink(t *testing.T, serve http.Handler) *sink {
	s := &sink{serve: serve}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.auths = append(s.auths, r.Header.Get("Authorization"))
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
		if s.serve != nil {
			s.serve.ServeHTTP(w, r)
			return
		}
		_, _ = io.WriteString(w, internalSecret)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) host() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// byName is the sink under the name localhost: go-containerregistry itself
// refuses private IP literals in realms and foreign-layer URLs, names not.
func (s *sink) byName() string {
	_, port, _ := net.SplitHostPort(s.host())
	return "localhost:" + port
}

func (s *sink) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.auths...)
}

// newStandin starts a registry stand-in whose behaviour configure sets
// (before it serves). Images are pushed past it, straight to the registry.
func newStandin(t *testing.T, configure func(reg *standin)) *standin {
	t.Helper()
	reg := &standin{inner: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	direct := httptest.NewServer(reg.inner)
	t.Cleanup(direct.Close)
	reg.direct = strings.TrimPrefix(direct.URL, "http://")
	if configure != nil {
		configure(reg)
	}
	reg.srv = httptest.NewServer(reg)
	t.Cleanup(reg.srv.Close)
	return reg
}

func (s *standin) push(t *testing.T, repo string, img v1.Image) string {
	t.Helper()
	return pushTo(t, s.direct, repo, img)
}

// startScanner runs a scanner with exactly cfg's allowlist and the
// stand-in's credentials.
func startScanner(t *testing.T, cfg scanner.Config) jetstream.JetStream {
	t.Helper()
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	runScanner(t, ctx, cancel, cfg, scanner.Deps{JetStream: js, Log: zerolog.Nop(), RemoteOptions: []remote.Option{
		remote.WithAuth(authn.FromConfig(registryCreds)), remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
	}})
	return js
}

func enqueueAt(t *testing.T, js jetstream.JetStream, registry, repo, digest string) {
	t.Helper()
	job := &customsv1.ScanJob{JobId: registry + "/" + repo + "@" + digest, Source: "test", Registry: registry,
		Repository: repo, Digest: digest, Insecure: true}
	data, _ := proto.Marshal(job)
	if _, err := js.Publish(context.Background(), queue.JobsSubjectPrefix+"test", data, jetstream.WithMsgID(job.JobId)); err != nil {
		t.Fatal(err)
	}
}

// failedOnce waits for the job's dead letter and failed report and checks
// it failed on its first delivery (a permanent failure, not retries) with
// a reason containing want and no remote body, signature or credential.
func failedOnce(t *testing.T, js jetstream.JetStream, want string) {
	t.Helper()
	var letter customsv1.DeadLetter
	if err := proto.Unmarshal(queuetest.WaitMsgs(t, js, queue.DLQStream, 1)[0].Data, &letter); err != nil {
		t.Fatal(err)
	}
	ev, r := decodeReport(t, queuetest.WaitMsgs(t, js, queue.ReportsStream, 1)[0].Data)
	if letter.GetDeliveries() != 1 {
		t.Errorf("failed after %d deliveries, want 1 (permanent)", letter.GetDeliveries())
	}
	if ev.GetStatus() != report.StatusFailed || r.Status != report.StatusFailed {
		t.Errorf("report status %q / %q", ev.GetStatus(), r.Status)
	}
	t.Logf("report error: %s", r.Error)
	for what, s := range map[string]string{"dead letter": letter.GetReason(), "report": r.Error, "event": ev.GetError()} {
		if !strings.Contains(s, want) {
			t.Errorf("%s reason %q, want it to contain %q", what, s, want)
		}
		for _, leak := range []string{internalSecret, "X-Amz-Signature", registryCreds.Password} {
			if strings.Contains(s, leak) {
				t.Errorf("%s reason carries %q: %q", what, leak, s)
			}
		}
	}
	if n := jobsLeft(t, js); n != 0 {
		t.Errorf("%d jobs left in the work queue", n)
	}
}

func debianImage(t *testing.T) v1.Image {
	return scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...))
}

// A token realm on another host name gets nothing, least of all the
// registry's Basic credentials; the job fails at once.
func TestRealmOnAnotherHostIsRefused(t *testing.T) {
	internal := newSink(t, nil)
	reg := newStandin(t, func(reg *standin) { reg.realm = "http://" + internal.byName() + "/token" })
	digest := reg.push(t, "team/debian", debianImage(t))
	js := startScanner(t, scanner.Config{InsecureRegistries: []string{reg.host()}})
	enqueueAt(t, js, reg.host(), "team/debian", digest)
	failedOnce(t, js, "egress refused "+internal.byName()+": not an allowlisted registry or redirect host")
	if got := internal.seen(); len(got) != 0 {
		t.Errorf("the realm host was contacted (Authorization %q)", got)
	}
}

// Manifest and blob redirects to a host outside the policy are not
// followed: the internal service is never contacted, the job fails at once.
func TestRedirectOutsideThePolicyIsRefused(t *testing.T) {
	for _, what := range []string{"manifest", "blob"} {
		t.Run(what, func(t *testing.T) {
			internal := newSink(t, nil)
			reg := newStandin(t, func(reg *standin) {
				if what == "manifest" {
					reg.redirectManifests = internal.srv.URL
				} else {
					reg.redirectBlobs = internal.srv.URL
				}
			})
			digest := reg.push(t, "team/debian", debianImage(t))
			js := startScanner(t, scanner.Config{InsecureRegistries: []string{reg.host()}})
			enqueueAt(t, js, reg.host(), "team/debian", digest)
			failedOnce(t, js, "egress refused "+internal.host()+": not an allowlisted registry or redirect host")
			if got := internal.seen(); len(got) != 0 {
				t.Errorf("the redirect target was contacted (Authorization %q)", got)
			}
		})
	}
}

// A redirect host that is allowed but answers with an error: the report
// gets the status code and a fixed reason, not the body.
func TestRedirectHostErrorBodyStaysOutOfTheReport(t *testing.T) {
	internal := newSink(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"`+internalSecret+`"}]}`)
	}))
	reg := newStandin(t, func(reg *standin) { reg.redirectBlobs = internal.srv.URL })
	digest := reg.push(t, "team/debian", debianImage(t))
	js := startScanner(t, scanner.Config{InsecureRegistries: []string{reg.host()}, RedirectHosts: []string{internal.host()}})
	enqueueAt(t, js, reg.host(), "team/debian", digest)
	failedOnce(t, js, "GET "+internal.host()+": answered 404 Not Found (BLOB_UNKNOWN)")
	if got := internal.seen(); len(got) == 0 || got[0] != "" {
		t.Errorf("redirect host requests' Authorization: %q", got)
	}
}

// In an index, a platform whose layer is redirected outside the policy is
// listed as failed with a sanitised reason; the other platforms are scanned.
func TestRefusedPlatformIsListedWithAFixedReason(t *testing.T) {
	internal := newSink(t, nil)
	good := debianImage(t)
	bad := scantest.Image(t, scantest.Layer(t, scantest.AlpineRootfs(t)...))
	badLayers, _ := bad.Layers()
	badDigest, _ := badLayers[0].Digest()
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: good, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: bad, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	reg := newStandin(t, func(reg *standin) {
		reg.redirectBlobs = internal.srv.URL
		reg.redirectOnly = badDigest.String()
	})
	ref, _ := name.ParseReference(reg.direct+"/team/multi:latest", name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	digest, _ := idx.Digest()
	js := startScanner(t, scanner.Config{InsecureRegistries: []string{reg.host()}})
	enqueueAt(t, js, reg.host(), "team/multi", digest.String())
	var index *report.Report
	for _, m := range queuetest.WaitMsgs(t, js, queue.ReportsStream, 3) {
		if _, r := decodeReport(t, m.Data); r.Artifact.Digest == digest.String() {
			index = r
		}
	}
	if index == nil || len(index.Manifests) != 2 {
		t.Fatalf("index report %+v", index)
	}
	for _, m := range index.Manifests {
		switch m.Platform {
		case "linux/amd64":
			if m.Status != "" {
				t.Errorf("good platform: %+v", m)
			}
		case "linux/arm64":
			want := "egress refused " + internal.host() + ": not an allowlisted registry or redirect host"
			if m.Status != report.StatusFailed || !strings.Contains(m.Error, want) || strings.Contains(m.Error, "X-Amz-Signature") {
				t.Errorf("refused platform: %+v, want error containing %q", m, want)
			}
		}
	}
	if got := internal.seen(); len(got) != 0 {
		t.Errorf("the redirect target was contacted (Authorization %q)", got)
	}
}

// Foreign-layer URLs are not fetched unless allowed, and when allowed
// only from allowed hosts.
func TestForeignLayerURLsAreNotFetched(t *testing.T) {
	for _, cfg := range []scanner.Config{{}, {AllowForeignLayers: true}} {
		t.Run("allow="+map[bool]string{true: "true", false: "false"}[cfg.AllowForeignLayers], func(t *testing.T) {
			internal := newSink(t, nil)
			reg := newStandin(t, nil)
			img, _ := foreignImage(t, "http://"+internal.byName()+"/layer")
			digest := reg.push(t, "team/win", img) // the foreign layer is not uploaded
			cfg.InsecureRegistries = []string{reg.host()}
			js := startScanner(t, cfg)
			enqueueAt(t, js, reg.host(), "team/win", digest)
			want := "foreign layer not served by the registry"
			if cfg.AllowForeignLayers {
				want = "egress refused " + internal.byName() + ": not an allowlisted registry or redirect host"
			}
			failedOnce(t, js, want)
			if got := internal.seen(); len(got) != 0 {
				t.Errorf("the foreign-layer URL was fetched (Authorization %q)", got)
			}
		})
	}
}

// foreignImage is a Debian image with a foreign layer on top whose blob is
// served by url only.
func foreignImage(t *testing.T, url string) (v1.Image, v1.Layer) {
	t.Helper()
	plain := scantest.Layer(t, scantest.Reg("Windows/System32/license.rtf", "foreign"))
	rc, err := plain.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	compressed, _ := io.ReadAll(rc)
	_ = rc.Close()
	diffID, _ := plain.DiffID()
	// The layer itself says foreign: remote.Write then does not upload it.
	layer := scantest.RawLayer(compressed, diffID, types.DockerForeignLayer)
	img, err := mutate.Append(debianImage(t), mutate.Addendum{Layer: layer, URLs: []string{url}, MediaType: types.DockerForeignLayer})
	if err != nil {
		t.Fatal(err)
	}
	return img, layer
}

// Positive controls: an allowlisted loopback registry whose manifests and
// blobs are redirected to an allowlisted storage host, and foreign layers
// allowed from an allowlisted host, scan fine; the storage host never sees
// the registry's Authorization, the registry does.
func TestAllowedRedirectHostGetsNoCredentials(t *testing.T) {
	var reg *standin
	storage := newSink(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/layer") {
			_, l := foreignImage(t, "")
			rc, _ := l.Compressed()
			defer rc.Close()
			_, _ = io.Copy(w, rc)
			return
		}
		reg.inner.ServeHTTP(w, r) // storage holds what the registry holds
	}))
	reg = newStandin(t, func(reg *standin) {
		reg.redirectManifests = storage.srv.URL
		reg.redirectBlobs = storage.srv.URL
	})
	img, _ := foreignImage(t, "http://"+storage.byName()+"/layer")
	digest := reg.push(t, "team/win", img)
	js := startScanner(t, scanner.Config{InsecureRegistries: []string{reg.host()},
		RedirectHosts: []string{storage.host(), storage.byName()}, AllowForeignLayers: true})
	enqueueAt(t, js, reg.host(), "team/win", digest)
	ev, r := decodeReport(t, queuetest.WaitMsgs(t, js, queue.ReportsStream, 1)[0].Data)
	if ev.GetStatus() != report.StatusComplete || r.OS.ID != "debian" || len(r.Layers) != 2 {
		t.Fatalf("event %v report error %q", ev, r.Error)
	}
	got := storage.seen()
	storage.mu.Lock()
	paths := strings.Join(storage.paths, " ")
	storage.mu.Unlock()
	if !strings.Contains(paths, "/manifests/") || !strings.Contains(paths, "/blobs/") || !strings.Contains(paths, "/layer") {
		t.Errorf("storage saw %s; want manifest, blob and foreign-layer requests", paths)
	}
	for _, a := range got {
		if a != "" {
			t.Errorf("storage got Authorization %q", a)
		}
	}
	if reg.credentialed.Load() == 0 {
		t.Error("the registry never got its credentials: the control proves nothing")
	}
}

// An empty allowlist pulls nothing: a job naming any registry (here a
// forged one for a live loopback registry) is refused without contact.
func TestEmptyAllowlistRefusesEveryJob(t *testing.T) {
	reg := newStandin(t, nil)
	digest := reg.push(t, "team/debian", debianImage(t))
	js := startScanner(t, scanner.Config{})
	enqueueAt(t, js, reg.host(), "team/debian", digest)
	failedOnce(t, js, "is not configured for pulls")
	if n := reg.requests.Load(); n != 0 {
		t.Errorf("the registry got %d requests", n)
	}
}
