package scanner_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/scanner"
)

// flaky fronts a real registry (go-containerregistry's) and can fail the
// next N requests with 503.
type flaky struct {
	fail503   atomic.Int32
	fail429   atomic.Int32 // manifest GETs answered 429 with Retry-After: 6
	times     []time.Time  // of manifest GETs, under mu
	manifests atomic.Int32 // manifest requests seen
	mu        sync.Mutex
	blobGETs  map[string]int // digest → GET requests
	h         http.Handler
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, "/manifests/") {
		f.manifests.Add(1)
		if r.Method == http.MethodGet {
			f.mu.Lock()
			f.times = append(f.times, time.Now())
			f.mu.Unlock()
		}
		if r.Method == http.MethodGet && f.fail429.Load() > 0 {
			f.fail429.Add(-1)
			w.Header().Set("Retry-After", "6")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
	}
	if i := strings.Index(r.URL.Path, "/blobs/"); i >= 0 && r.Method == http.MethodGet {
		f.mu.Lock()
		if f.blobGETs == nil {
			f.blobGETs = map[string]int{}
		}
		f.blobGETs[r.URL.Path[i+len("/blobs/"):]]++
		f.mu.Unlock()
	}
	if f.fail503.Load() > 0 && strings.Contains(r.URL.Path, "/manifests/") {
		f.fail503.Add(-1)
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	f.h.ServeHTTP(w, r)
}

type env struct {
	js   jetstream.JetStream
	host string
	reg  *flaky
	ns   *queuetest.Server
	// metrics is the scanner's /metrics URL.
	metrics string
}

func start(t *testing.T, cfg scanner.Config) *env {
	t.Helper()
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	if err := queue.EnsureStreams(context.Background(), js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	return startOn(t, ns, js, cfg)
}

func startOn(t *testing.T, ns *queuetest.Server, js jetstream.JetStream, cfg scanner.Config) *env {
	t.Helper()
	return startLogged(t, ns, js, cfg, zerolog.Nop())
}

func startLogged(t *testing.T, ns *queuetest.Server, js jetstream.JetStream, cfg scanner.Config, logger zerolog.Logger) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &flaky{h: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	cfg.InsecureRegistries = []string{host}
	metrics := runScanner(t, ctx, cancel, cfg, scanner.Deps{JetStream: js, Log: logger,
		RemoteOptions: []remote.Option{remote.WithRetryBackoff(remote.Backoff{Steps: 1})}})
	return &env{js: js, host: host, reg: f, ns: ns, metrics: metrics}
}

// runScanner serves a scanner with the tests' defaults (one worker, short
// ack wait, the test signing key) until the test ends, and returns its
// /metrics URL.
func runScanner(t *testing.T, ctx context.Context, cancel context.CancelFunc, cfg scanner.Config, deps scanner.Deps) string {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 5 * time.Second
	}
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = 4
	}
	if cfg.Signing == (wire.SigningConfig{}) {
		cfg.Signing.Key = testSigningKey
	}
	svc, err := scanner.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("scanner.Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/metrics"
}

func (e *env) push(t *testing.T, repo string, img v1.Image) string {
	t.Helper()
	return pushTo(t, e.host, repo, img)
}

// pushTo writes img as host/repo:latest over plain HTTP and returns its digest.
func pushTo(t *testing.T, host, repo string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repo+":latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

func (e *env) enqueue(t *testing.T, repo, digest string) {
	t.Helper()
	job := &customsv1.ScanJob{JobId: e.host + "/" + repo + "@" + digest, Source: "test", Registry: e.host,
		Repository: repo, Digest: digest, Tags: []string{"latest"}, Insecure: true, RequestedAt: timestamppb.Now()}
	data, _ := proto.Marshal(job)
	if _, err := e.js.Publish(context.Background(), queue.JobsSubjectPrefix+"test", data, jetstream.WithMsgID(job.JobId)); err != nil {
		t.Fatal(err)
	}
}

// testSigningKey signs the test scanners' report events.
const testSigningKey = "scanner-test-signing-key-0123456789abcdef"

func decodeReport(t *testing.T, data []byte) (*customsv1.ScanCompleted, *report.Report) {
	t.Helper()
	ev := &customsv1.ScanCompleted{}
	if err := proto.Unmarshal(data, ev); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(ev.GetReport()))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	var r report.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return ev, &r
}

func jobsLeft(t *testing.T, js jetstream.JetStream) uint64 {
	s, _ := js.Stream(context.Background(), queue.JobsStream)
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestJobBecomesReportEvent(t *testing.T) {
	e := start(t, scanner.Config{})
	digest := e.push(t, "team/debian", scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...)))
	e.enqueue(t, "team/debian", digest)
	msgs := queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)
	ev, r := decodeReport(t, msgs[0].Data)
	if ev.GetDigest() != digest || ev.GetStatus() != report.StatusComplete || r.OS.ID != "debian" || len(r.Packages) != 3 {
		t.Fatalf("event %v report %+v", ev, r)
	}
	if msgs[0].Subject != queue.ReportsSubjectPrefix+strings.TrimPrefix(digest, "sha256:") {
		t.Errorf("subject %s", msgs[0].Subject)
	}
	// Signed with the configured key, so results will accept it.
	signer, err := wire.NewSigner(testSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := signer.Verify(msgs[0].Subject, msgs[0].Data, msgs[0].Header.Get(wire.SignatureHeader)); err != nil {
		t.Errorf("report event: %v", err)
	}
	if r.RequestedAt == nil || ev.GetRequestedAt() == nil {
		t.Errorf("the push time is not carried: report %v event %v", r.RequestedAt, ev.GetRequestedAt())
	}
}

