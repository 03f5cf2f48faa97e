package results_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/wire"
	"github.com/customs-scan/customs/services/results"
)

// flakyS3 is a real S3 server (gofakes3) that can be made unreachable.
type flakyS3 struct {
	down atomic.Bool
	// frozen: connections are accepted and never answered.
	frozen atomic.Bool
	h      http.Handler
	puts   atomic.Int32
}

func (f *flakyS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.frozen.Load() {
		<-r.Context().Done()
		return
	}
	if f.down.Load() {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/reports/") {
		f.puts.Add(1)
	}
	f.h.ServeHTTP(w, r)
}

type env struct {
	api *httptest.Server
	js  jetstream.JetStream
	s3  *flakyS3
}

// testToken is the admin token every test API call carries.
const testToken = "test-admin-token"

func start(t *testing.T) *env {
	t.Helper()
	return startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken})
}

func startWith(t *testing.T, cfg results.Config) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	f := &flakyS3{h: gofakes3.New(s3mem.New()).Server()}
	s3srv := httptest.NewServer(f)
	t.Cleanup(s3srv.Close)
	bucket, err := store.NewS3(ctx, store.S3Config{
		Bucket: "reports", Endpoint: s3srv.URL, PathStyle: true,
		AccessKeyID: "k", SecretAccessKey: "s", CreateBucket: true,
		ReadTimeout: time.Second, WriteTimeout: 2 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Signing == (wire.SigningConfig{}) {
		cfg.Signing.Key = testSigningKey
	}
	svc, err := results.New(cfg, results.Deps{JetStream: js, Bucket: bucket, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ln := httptest.NewUnstartedServer(nil).Listener
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("results.Serve: %v", err)
		}
	})
	return &env{api: &httptest.Server{URL: "http://" + ln.Addr().String()}, js: js, s3: f}
}

func digest(n int) string { return fmt.Sprintf("sha256:%064x", n) }

func newReport(repo string, n int, finished time.Time) *report.Report {
	r := &report.Report{
		Artifact:   report.Artifact{Registry: "registry.test:5000", Repository: repo, Digest: digest(n), MediaType: "application/vnd.oci.image.manifest.v1+json"},
		Scanner:    report.Scanner{Name: "customs", Version: "test"},
		StartedAt:  finished.Add(-time.Second),
		FinishedAt: finished,
		Status:     report.StatusComplete,
		Verdict:    report.VerdictPass,
		Packages:   []report.Package{{Name: "bash", Version: "5.2.15-2+b2", Ecosystem: "Debian:12"}},
	}
	r.Normalize()
	return r
}

// testSigningKey is the report signing key shared by the test's results
// service and its publisher (a scanner's).
const testSigningKey = "test-report-signing-key-0123456789abcdef"

