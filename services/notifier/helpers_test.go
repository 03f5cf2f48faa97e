package notifier_test

// The parts every delivery test runs on, all real: nats-server with
// JetStream in-process, the notifier on a loopback listener, and HTTP
// receivers (httptest servers) standing in for Slack, Teams, Mattermost,
// Discord, Google Chat and a webhook receiver, recording what they get.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/notifier"
)

// request is what a receiver got.
type request struct {
	At     time.Time // arrival
	Done   time.Time // answered
	Header http.Header
	Body   []byte
	Status int
}

// answer is how a receiver answers its n-th request (from 0).
type answer struct {
	Status int
	Header map[string]string
	Body   string
	Delay  time.Duration
}

// receiver is an HTTP server that records every request. Its URL has a
// secret-looking path, which must never reach a log or a dead letter.
type receiver struct {
	srv     *httptest.Server
	Path    string
	mu      sync.Mutex
	reqs    []request
	respond func(n int) answer
	arrived chan struct{}
}

func newReceiver(t testing.TB, respond func(n int) answer) *receiver {
	t.Helper()
	r := &receiver{respond: respond, arrived: make(chan struct{}, 1<<16)}
	r.Path = "/hooks/" + secretToken(t.Name())
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// secretToken is a token unique to the test that can be searched for.
func secretToken(name string) string {
	sum := sha256.Sum256([]byte(name + time.Now().String()))
	return "SECRET" + hex.EncodeToString(sum[:8])
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	n := len(r.reqs)
	r.reqs = append(r.reqs, request{At: at, Header: req.Header.Clone(), Body: body})
	r.mu.Unlock()
	a := answer{Status: http.StatusOK}
	if r.respond != nil {
		a = r.respond(n)
	}
	if req.URL.Path != r.Path {
		a = answer{Status: http.StatusNotFound}
	}
	if a.Delay > 0 {
		time.Sleep(a.Delay)
	}
	for k, v := range a.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.Status)
	_, _ = io.WriteString(w, a.Body)
	r.mu.Lock()
	r.reqs[n].Done, r.reqs[n].Status = time.Now(), a.Status
	r.mu.Unlock()
	r.arrived <- struct{}{}
}

// URL is the receiver's webhook URL.
func (r *receiver) URL() string { return r.srv.URL + r.Path }

// Requests returns what arrived and was answered so far.
func (r *receiver) Requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []request
	for _, q := range r.reqs {
		if !q.Done.IsZero() {
			out = append(out, q)
		}
	}
	return out
}

// Accepted returns the requests answered 2xx.
func (r *receiver) Accepted() []request {
	var out []request
	for _, q := range r.Requests() {
		if q.Status/100 == 2 {
			out = append(out, q)
		}
	}
	return out
}

// waitAccepted waits until n requests were answered 2xx.
func (r *receiver) waitAccepted(t testing.TB, n int, within time.Duration) []request {
	t.Helper()
	deadline := time.After(within)
	for {
		if got := r.Accepted(); len(got) >= n {
			return got
		}
		select {
		case <-r.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("receiver %s: %d accepted requests, want %d (of %d in all)", r.Path, len(r.Accepted()), n, len(r.Requests()))
		}
	}
}

// harness is a notifier on an in-process NATS.
type harness struct {
	nats *queuetest.Server
	js   jetstream.JetStream
	svc  *notifier.Service
	logs *svcmaintest.LogBuffer
	addr string
}