func TestScannerRefusesToStartUnsigned(t *testing.T) {
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	if _, err := scanner.New(scanner.Config{}, scanner.Deps{JetStream: js, Log: zerolog.Nop()}); err == nil ||
		!strings.Contains(err.Error(), "CUSTOMS_REPORT_SIGNING_KEY") {
		t.Fatalf("scanner without a signing key: %v", err)
	}
	if _, err := scanner.New(scanner.Config{Signing: wire.SigningConfig{Mode: "off"}}, scanner.Deps{JetStream: js, Log: zerolog.Nop()}); err != nil {
		t.Fatalf("signing explicitly off: %v", err)
	}
}

func TestMissingManifestIsDeadLetteredAfterOneAttempt(t *testing.T) {
	e := start(t, scanner.Config{})
	missing := "sha256:" + strings.Repeat("ab", 32)
	e.enqueue(t, "team/gone", missing)
	dl := queuetest.WaitMsgs(t, e.js, queue.DLQStream, 1)
	var letter customsv1.DeadLetter
	if err := proto.Unmarshal(dl[0].Data, &letter); err != nil {
		t.Fatal(err)
	}
	if letter.GetJob().GetDigest() != missing || letter.GetDeliveries() != 1 || !strings.Contains(letter.GetReason(), "404") && !strings.Contains(strings.ToLower(letter.GetReason()), "unknown") {
		t.Errorf("dead letter = %v", &letter)
	}
	// Users find a failed report instead of nothing.
	ev, r := decodeReport(t, queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)[0].Data)
	if ev.GetStatus() != report.StatusFailed || r.Error == "" || r.Verdict != report.VerdictWarn {
		t.Errorf("failed report: %v %+v", ev, r)
	}
	if n := jobsLeft(t, e.js); n != 0 {
		t.Errorf("%d jobs left in the work queue", n)
	}
}

func TestRegistry503IsRetried(t *testing.T) {
	e := start(t, scanner.Config{})
	digest := e.push(t, "team/alpine", scantest.Image(t, scantest.Layer(t, scantest.AlpineRootfs(t)...)))
	e.reg.fail503.Store(4) // more than one attempt's worth of 503s
	e.enqueue(t, "team/alpine", digest)
	ev, _ := decodeReport(t, queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)[0].Data)
	if ev.GetStatus() != report.StatusComplete {
		t.Fatalf("event = %v", ev)
	}
	s, _ := e.js.Stream(context.Background(), queue.DLQStream)
	if info, _ := s.Info(context.Background()); info.State.Msgs != 0 {
		t.Errorf("a retried job was dead-lettered")
	}
}

// A 429 with Retry-After is retried no sooner than the registry asked
// (the default backoff would come back after about 2 s).
func TestRetryAfterIsHonoured(t *testing.T) {
	e := start(t, scanner.Config{})
	digest := e.push(t, "team/alpine", scantest.Image(t, scantest.Layer(t, scantest.AlpineRootfs(t)...)))
	e.reg.mu.Lock()
	e.reg.times = nil
	e.reg.mu.Unlock()
	e.reg.fail429.Store(1)
	e.enqueue(t, "team/alpine", digest)
	if ev, _ := decodeReport(t, queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)[0].Data); ev.GetStatus() != report.StatusComplete {
		t.Fatalf("event = %v", ev)
	}
	e.reg.mu.Lock()
	defer e.reg.mu.Unlock()
	if len(e.reg.times) < 2 {
		t.Fatalf("%d manifest GETs", len(e.reg.times))
	}
	// A lower bound only: the retry may come later on a busy machine.
	if gap := e.reg.times[1].Sub(e.reg.times[0]); gap < 5500*time.Millisecond {
		t.Errorf("retried after %v; the registry asked for 6 s", gap)
	}
}

