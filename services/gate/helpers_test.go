package gate_test

// The parts every gate test runs on, all real: nats-server with JetStream
// in-process, Docker Distribution's application handler on a filesystem
// driver, and the gate itself on a loopback listener.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // storage driver
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/gate"
)

// manifestAccept is what a pulling client accepts (the registry answers
// 404 for a manifest type the request does not accept).
const manifestAccept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

type harness struct {
	nats       *queuetest.Server
	nc         *nats.Conn
	js         jetstream.JetStream
	quarantine jetstream.KeyValue
	verdicts   jetstream.KeyValue
	// registry and gate are host:port.
	registry string
	gate     string
	// direct counts requests that reached the registry without passing
	// through the gate (the gate always adds X-Forwarded-For).
	direct *atomic.Int64
	svc    *gate.Service
	logs   *svcmaintest.LogBuffer
	// sentinel is an image the harness quarantines and releases to know
	// that the gate has applied every record written before.
	sentinelRepo string
}

// startRegistry serves a Distribution registry storing into a temporary
// directory; the handler is distribution's App (registry.NewRegistry
// registers process-global health checks and runs once per process).
func startRegistry(tb testing.TB) (addr string, direct *atomic.Int64) {
	tb.Helper()
	logrus.SetOutput(io.Discard) // distribution logs every request through logrus
	conf := &configuration.Configuration{
		Version: "0.1",
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": tb.TempDir()},
			"delete":     configuration.Parameters{"enabled": true},
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, conf)
	direct = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Forwarded-For") == "" {
			direct.Add(1)
		}
		app.ServeHTTP(w, r)
	}))
	tb.Cleanup(func() {
		srv.Close()
		_ = app.Shutdown()
		cancel()
	})
	return srv.Listener.Addr().String(), direct
}

// newHarness starts NATS, a registry and a gate configured with cfg (Addr
// and Upstream are set here), and waits until the gate is ready.
func newHarness(tb testing.TB, cfg gate.Config) *harness {
	tb.Helper()
	h := newHarnessNotReady(tb, cfg)
	h.waitReady(tb)
	return h
}

// newHarnessNotReady is newHarness without waiting (the gate may be
// waiting for NATS).
func newHarnessNotReady(tb testing.TB, cfg gate.Config) *harness {
	tb.Helper()
	h := &harness{nats: queuetest.Start(tb), logs: &svcmaintest.LogBuffer{}, sentinelRepo: "customs-test/sentinel"}
	h.nc, h.js = h.nats.Connect(tb)
	h.registry, h.direct = startRegistry(tb)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("gate logs:\n%s", h.logs.String())
		}
	})
	ctx := context.Background()
	var err error
	// The buckets results writes; the gate creates them as well if it
	// starts first (same configuration, so both succeed).
	if h.quarantine, err = quarantine.EnsureBucket(ctx, h.js, 1); err != nil {
		tb.Fatal(err)
	}
	if h.verdicts, err = quarantine.EnsureVerdicts(ctx, h.js, 1); err != nil {
		tb.Fatal(err)
	}
	h.startGate(tb, cfg)
	return h
}

func (h *harness) startGate(tb testing.TB, cfg gate.Config) {
	tb.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.Upstream = "http://" + h.registry
	svc, err := gate.New(cfg, gate.Deps{JetStream: h.js, Ready: natsconn.Ready(h.nc), Log: zerolog.New(h.logs)})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	h.svc, h.gate = svc, ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("gate Serve: %v", err)
		}
	})
}

// waitReady polls /readyz until it answers 200.
func (h *harness) waitReady(tb testing.TB) {
	tb.Helper()
	poll(tb, "gate /readyz answers 200", func() (bool, string) {
		st, _, body := h.do(tb, http.MethodGet, "/readyz")
		return st == http.StatusOK, fmt.Sprintf("%d %s", st, body)
	})
}