func testSigner(t *testing.T) *wire.Signer {
	t.Helper()
	s, err := wire.NewSigner(testSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// publish sends r as a scanner does: signed, large reports by reference.
func (e *env) publish(t *testing.T, r *report.Report) {
	t.Helper()
	ctx := context.Background()
	bodies, err := wire.EnsureReportBodies(ctx, e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := &wire.Publisher{JS: e.js, Bodies: bodies, Signer: testSigner(t)}
	var requested time.Time
	if r.RequestedAt != nil {
		requested = *r.RequestedAt
	}
	if err := p.Publish(ctx, r.Artifact.Digest, requested, r); err != nil {
		t.Fatal(err)
	}
}

func (e *env) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	return e.getAs(t, testToken, path)
}

// getAs calls the API with token ("" for none).
func (e *env) getAs(t *testing.T, token, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.api.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *env) waitReport(t *testing.T, d string) *report.Report {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := e.get(t, "/v1/reports/"+d)
		if code == http.StatusOK {
			var r report.Report
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			return &r
		}
		if code != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("GET report %s: %d %s", d, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReportIsStoredAndServed(t *testing.T) {
	e := start(t)
	if code, body := e.get(t, "/v1/reports/"+digest(1)); code != http.StatusNotFound || !strings.Contains(string(body), "error") {
		t.Fatalf("unknown report: %d %s", code, body)
	}
	if code, _ := e.get(t, "/v1/reports/latest"); code != http.StatusBadRequest {
		t.Fatalf("bad digest: %d, want 400", code)
	}
	want := newReport("team/app", 1, time.Now().UTC().Truncate(time.Millisecond))
	e.publish(t, want)
	got := e.waitReport(t, digest(1))
	if got.Artifact.Digest != want.Artifact.Digest || got.Artifact.Repository != "team/app" || got.Artifact.Registry != want.Artifact.Registry {
		t.Errorf("artifact = %+v", got.Artifact)
	}
	if len(got.Packages) != 1 || got.Packages[0].Name != "bash" || !got.FinishedAt.Equal(want.FinishedAt) {
		t.Errorf("report = %+v", got)
	}
	// Empty lists are [] in the stored JSON.
	_, raw := e.get(t, "/v1/reports/"+digest(1))
	for _, field := range []string{`"vulnerabilities": []`, `"findings": []`, `"manifests": []`, `"layers": []`} {
		if !bytes.Contains(raw, []byte(field)) {
			t.Errorf("stored report lacks %s", field)
		}
	}
}

func TestDuplicateDeliveryIsOneObjectAndListingIsNewestFirst(t *testing.T) {
	e := start(t)
	base := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	e.publish(t, newReport("team/app", 1, base))
	e.publish(t, newReport("team/app", 1, base)) // the same report again
	e.publish(t, newReport("team/app", 2, base.Add(time.Minute)))
	e.publish(t, newReport("other/app", 3, base))
	e.waitReport(t, digest(2))
	e.waitReport(t, digest(3))

	code, body := e.get(t, "/v1/reports?repository=team/app")
	if code != http.StatusOK {
		t.Fatalf("list: %d %s", code, body)
	}
	var list struct {
		Reports []struct {
			Digest string `json:"digest"`
		} `json:"reports"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Reports) != 2 || list.Reports[0].Digest != digest(2) || list.Reports[1].Digest != digest(1) {
		t.Fatalf("list = %s", body)
	}
	if code, _ := e.get(t, "/v1/reports"); code != http.StatusBadRequest {
		t.Errorf("list without repository: %d, want 400", code)
	}
}

func TestOlderReportNeverReplacesNewer(t *testing.T) {
	e := start(t)
	base := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	newer := newReport("team/app", 1, base.Add(time.Hour))
	newer.Verdict = report.VerdictWarn
	e.publish(t, newer)
	e.waitReport(t, digest(1))
	e.publish(t, newReport("team/app", 1, base))
	e.publish(t, newReport("team/app", 9, base)) // a marker that the older one was processed
	e.waitReport(t, digest(9))
	if got := e.waitReport(t, digest(1)); got.Verdict != report.VerdictWarn {
		t.Fatalf("an older report replaced the newer one: verdict %s", got.Verdict)
	}
}

func TestS3OutageIsWaitedOutNotDropped(t *testing.T) {
	e := start(t)
	e.s3.down.Store(true)
	e.publish(t, newReport("team/app", 1, time.Now().UTC()))
	// While S3 is down the event stays unacknowledged in the stream.
	time.Sleep(2 * time.Second)
	cons, err := e.js.Consumer(context.Background(), queue.ReportsStream, queue.ResultsConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 0 {
		t.Fatalf("report event acknowledged while S3 was down: %+v", info.AckFloor)
	}
	e.s3.down.Store(false)
	e.waitReport(t, digest(1))
}

func TestReadinessReflectsS3(t *testing.T) {
	e := start(t)
	if code, body := e.get(t, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	e.s3.down.Store(true)
	if code, body := e.get(t, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "s3") {
		t.Fatalf("/readyz with S3 down: %d %s", code, body)
	}
}

// A frozen S3 (accepts connections, never answers) must not hang the API:
// report reads answer 503 once the bounded S3 call gives up.
func TestFrozenS3MakesTheAPIAnswer503(t *testing.T) {
	e := start(t)
	e.publish(t, newReport("team/app", 1, time.Now().UTC()))
	e.waitReport(t, digest(1))
	e.s3.frozen.Store(true)
	defer e.s3.frozen.Store(false)
	client := &http.Client{Timeout: 60 * time.Second} // far beyond the S3 bound: a hang fails here
	for _, path := range []string{"/v1/reports/" + digest(1), "/v1/reports?repository=team/app"} {
		req, _ := http.NewRequest(http.MethodGet, e.api.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s with S3 frozen: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET %s with S3 frozen: %d, want 503", path, resp.StatusCode)
		}
	}
}