func TestOversizeManifestIsRefused(t *testing.T) {
	e := start(t, scanner.Config{Limits: scanner.LimitsConfig{MaxManifestBytes: 100}})
	digest := e.push(t, "team/big", scantest.Image(t, scantest.Layer(t, scantest.AlpineRootfs(t)...)))
	e.enqueue(t, "team/big", digest)
	ev, r := decodeReport(t, queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)[0].Data)
	if ev.GetStatus() != report.StatusFailed || !strings.Contains(r.Error, "limit of 100") || r.Verdict != report.VerdictQuarantine {
		t.Fatalf("event %v error %q verdict %q", ev, r.Error, r.Verdict)
	}
}

func TestUnconfiguredRegistryIsRefused(t *testing.T) {
	e := start(t, scanner.Config{})
	job := &customsv1.ScanJob{JobId: "x", Registry: "169.254.169.254", Repository: "latest/meta-data", Digest: "sha256:" + strings.Repeat("0", 64)}
	data, _ := proto.Marshal(job)
	if _, err := e.js.Publish(context.Background(), queue.JobsSubjectPrefix+"test", data); err != nil {
		t.Fatal(err)
	}
	var letter customsv1.DeadLetter
	if err := proto.Unmarshal(queuetest.WaitMsgs(t, e.js, queue.DLQStream, 1)[0].Data, &letter); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(letter.GetReason(), "not configured") {
		t.Errorf("reason = %q", letter.GetReason())
	}
}

// Jobs whose workers died on every delivery reach the dead-letter stream
// through the server's max-deliveries advisory.
func TestJobThatKilledEveryWorkerIsDeadLettered(t *testing.T) {
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	ctx := context.Background()
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, queue.JobsStream, jetstream.ConsumerConfig{
		Durable: queue.ScannerConsumer, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 500 * time.Millisecond, MaxDeliver: 2, FilterSubject: queue.JobsSubjectPrefix + ">",
	})
	if err != nil {
		t.Fatal(err)
	}
	job := &customsv1.ScanJob{JobId: "r/x@d", Registry: "r.test", Repository: "x", Digest: "sha256:" + strings.Repeat("1", 64)}
	data, _ := proto.Marshal(job)
	if _, err := js.Publish(ctx, queue.JobsSubjectPrefix+"test", data); err != nil {
		t.Fatal(err)
	}
	// Two workers take the job and die without a word.
	for i := 0; i < 2; i++ {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for range batch.Messages() {
			n++
		}
		if n != 1 {
			t.Fatalf("delivery %d: got %d messages", i+1, n)
		}
	}
	// The next pull finds the job out of deliveries: the server says so.
	if batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second)); err == nil {
		for range batch.Messages() {
			t.Fatal("a third delivery despite MaxDeliver 2")
		}
	}
	queuetest.WaitMsgs(t, js, queue.AdvisoriesStream, 1) // the server gave up on it
	e := startOn(t, ns, js, scanner.Config{MaxDeliver: 2, AckWait: time.Second})
	var letter customsv1.DeadLetter
	if err := proto.Unmarshal(queuetest.WaitMsgs(t, e.js, queue.DLQStream, 1)[0].Data, &letter); err != nil {
		t.Fatal(err)
	}
	if letter.GetJob().GetDigest() != job.GetDigest() || !strings.Contains(letter.GetReason(), "2 deliveries") {
		t.Errorf("dead letter = %v", &letter)
	}
	ev, _ := decodeReport(t, queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)[0].Data)
	if ev.GetStatus() != report.StatusFailed {
		t.Errorf("report event = %v", ev)
	}
	deadline := time.Now().Add(10 * time.Second)
	for jobsLeft(t, e.js) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the dead job is still in the work queue")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Scanners carry on after the NATS server restarts: the durable consumer
// and the queued job survive, the connection comes back.
func TestScannerRecoversFromNATSRestart(t *testing.T) {
	e := start(t, scanner.Config{})
	digest := e.push(t, "team/debian", scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...)))
	e.ns.Restart()
	// Like a registry retrying ingest's 503s, publish until NATS is back.
	deadline := time.Now().Add(30 * time.Second)
	for {
		job := &customsv1.ScanJob{JobId: "after-restart", Registry: e.host, Repository: "team/debian", Digest: digest, Insecure: true}
		data, _ := proto.Marshal(job)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := e.js.Publish(ctx, queue.JobsSubjectPrefix+"test", data, jetstream.WithMsgID(job.JobId))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish after restart: %v", err)
		}
	}
	ev, _ := decodeReport(t, queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)[0].Data)
	if ev.GetDigest() != digest || ev.GetStatus() != report.StatusComplete {
		t.Fatalf("event = %v", ev)
	}
}