// poll calls cond until it holds; what it waits for (a KV watch to apply, a
// server to come back) has no deadline of its own, so this fails only
// after a minute.
func poll(tb testing.TB, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("waiting for %s: last %s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var client = &http.Client{Transport: &http.Transport{Proxy: nil}}

// do sends one request to the gate, with header pairs (name, value, ...),
// and returns status, header and body.
func (h *harness) do(tb testing.TB, method, path string, header ...string) (int, http.Header, string) {
	tb.Helper()
	req, err := http.NewRequest(method, "http://"+h.gate+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Accept", manifestAccept)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// waitStatus polls until a request to the gate answers want.
func (h *harness) waitStatus(tb testing.TB, method, path string, want int) {
	tb.Helper()
	poll(tb, fmt.Sprintf("%s %s → %d", method, path, want), func() (bool, string) {
		st, _, body := h.do(tb, method, path)
		return st == want, fmt.Sprintf("%d %s", st, body)
	})
}

// ref names repoRef ("repo:tag" or "repo@digest") on the gate.
func (h *harness) ref(tb testing.TB, repoRef string) name.Reference {
	tb.Helper()
	r, err := name.ParseReference(h.gate+"/"+repoRef, name.Insecure)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// push writes img through the gate (uploads, Location rewriting and all).
func (h *harness) push(tb testing.TB, repoTag string, img v1.Image) v1.Hash {
	tb.Helper()
	if err := remote.Write(h.ref(tb, repoTag), img); err != nil {
		tb.Fatalf("push %s through the gate: %v", repoTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// pull reads the whole image through the gate and verifies every digest.
func (h *harness) pull(tb testing.TB, ref string, opts ...remote.Option) error {
	tb.Helper()
	img, err := remote.Image(h.ref(tb, ref), opts...)
	if err != nil {
		return err
	}
	return validate.Image(img)
}

func randomImage(tb testing.TB) v1.Image {
	tb.Helper()
	img, err := random.Image(4096, 2)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// putRecord writes a quarantine record the way results does.
func (h *harness) putRecord(tb testing.TB, registry, repository, digest, state, mode, reason string) {
	tb.Helper()
	rec := &customsv1.QuarantineRecord{
		Registry: registry, Repository: repository, Digest: digest,
		State: state, Mode: mode, Reason: reason, Rule: "test", Kind: quarantine.KindDistribution,
		QuarantinedBy: quarantine.ByCustoms,
	}
	b, err := proto.Marshal(rec)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := h.quarantine.Put(context.Background(), quarantine.Key(registry, repository, digest), b); err != nil {
		tb.Fatal(err)
	}
}

// putVerdict writes the last stored report event of digest, as results does.
func (h *harness) putVerdict(tb testing.TB, digest, status, verdict, reason string) {
	tb.Helper()
	b, err := proto.Marshal(&customsv1.ReportStored{
		Registry: h.registry, Digest: digest, Status: status, Verdict: verdict, VerdictReason: reason, Cause: "scan",
	})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := h.verdicts.Put(context.Background(), quarantine.VerdictKey(digest), b); err != nil {
		tb.Fatal(err)
	}
}

// sync returns once the gate has applied every record written before it:
// the watch delivers in order, so once a record written after them blocks
// the sentinel image, they are applied too. The sentinel is released again.
func (h *harness) sync(tb testing.TB) {
	tb.Helper()
	path := "/v2/" + h.sentinelRepo + "/manifests/latest"
	st, hdr, _ := h.do(tb, http.MethodHead, path)
	if st == http.StatusNotFound {
		h.push(tb, h.sentinelRepo+":latest", randomImage(tb))
		st, hdr, _ = h.do(tb, http.MethodHead, path)
	}
	d := hdr.Get("Docker-Content-Digest")
	if st != http.StatusOK || d == "" {
		tb.Fatalf("sentinel: HEAD %s → %d, digest %q", path, st, d)
	}
	h.putRecord(tb, h.gate, h.sentinelRepo, d, quarantine.StateQuarantined, quarantine.ModeEnforce, "sync")
	h.waitStatus(tb, http.MethodHead, path, http.StatusForbidden)
	h.putRecord(tb, h.gate, h.sentinelRepo, d, quarantine.StateReleased, quarantine.ModeEnforce, "sync")
	h.waitStatus(tb, http.MethodHead, path, http.StatusOK)
}

// deniedBody is the registry error body the gate answers with.
func deniedBody(message string) string {
	return `{"errors":[{"code":"DENIED","message":"` + message + `"}]}` + "\n"
}

// registryErr is the registry error inside a go-containerregistry error.
func registryErr(tb testing.TB, err error) *transport.Error {
	tb.Helper()
	var terr *transport.Error
	if !errors.As(err, &terr) {
		tb.Fatalf("error %v is not a registry error", err)
	}
	return terr
}
