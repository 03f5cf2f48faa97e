package ingest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/ingest"
)

// fixture reads a captured webhook from ../shared/fixtures (beside the repo).
func fixture(t *testing.T, rel string) []byte {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.work not found above the test directory")
		}
		dir = parent
	}
	b, err := os.ReadFile(filepath.Join(dir, "..", "shared", "fixtures", rel))
	if err != nil {
		t.Fatalf("fixture %s: %v (shared/ must sit beside the repository)", rel, err)
	}
	return b
}

type env struct {
	srv *httptest.Server
	ns  *queuetest.Server
	js  jetstream.JetStream
}

// start runs ingest with cfg; without a token, webhook authentication is
// turned off explicitly (the tests that don't exercise it post no token).
func start(t *testing.T, cfg ingest.Config) *env {
	t.Helper()
	if cfg.WebhookToken == "" {
		cfg.WebhookAuth = "off"
	}
	ns := queuetest.Start(t)
	ctx := context.Background()
	nc, js, err := natsconn.Connect(ctx, natsconn.Config{URL: ns.URL()}, "test-ingest", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	svc, err := ingest.New(cfg, ingest.Deps{JetStream: js, Ready: natsconn.Ready(nc), Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &env{srv: srv, ns: ns, js: js}
}

func (e *env) post(t *testing.T, path, contentType, auth string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// jobs returns every job in the work queue.
func (e *env) jobs(t *testing.T) []*customsv1.ScanJob {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, queue.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*customsv1.ScanJob
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		job := &customsv1.ScanJob{}
		if err := proto.Unmarshal(m.Data, job); err != nil {
			t.Fatal(err)
		}
		// One message per webhook event: its retries repeat the id.
		if got := m.Header.Get(jetstream.MsgIDHeader); got != wire.JobMsgID(job) || !strings.HasPrefix(got, job.GetJobId()+"#") {
			t.Errorf("Nats-Msg-Id = %q, want %q", got, wire.JobMsgID(job))
		}
		out = append(out, job)
	}
	return out
}

const v1Events = "application/vnd.docker.distribution.events.v1+json"
const v2Events = "application/vnd.docker.distribution.events.v2+json"

func TestDistributionManifestPushBecomesOneJob(t *testing.T) {
	e := start(t, ingest.Config{Registries: []string{"localhost:5000"}})
	body := fixture(t, "distribution-v2/0003-push-manifest-testbed_debian-latest.json")

	code, resp := e.post(t, "/v1/webhooks/distribution", v1Events, "", body)
	if code != http.StatusAccepted {
		t.Fatalf("status %d, body %s", code, resp)
	}
	// The registry retries: the same envelope again is one job.
	code, resp = e.post(t, "/v1/webhooks/distribution", v1Events, "", body)
	if code != http.StatusAccepted || !strings.Contains(resp, `"duplicate": true`) {
		t.Fatalf("duplicate: status %d, body %s", code, resp)
	}
	jobs := e.jobs(t)
	if len(jobs) != 1 {
		t.Fatalf("got %d jobs, want 1", len(jobs))
	}
	j := jobs[0]
	want := "sha256:6e3d7f910f1db7976dd42dca966c8d5d6525a03e0b813708c5b325ede094c338"
	if j.GetDigest() != want || j.GetRepository() != "testbed/debian" || j.GetRegistry() != "localhost:5000" ||
		len(j.GetTags()) != 1 || j.GetTags()[0] != "latest" || j.GetSource() != "distribution" ||
		j.GetMediaType() != "application/vnd.oci.image.manifest.v1+json" || j.GetInsecure() {
		t.Errorf("job = %v", j)
	}
}

func TestDistributionV3IndexPush(t *testing.T) {
	e := start(t, ingest.Config{InsecureRegistries: []string{"localhost:5001"}})
	code, resp := e.post(t, "/v1/webhooks/distribution", v2Events, "",
		fixture(t, "distribution-v3/0017-push-index-testbed_multiarch-latest.json"))
	if code != http.StatusAccepted {
		t.Fatalf("status %d, body %s", code, resp)
	}
	jobs := e.jobs(t)
	if len(jobs) != 1 || jobs[0].GetMediaType() != "application/vnd.oci.image.index.v1+json" || !jobs[0].GetInsecure() {
		t.Fatalf("jobs = %v", jobs)
	}
}

func TestNonManifestEventsAreAcknowledgedAndDropped(t *testing.T) {
	e := start(t, ingest.Config{Registries: []string{"localhost:5000"}})
	for _, f := range []string{
		"distribution-v2/0001-push-layer-testbed_debian.json",
		"distribution-v2/0018-pull-manifest-testbed_debian-latest.json",
		"distribution-v2/0021-mount-layer-testbed_debian-copy.json",
		"distribution-v2/0030-delete-none-testbed_debian-copy.json",
	} {
		code, resp := e.post(t, "/v1/webhooks/distribution", v1Events, "", fixture(t, f))
		if code != http.StatusOK {
			t.Errorf("%s: status %d (%s), want 200", f, code, resp)
		}
	}
	if jobs := e.jobs(t); len(jobs) != 0 {
		t.Errorf("got %d jobs, want none", len(jobs))
	}
}

func TestUnconfiguredRegistryMakesNoJob(t *testing.T) {
	e := start(t, ingest.Config{Registries: []string{"registry.example.com"}})
	code, resp := e.post(t, "/v1/webhooks/distribution", v1Events, "",
		fixture(t, "distribution-v2/0003-push-manifest-testbed_debian-latest.json"))
	if code != http.StatusOK || !strings.Contains(resp, "not in CUSTOMS_REGISTRIES") {
		t.Fatalf("status %d, body %s", code, resp)
	}
	if jobs := e.jobs(t); len(jobs) != 0 {
		t.Errorf("got %d jobs, want none", len(jobs))
	}
}

func TestHarborAndECR(t *testing.T) {
	e := start(t, ingest.Config{Registries: []string{"harbor.dev", "localhost", "123456789012.dkr.ecr.us-west-2.amazonaws.com"}})
	for _, c := range []struct{ path, file string }{
		{"/v1/webhooks/harbor", "harbor/push-artifact-by-digest.json"},
		{"/v1/webhooks/harbor", "harbor/cloudevents-artifact-pushed.json"},
	} {
		code, resp := e.post(t, c.path, "application/json", "", fixture(t, c.file))
		if code != http.StatusAccepted {
			t.Errorf("%s: status %d, body %s", c.file, code, resp)
		}
	}
	// AWS's documented example digest has 60 hex digits, not 64: a real
	// event never does, and Customs refuses it by name.
	ecr := fixture(t, "ecr/image-action-push.json")
	if code, resp := e.post(t, "/v1/webhooks/ecr", "application/json", "", ecr); code != http.StatusBadRequest || !strings.Contains(resp, "detail.image-digest") {
		t.Errorf("documented ECR example: status %d, body %s; want 400 naming detail.image-digest", code, resp)
	}
	ecr = []byte(strings.Replace(string(ecr), "abcd1234", "abcd12345678", 1))
	if code, resp := e.post(t, "/v1/webhooks/ecr", "application/json", "", ecr); code != http.StatusAccepted {
		t.Errorf("ECR push: status %d, body %s", code, resp)
	}
	for _, c := range []struct{ path, file string }{
		{"/v1/webhooks/harbor", "harbor/quota-exceed.json"},
		{"/v1/webhooks/harbor", "harbor/cloudevents-artifact-pulled.json"},
		{"/v1/webhooks/ecr", "ecr/image-action-delete.json"},
	} {
		if code, resp := e.post(t, c.path, "application/json", "", fixture(t, c.file)); code != http.StatusOK {
			t.Errorf("%s: status %d, body %s", c.file, code, resp)
		}
	}
	got := map[string]string{}
	for _, j := range e.jobs(t) {
		got[j.GetSource()+" "+j.GetRegistry()+"/"+j.GetRepository()] = j.GetDigest()
	}
	want := map[string]string{
		"harbor localhost/harbor/alpine":                                      "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4",
		"harbor harbor.dev/library/busybox":                                   "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c",
		"ecr 123456789012.dkr.ecr.us-west-2.amazonaws.com/my-repository-name": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678",
	}
	if len(got) != len(want) {
		t.Fatalf("jobs = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("job %s digest = %q, want %q", k, got[k], v)
		}
	}
}

func TestAuthentication(t *testing.T) {
	e := start(t, ingest.Config{WebhookToken: "s3cret", Registries: []string{"localhost:5000"}})
	body := fixture(t, "distribution-v2/0003-push-manifest-testbed_debian-latest.json")
	for _, auth := range []string{"", "Bearer wrong", "Basic s3cret", "Bearer s3cret2"} {
		if code, _ := e.post(t, "/v1/webhooks/distribution", v1Events, auth, body); code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d, want 401", auth, code)
		}
	}
	if len(e.jobs(t)) != 0 {
		t.Fatal("unauthenticated request made a job")
	}
	if code, resp := e.post(t, "/v1/webhooks/distribution", v1Events, "Bearer s3cret", body); code != http.StatusAccepted {
		t.Fatalf("right token: status %d, body %s", code, resp)
	}
	// The scheme is case-insensitive (RFC 7235).
	for _, auth := range []string{"bearer s3cret", "BEARER s3cret"} {
		if code, resp := e.post(t, "/v1/webhooks/distribution", v1Events, auth, body); code != http.StatusAccepted {
			t.Errorf("Authorization %q: status %d, body %s", auth, code, resp)
		}
	}
}

// Nothing is open by default: no token is a refusal to start, unless
// authentication is turned off explicitly.
func TestNoTokenRefusesToStart(t *testing.T) {
	deps := ingest.Deps{JetStream: &jetstreamStub{}, Log: zerolog.Nop()}
	cases := []struct {
		cfg  ingest.Config
		want string // "" = starts
	}{
		{ingest.Config{}, "CUSTOMS_WEBHOOK_TOKEN is not set"},
		{ingest.Config{WebhookAuth: "on"}, "CUSTOMS_WEBHOOK_AUTH=off"},
		{ingest.Config{WebhookAuth: "no"}, `CUSTOMS_WEBHOOK_AUTH="no"`},
		{ingest.Config{WebhookAuth: "off", WebhookToken: "t"}, "both set"},
		{ingest.Config{WebhookAuth: "OFF"}, ""},
		{ingest.Config{WebhookToken: "t"}, ""},
	}
	for _, c := range cases {
		_, err := ingest.New(c.cfg, deps)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("New(auth %q, token %q): %v; want error mentioning %q", c.cfg.WebhookAuth, c.cfg.WebhookToken, err, c.want)
		}
	}
}

// jetstreamStub is never published to: New only needs a publisher.
type jetstreamStub struct{ jetstream.Publisher }

func TestMalformedRequestsGet4xxWithReason(t *testing.T) {
	e := start(t, ingest.Config{Registries: []string{"localhost:5000"}, MaxBodyBytes: 4096})
	cases := []struct {
		name, ct, body string
		status         int
		reason         string
	}{
		{"not json", v1Events, "{not json", 400, "malformed"},
		{"bad digest", v1Events, `{"events":[{"id":"x","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:zz","repository":"a/b","url":"http://localhost:5000/v2/a/b/manifests/sha256:zz"}}]}`, 400, "digest"},
		{"wrong content type", "text/plain", `{"events":[]}`, 415, "content type"},
		{"too large", v1Events, `{"events":[` + strings.Repeat(" ", 5000) + `]}`, 413, "exceeds"},
	}
	for _, c := range cases {
		code, resp := e.post(t, "/v1/webhooks/distribution", c.ct, "", []byte(c.body))
		if code != c.status || !strings.Contains(strings.ToLower(resp), c.reason) {
			t.Errorf("%s: status %d body %s; want %d mentioning %q", c.name, code, resp, c.status, c.reason)
		}
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(resp), &e); err != nil || e.Error == "" {
			t.Errorf("%s: body is not {\"error\": ...}: %s", c.name, resp)
		}
	}
}

