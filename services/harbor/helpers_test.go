package harbor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	harborfmt "github.com/customs-scan/customs/pkg/formats/harbor"
	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/harbor"
)

const (
	// testToken is what the test's "Harbor" registration sends.
	testToken = "harbor-registration-token-5d1c"
	// testJobKey is shared by the adapter and the scanners.
	testJobKey = "harbor-test-job-key-0123456789abcdef0123"

	scanRequestType = "application/vnd.scanner.adapter.scan.request+json; version=1.1"
)

// adapter is a running adapter and how to talk to it like Harbor does.
type adapter struct {
	url    string
	js     jetstream.JetStream
	bucket store.Bucket
	logs   *svcmaintest.LogBuffer
	client *http.Client
	token  string
}

// serveAdapter runs an adapter on js and bucket until the test ends, with
// the tests' token, job key and a one-second Refresh-After unless cfg
// says otherwise, logging into logs (nil: a buffer of its own), and waits
// until it is ready.
func serveAdapter(t testing.TB, js jetstream.JetStream, bucket store.Bucket, cfg harbor.Config, deps harbor.Deps, logs *svcmaintest.LogBuffer) *adapter {
	t.Helper()
	if cfg.Token == "" && cfg.Auth == "" {
		cfg.Token = testToken
	}
	if cfg.JobKey == "" {
		cfg.JobKey = testJobKey
	}
	if cfg.RefreshAfter == 0 {
		cfg.RefreshAfter = time.Second
	}
	if logs == nil {
		logs = &svcmaintest.LogBuffer{}
	}
	deps.JetStream, deps.Bucket = js, bucket
	deps.Log = zerolog.New(logs).Level(zerolog.DebugLevel)
	svc, err := harbor.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("harbor.Serve: %v", err)
		}
	})
	a := &adapter{url: "http://" + ln.Addr().String(), js: js, bucket: bucket, logs: logs, token: cfg.Token,
		client: &http.Client{Timeout: 30 * time.Second,
			// Harbor reads the 302 itself; so does the test.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := a.client.Get(a.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("adapter not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (a *adapter) request(t testing.TB, method, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, a.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	return req
}

func (a *adapter) metadata(t testing.TB) exchange {
	t.Helper()
	req := a.request(t, http.MethodGet, "/api/v1/metadata")
	req.Header.Set("Accept", "application/vnd.scanner.adapter.metadata+json; version=1.1")
	return do(t, a.client, req, nil, true)
}

// scan posts body as a scan request; valid says whether it follows the
// spec (the test also sends ones that do not).
func (a *adapter) scan(t testing.TB, body []byte, valid bool) exchange {
	t.Helper()
	req := a.request(t, http.MethodPost, "/api/v1/scan")
	req.Header.Set("Content-Type", scanRequestType)
	return do(t, a.client, req, body, valid)
}

// scanID posts body and returns the id of the accepted request.
func (a *adapter) scanID(t testing.TB, body []byte) string {
	t.Helper()
	x := a.scan(t, body, true)
	if x.status != http.StatusAccepted {
		t.Fatalf("scan request: %d %s", x.status, x.body)
	}
	var resp struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(x.body, &resp); err != nil || resp.ID == "" {
		t.Fatalf("scan response %s: %v", x.body, err)
	}
	return resp.ID
}

// report polls once for id's report in accept (query: "?sbom_media_type=…" or "").
func (a *adapter) report(t testing.TB, id, accept, query string) exchange {
	t.Helper()
	req := a.request(t, http.MethodGet, "/api/v1/scan/"+id+"/report"+query)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return do(t, a.client, req, nil, true)
}

// scanRequest is a ScanRequest body as Harbor sends it.
func scanRequest(registryURL, authorization, repository, digest, tag string) []byte {
	b, _ := json.Marshal(map[string]any{
		"registry": map[string]any{"url": registryURL, "authorization": authorization, "insecure": false},
		"artifact": map[string]any{"repository": repository, "digest": digest, "tag": tag,
			"mime_type": "application/vnd.oci.image.manifest.v1+json", "size": 1234},
		"enabled_capabilities": []map[string]any{{"type": "vulnerability",
			"produces_mime_types": []string{harborfmt.MediaTypeVulnerability}}},
	})
	return b
}

func digestN(n int) string { return fmt.Sprintf("sha256:%064x", n) }

// storeReport does what results does after a scan: the report in the
// bucket, then its ReportStored in the verdicts bucket.
func storeReport(t testing.TB, js jetstream.JetStream, bucket store.Bucket, r *report.Report) {
	t.Helper()
	ctx := context.Background()
	r.Normalize()
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	_, h, _ := strings.Cut(r.Artifact.Digest, ":")
	if err := bucket.Put(ctx, "reports/sha256/"+h+".json", body, "application/json"); err != nil {
		t.Fatal(err)
	}
	kv, err := quarantine.EnsureVerdicts(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := proto.Marshal(&customsv1.ReportStored{Registry: r.Artifact.Registry, Repository: r.Artifact.Repository,
		Digest: r.Artifact.Digest, Status: r.Status, Verdict: r.Verdict, Cause: "scan", FinishedAt: timestamppb.New(r.FinishedAt)})
	if _, err := kv.Put(ctx, quarantine.VerdictKey(r.Artifact.Digest), ev); err != nil {
		t.Fatal(err)
	}
}

// jobs are the scan jobs in the jobs stream, decoded, with their raw bytes.
func jobs(t testing.TB, js jetstream.JetStream) ([]*customsv1.ScanJob, [][]byte) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, queue.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*customsv1.ScanJob
	var raw [][]byte
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		job := &customsv1.ScanJob{}
		if err := proto.Unmarshal(m.Data, job); err != nil {
			t.Fatal(err)
		}
		out = append(out, job)
		raw = append(raw, m.Data)
	}
	return out, raw
}

// errorMessage is the message of an ErrorResponse body.
func errorMessage(t testing.TB, body []byte) string {
	t.Helper()
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" {
		t.Fatalf("not an ErrorResponse: %s (%v)", body, err)
	}
	return e.Error.Message
}