// A registry that retries a webhook after JetStream's duplicate window
// (EventBridge retries for 24 h) must not cause a second scan; the same
// digest in another repository is its own job.
func TestRepeatedJobAfterDuplicateWindowIsNotRescanned(t *testing.T) {
	e := start(t, scanner.Config{})
	digest := e.push(t, "team/debian", scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...)))
	e.enqueue(t, "team/debian", digest)
	queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)
	waitJobs(t, e.js)
	before := e.reg.manifests.Load()

	// The same job under a new message id: JetStream's dedupe no longer helps.
	job := &customsv1.ScanJob{JobId: e.host + "/team/debian@" + digest, Source: "test", Registry: e.host,
		Repository: "team/debian", Digest: digest, Insecure: true}
	data, _ := proto.Marshal(job)
	if _, err := e.js.Publish(context.Background(), queue.JobsSubjectPrefix+"test", data, jetstream.WithMsgID("retry-after-window")); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, e.js)
	if n := e.reg.manifests.Load() - before; n != 0 {
		t.Fatalf("the repeated job made %d manifest requests: it was scanned again", n)
	}

	// Another repository holding the same digest is scanned.
	ref, _ := name.ParseReference(e.host+"/other/debian@"+digest, name.Insecure)
	src, _ := name.ParseReference(e.host+"/team/debian@"+digest, name.Insecure)
	img, err := remote.Image(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	before = e.reg.manifests.Load()
	e.enqueue(t, "other/debian", digest)
	waitJobs(t, e.js)
	if e.reg.manifests.Load() == before {
		t.Fatal("a job for another repository was not scanned")
	}
}

// waitJobs waits until the work queue is empty (every job acknowledged).
func waitJobs(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for jobsLeft(t, js) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("jobs still queued after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) gets(digest string) int {
	e.reg.mu.Lock()
	defer e.reg.mu.Unlock()
	return e.reg.blobGETs[digest]
}

// Layers are cached by diff_id across images: the second image built on
// the same base downloads only its own layer, and its report is what a
// full scan gives.
func TestSharedBaseLayerIsNotDownloadedAgain(t *testing.T) {
	e := start(t, scanner.Config{})
	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	baseDigest, _ := base.Digest()
	a := scantest.Image(t, base, scantest.Layer(t, scantest.Reg("srv/a/node_modules/left-pad/package.json", `{"name":"left-pad","version":"1.3.0"}`)))
	own := scantest.Layer(t, scantest.Reg("srv/b/node_modules/lodash/package.json", `{"name":"lodash","version":"4.17.21"}`),
		scantest.Whiteout("usr/share/doc"))
	ownDigest, _ := own.Digest()
	b := scantest.Image(t, base, own)

	e.enqueue(t, "team/a", e.push(t, "team/a", a))
	queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)
	if n := e.gets(baseDigest.String()); n != 1 {
		t.Fatalf("base layer fetched %d times for the first image", n)
	}
	e.enqueue(t, "team/b", e.push(t, "team/b", b))
	msgs := queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 2)
	if n := e.gets(baseDigest.String()); n != 1 {
		t.Errorf("base layer fetched %d times in all: the second image downloaded it again", n)
	}
	if n := e.gets(ownDigest.String()); n != 1 {
		t.Errorf("the second image's own layer fetched %d times", n)
	}
	_, r := decodeReport(t, msgs[1].Data)
	names := map[string]string{}
	for _, p := range r.Packages {
		names[p.Name] = p.Layer
	}
	if names["bash"] != baseDigest.String() || names["lodash"] != ownDigest.String() || names["left-pad"] != "" || r.OS.ID != "debian" {
		t.Fatalf("report of the second image: os %+v packages %v", r.OS, names)
	}
}

// cmd/scanner's memory limit follows the scans' budget: the hook is given
// the budget once the engine is built and again after each vulnerability
// database swap (what the process keeps has grown).
func TestMemoryLimitFollowsDatabaseSwaps(t *testing.T) {
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	if err := queue.EnsureStreams(context.Background(), js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var budget atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	runScanner(t, ctx, cancel, scanner.Config{Memory: 48 << 20}, scanner.Deps{JetStream: js, Log: zerolog.Nop(),
		MemoryLimit: func(m *scan.Memory) { budget.Store(m.Max()); calls.Add(1) }})
	if calls.Load() != 1 || budget.Load() != 48<<20 {
		t.Fatalf("after New: %d calls, budget %d; want 1 call with 48 MiB", calls.Load(), budget.Load())
	}
	db := vulndbtest.Build(t, time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC), "osv/other/GHSA-35jh-r3h4-6jhm.json")
	if _, _, err := vulndist.Publish(context.Background(), js, db); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no call after the database swap (%d calls)", calls.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