func TestNATSDownAnswers503AndQueuesNothing(t *testing.T) {
	e := start(t, ingest.Config{Registries: []string{"localhost:5000"}})
	body := fixture(t, "distribution-v2/0003-push-manifest-testbed_debian-latest.json")
	e.ns.Shutdown()
	code, resp := e.post(t, "/v1/webhooks/distribution", v1Events, "", body)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("NATS down: status %d (%s), want 503", code, resp)
	}
	if r, err := http.Get(e.srv.URL + "/readyz"); err != nil || r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with NATS down: %v %v, want 503", r.StatusCode, err)
	}
	e.ns.Restart()
	// The registry retries; once NATS is back the job is queued exactly once.
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, resp = e.post(t, "/v1/webhooks/distribution", v1Events, "", body)
		if code == http.StatusAccepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code != http.StatusAccepted {
		t.Fatalf("after restart: status %d (%s)", code, resp)
	}
	if jobs := e.jobs(t); len(jobs) != 1 {
		t.Fatalf("got %d jobs, want 1", len(jobs))
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := start(t, ingest.Config{})
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "customs_ingest_webhooks_total"} {
		if path == "/metrics" {
			// a request first, so the counter has a sample
			e.post(t, "/v1/webhooks/distribution", v1Events, "", []byte(`{"events":[]}`))
		}
		r, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %s", path, r.StatusCode, b)
		}
	}
}
