package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store/storetest"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/pkg/wire"
	"github.com/customs-scan/customs/services/results"
)

// Tokens of the test service: an admin, an unscoped reader, and a reader
// that sees team-b's repositories only.
const (
	adminToken  = "ops-admin-token-0123456789"
	readerToken = "reader-token-0123456789"
	teamBToken  = "team-b-token-0123456789"
	signingKey  = "test-report-signing-key-0123456789abcdef"
)

// env is a results service running in process on real NATS (JetStream)
// and a real S3 protocol server (gofakes3), as the service tests run it.
type env struct {
	url string
	js  jetstream.JetStream
}

func writeTokens(t *testing.T) string {
	t.Helper()
	body := "tokens:\n" +
		"  - name: ops\n    sha256: " + apiauth.Hash(adminToken) + "\n    role: admin\n" +
		"  - name: reader\n    sha256: " + apiauth.Hash(readerToken) + "\n    role: read\n" +
		"  - name: team-b\n    sha256: " + apiauth.Hash(teamBToken) + "\n    role: read\n    repositories: [\"team-b/**\"]\n"
	p := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func start(t *testing.T, cfg results.Config) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	bucket := storetest.Start(t).Bucket(t, "reports")
	cfg.Signing.Key = signingKey
	cfg.Workers = 2
	cfg.AckWait = 5 * time.Second
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
	return &env{url: "http://" + ln.Addr().String(), js: js}
}

// publish sends r as a scanner does: signed, a large report by reference
// to the report bodies object store. job is the scan job's id ("" for r's
// own): a platform of an index carries the index's.
func (e *env) publish(t *testing.T, r *report.Report, job string) {
	t.Helper()
	ctx := context.Background()
	bodies, err := wire.EnsureReportBodies(ctx, e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := wire.NewSigner(signingKey)
	if err != nil {
		t.Fatal(err)
	}
	p := &wire.Publisher{JS: e.js, Bodies: bodies, Signer: signer}
	if job == "" {
		job = r.Artifact.Registry + "/" + r.Artifact.Repository + "@" + r.Artifact.Digest
	}
	var requested time.Time
	if r.RequestedAt != nil {
		requested = *r.RequestedAt
	}
	if err := p.Publish(ctx, job, requested, r); err != nil {
		t.Fatal(err)
	}
}

// call makes an API or page request with token ("" none) and headers
// (name, value pairs); redirects are not followed.
func (e *env) call(t *testing.T, method, path, token string, body io.Reader, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// waitFor polls the API as the admin until ok says path's answer is the
// one wanted.
func (e *env) waitFor(t *testing.T, path string, ok func(code int, body string) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, body := e.call(t, http.MethodGet, path, adminToken, nil)
		if ok(resp.StatusCode, body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// seed publishes the fixture images and waits until results stored them
// and quarantined the malicious one.
func (e *env) seed(t *testing.T) fixtures {
	t.Helper()
	// Built 30 hours ago: the overview says how old the database is.
	built := time.Now().UTC().Add(-30 * time.Hour).Truncate(time.Second)
	db := vulndbtest.Build(t, built, "osv/other/GHSA-p6mc-m468-83gw.json")
	if _, _, err := vulndist.Publish(context.Background(), e.js, db); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "/v1/vulnerability-db", func(code int, body string) bool { return strings.Contains(body, db.Version()) })
	f := newFixtures(report.VulnerabilityDB{Status: report.VulnDBChecked, Version: db.Version(), BuiltAt: &built, MatchedAt: &built})
	f.dbVersion = db.Version()
	for _, r := range f.ordered() {
		job := ""
		if r.Artifact.Platform != "" && strings.HasPrefix(r.Artifact.Repository, "team-b/") {
			job = f.index.Artifact.Registry + "/" + f.index.Artifact.Repository + "@" + f.index.Artifact.Digest
		}
		e.publish(t, r, job)
		e.waitFor(t, "/v1/reports/"+r.Artifact.Digest, func(code int, _ string) bool { return code == http.StatusOK })
	}
	e.waitFor(t, "/v1/quarantine/"+f.malicious.Artifact.Digest, func(code int, body string) bool {
		var doc struct {
			Records []struct {
				State string `json:"state"`
			} `json:"records"`
		}
		return code == http.StatusOK && json.Unmarshal([]byte(body), &doc) == nil && len(doc.Records) == 1 && doc.Records[0].State == "quarantined"
	})
	return f
}

// digest is a made-up manifest digest, distinct in its first 12 digits
// (the pages show those).
func digest(n int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("image-%d", n)))
	return "sha256:" + hex.EncodeToString(h[:])
}