// startNotifier writes alertsYAML to a file and runs a notifier with cfg
// (AlertsFile filled in) until the test ends.
func startNotifier(t testing.TB, alertsYAML string, cfg notifier.Config) *harness {
	t.Helper()
	srv := queuetest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(file, []byte(alertsYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.AlertsFile = file
	h := &harness{nats: srv, js: js, logs: &svcmaintest.LogBuffer{}}
	svc, err := notifier.New(cfg, notifier.Deps{JetStream: js, Log: zerolog.New(h.logs).Level(zerolog.DebugLevel)})
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Serve(sctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + h.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("notifier not ready: %v; logs:\n%s", err, h.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publish publishes a as results does: on customs.events.alerts.<hex>
// with Nats-Msg-Id msgID (the alert's id; another id stands for a
// redelivery after the duplicate window).
func (h *harness) publish(t testing.TB, a *customsv1.Alert, msgID string) {
	t.Helper()
	data, err := proto.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	h.publishRaw(t, a.GetDigest(), data, msgID)
}

func (h *harness) publishRaw(t testing.TB, digest string, data []byte, msgID string) {
	t.Helper()
	_, hexPart, _ := strings.Cut(digest, ":")
	if _, err := h.js.Publish(context.Background(), queue.AlertsSubject+hexPart, data, jetstream.WithMsgID(msgID)); err != nil {
		t.Fatal(err)
	}
}

// checkNoSecrets fails if the logs show any receiver's secret path.
func (h *harness) checkNoSecrets(t testing.TB, rs ...*receiver) {
	t.Helper()
	logs := h.logs.String()
	for _, r := range rs {
		if strings.Contains(logs, strings.TrimPrefix(r.Path, "/hooks/")) {
			t.Errorf("the logs show destination URL %s", r.Path)
		}
	}
}

// metric returns the value of a metric line on /metrics, e.g.
// customs_notifier_messages_total{destination="a",result="sent"}.
func (h *harness) metric(t testing.TB, series string) string {
	t.Helper()
	resp, err := http.Get("http://" + h.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// digestOf is a digest made from s.
func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// newAlert is a push alert on repository with the given new items.
func newAlert(id, repository string, its ...*customsv1.AlertItem) *customsv1.Alert {
	d := digestOf(id)
	return &customsv1.Alert{
		Id: id, Kind: "push", Registry: "registry.example.com:5000", Repository: repository, Digest: d,
		Tags: []string{"1.2.3", "latest"}, Platform: "linux/amd64",
		Verdict: "warn", PreviousVerdict: "pass", VerdictRule: "default:severity", VerdictReason: "HIGH vulnerabilities",
		PreviousDigest: digestOf(id + "-previous"), NewItems: its,
		At: timestamppb.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)), ReportPath: "/v1/reports/" + d,
		DbVersion: "sha256:abc@2026-12-01T09:00:00Z",
	}
}

// vuln is a vulnerability item.
func vuln(id, severity, pkg string) *customsv1.AlertItem {
	return &customsv1.AlertItem{Kind: "vulnerability", Id: id, Aliases: []string{"GHSA-" + id}, Severity: severity,
		Package: pkg, InstalledVersion: "1.0.0", FixedVersion: "1.0.1"}
}

// hugeAlert has n new items with long strings, quarantined.
func hugeAlert(id string, n int) *customsv1.Alert {
	var its []*customsv1.AlertItem
	for i := range n {
		if i%5 == 4 {
			its = append(its, &customsv1.AlertItem{Kind: "secret", Id: fmt.Sprintf("rule-%03d", i), Severity: "HIGH",
				Path: "app/config/" + strings.Repeat("deep/", 40) + fmt.Sprintf("file-%d.env", i), Title: strings.Repeat("Generic API key <b>&amp; ", 20)})
			continue
		}
		its = append(its, vuln(fmt.Sprintf("CVE-2026-%05d", i), []string{"CRITICAL", "HIGH", "MEDIUM", "LOW"}[i%4], "lib"+strings.Repeat("x", 200)))
	}
	a := newAlert(id, "payments/api", its...)
	a.Verdict, a.VerdictReason = "quarantine", strings.Repeat("a very long reason ", 300)
	a.Quarantine = &customsv1.AlertQuarantine{State: "quarantined", Mode: "enforce", Reason: "malware found", By: "customs"}
	return a
}

// destinationYAML is one destination entry, sending up to 1000 a second
// unless extra says otherwise.
func destinationYAML(name, typ, url string, extra ...string) string {
	s := fmt.Sprintf("  - name: %s\n    type: %s\n    url: %q\n", name, typ, url)
	if !slices.ContainsFunc(extra, func(e string) bool { return strings.HasPrefix(e, "rate_per_second:") }) {
		extra = append(extra, "rate_per_second: 1000")
	}
	for _, e := range extra {
		s += "    " + e + "\n"
	}
	return s
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
