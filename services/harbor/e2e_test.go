package harbor_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	harborfmt "github.com/customs-scan/customs/pkg/formats/harbor"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/regauth/regauthtest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/malware"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/store/storetest"
	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/harbor"
	"github.com/customs-scan/customs/services/results"
	"github.com/customs-scan/customs/services/scanner"
)

const (
	// Harbor's temporary scanner robot: the secret holds a ':' (only the
	// first one separates the name).
	robotName   = "robot$customs-scanner-3f9a2c"
	robotSecret = "Rb7:kQ9x2LmP4vW8zN1sT6yH"
	wrongSecret = "Wr0ng-robot-secret-4e1d77"

	signingKey = "harbor-e2e-report-signing-key-0123456789"
)

// stack is Customs as a Harbor scanner, every part real and in-process:
// NATS with JetStream, S3 (gofakes3), a scanner, results, the adapter, and
// a registry that takes only the robot's Basic credentials.
type stack struct {
	a        *adapter
	js       jetstream.JetStream
	bucket   store.Bucket
	registry string // host:port behind the robot's Basic auth
	direct   string // the same registry without auth, for pushes
	logs     *svcmaintest.LogBuffer

	mu   sync.Mutex
	jobs []*nats.Msg // every job published, as it was on the wire
}

func startStack(t *testing.T) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns := queuetest.Start(t)
	nc, js := ns.Connect(t)
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	s := &stack{js: js, logs: &svcmaintest.LogBuffer{}}
	// The jobs stream is a work queue (acked jobs are gone): a plain
	// subscription keeps a copy of every job as published.
	sub, err := nc.Subscribe(queue.JobsSubjectPrefix+">", func(m *nats.Msg) {
		s.mu.Lock()
		s.jobs = append(s.jobs, m)
		s.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	db := vulndbtest.Build(t, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "osv/other/GHSA-35jh-r3h4-6jhm.json")
	if _, _, err := vulndist.Publish(ctx, js, db); err != nil {
		t.Fatal(err)
	}

	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	direct := httptest.NewServer(inner)
	t.Cleanup(direct.Close)
	front := httptest.NewServer(regauthtest.BasicAuth(inner, robotName, robotSecret))
	t.Cleanup(front.Close)
	s.direct, s.registry = strings.TrimPrefix(direct.URL, "http://"), strings.TrimPrefix(front.URL, "http://")

	s3 := storetest.Start(t)
	s.bucket = s3.Bucket(t, "customs-reports")
	logger := zerolog.New(s.logs).Level(zerolog.DebugLevel)

	scn, err := scanner.New(scanner.Config{Workers: 2, AckWait: 5 * time.Second, MaxDeliver: 2,
		InsecureRegistries: []string{s.registry}, JobKey: testJobKey, Signing: wire.SigningConfig{Key: signingKey}},
		scanner.Deps{JetStream: js, Log: logger, RemoteOptions: []remote.Option{remote.WithRetryBackoff(remote.Backoff{Steps: 1})}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := results.New(results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: "e2e-admin-token",
		Signing: wire.SigningConfig{Key: signingKey}}, results.Deps{JetStream: js, Bucket: s3.Bucket(t, "customs-reports"), Log: logger})
	if err != nil {
		t.Fatal(err)
	}
	for name, serve := range map[string]func(context.Context, net.Listener) error{"scanner": scn.Serve, "results": res.Serve} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- serve(ctx, ln) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	// The adapter reads the bucket through a client of its own.
	s.a = serveAdapter(t, js, s3.Bucket(t, "customs-reports"),
		harbor.Config{InsecureRegistries: []string{s.registry}}, harbor.Deps{}, s.logs)
	return s
}

func (s *stack) push(t *testing.T, repo string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(s.direct+"/"+repo+":latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// await polls id's report the way Harbor does: on 302 it waits
// Refresh-After seconds and asks the Location again, until 200 or 500.
// every, when non-zero, replaces Refresh-After (to measure latency finely).
func (a *adapter) await(t *testing.T, id, accept string, every time.Duration) (x exchange, polls int) {
	t.Helper()
	path := "/api/v1/scan/" + id + "/report"
	deadline := time.Now().Add(90 * time.Second)
	for {
		req := a.request(t, http.MethodGet, path)
		req.Header.Set("Accept", accept)
		x = do(t, a.client, req, nil, true)
		polls++
		if x.status != http.StatusFound {
			return x, polls
		}
		wait := every
		if wait == 0 {
			n, err := strconv.Atoi(x.header.Get("Refresh-After"))
			if err != nil || n < 1 {
				t.Fatalf("302 with Refresh-After %q", x.header.Get("Refresh-After"))
			}
			wait = time.Duration(n) * time.Second
		}
		if loc := x.header.Get("Location"); loc != path {
			t.Fatalf("302 Location %q, want %q", loc, path)
		}
		if time.Now().After(deadline) {
			t.Fatalf("report of %s still pending after %d polls", id, polls)
		}
		time.Sleep(wait)
	}
}

func vulnReport(t *testing.T, x exchange) *harborfmt.VulnerabilityReport {
	t.Helper()
	if x.status != http.StatusOK {
		t.Fatalf("report: %d %s", x.status, x.body)
	}
	var r harborfmt.VulnerabilityReport
	if err := json.Unmarshal(x.body, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func (s *stack) capturedJobs(t *testing.T) []*customsv1.ScanJob {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*customsv1.ScanJob
	for _, m := range s.jobs {
		j := &customsv1.ScanJob{}
		if err := proto.Unmarshal(m.Data, j); err != nil {
			t.Fatal(err)
		}
		out = append(out, j)
	}
	return out
}

// Harbor's view of issue 10: register Customs (metadata), ask for scans
// with the per-scan robot's credentials, poll following Refresh-After,
// read the reports; malware blocks as a Critical item; a digest scanned
// before answers from its report; a wrong robot password ends in the
// spec's error with the registry's reason; and the robot's secret is
// nowhere: not in any NATS message (jobs as published, dead letters, KV,
// reports), not in S3, not in the logs.
func TestHarborDrivesCustoms(t *testing.T) {
	s := startStack(t)
	a := s.a
	registryURL := "http://" + s.registry
	robot := basic(robotName, robotSecret)

	// Registration: Harbor reads the metadata.
	var md struct {
		Properties map[string]string `json:"properties"`
	}
	if x := a.metadata(t); x.status != http.StatusOK || json.Unmarshal(x.body, &md) != nil ||
		md.Properties["harbor.scanner-adapter/vulnerability-database-updated-at"] != "2026-11-01T00:00:00Z" {
		t.Fatalf("metadata: %d %s", x.status, x.body)
	}

	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	lodash := scantest.Layer(t, scantest.Reg("srv/app/node_modules/lodash/package.json", `{"name": "lodash", "version": "4.17.20"}`))
	app := s.push(t, "library/app", scantest.Image(t, base, lodash))

	// A new digest (no layer cached yet), polled finely to measure.
	start := time.Now()
	id := a.scanID(t, scanRequest(registryURL, robot, "library/app", app, "1.0"))
	x, _ := a.await(t, id, harborfmt.MediaTypeVulnerability, 10*time.Millisecond)
	newFine := time.Since(start)
	rep := vulnReport(t, x)
	if rep.Severity != harborfmt.SeverityHigh || rep.Artifact.Digest != app || rep.Artifact.Tag != "1.0" {
		t.Errorf("app report: severity %s artifact %+v", rep.Severity, rep.Artifact)
	}
	var cve *harborfmt.VulnerabilityItem
	for i, v := range rep.Vulnerabilities {
		if v.ID == "CVE-2021-23337" {
			cve = &rep.Vulnerabilities[i]
		}
	}
	if cve == nil || cve.Package != "lodash" || cve.Version != "4.17.20" || cve.FixVersion != "4.17.21" ||
		cve.Severity != harborfmt.SeverityHigh || cve.Layer == nil || cve.Layer.Digest == "" {
		t.Fatalf("lodash vulnerability: %+v in %s", cve, x.body)
	}

	// The same digest again: answered from the stored report, no job.
	jobsBefore := len(s.capturedJobs(t))
	start = time.Now()
	again := a.scanID(t, scanRequest(registryURL, robot, "library/app", app, "1.0"))
	x, againPolls := a.await(t, again, harborfmt.MediaTypeHarborVulnerability, 0)
	storedLatency := time.Since(start)
	if againPolls != 1 || vulnReport(t, x).Severity != harborfmt.SeverityHigh ||
		x.header.Get("Content-Type") != harborfmt.MediaTypeHarborVulnerability {
		t.Errorf("already scanned: %d polls, %d %v", againPolls, x.status, x.header)
	}
	if n := len(s.capturedJobs(t)); n != jobsBefore {
		t.Errorf("a digest already scanned made %d new jobs", n-jobsBefore)
	}

	// Malware: a Critical CUSTOMS-MALWARE item, the file as package.
	// Harbor's pace: Refresh-After.
	eicar := s.push(t, "library/eicar", scantest.Image(t, base, scantest.Layer(t, scantest.Reg("srv/eicar.com", string(malware.EICAR())))))
	start = time.Now()
	id = a.scanID(t, scanRequest(registryURL, robot, "library/eicar", eicar, ""))
	x, polls := a.await(t, id, harborfmt.MediaTypeVulnerability, 0)
	newHarborPace := time.Since(start)
	rep = vulnReport(t, x)
	var mal *harborfmt.VulnerabilityItem
	for i, v := range rep.Vulnerabilities {
		if strings.HasPrefix(v.ID, harborfmt.MalwarePrefix) {
			mal = &rep.Vulnerabilities[i]
		}
	}
	if rep.Severity != harborfmt.SeverityCritical || mal == nil || mal.Severity != harborfmt.SeverityCritical || mal.Package != "srv/eicar.com" {
		t.Fatalf("EICAR image report: %s", x.body)
	}

	// Two requests for one new digest at once: one scan (the scanner's
	// record merges the second job), both answered.
	raced := s.push(t, "library/raced", scantest.Image(t, base, scantest.Layer(t, scantest.Reg("srv/raced.txt", "raced"))))
	id1 := a.scanID(t, scanRequest(registryURL, robot, "library/raced", raced, ""))
	id2 := a.scanID(t, scanRequest(registryURL, robot, "library/raced", raced, ""))
	for _, id := range []string{id1, id2} {
		if x, _ := a.await(t, id, harborfmt.MediaTypeVulnerability, 0); x.status != http.StatusOK {
			t.Errorf("raced request %s: %d %s", id, x.status, x.body)
		}
	}

	// A wrong robot password: retried, then the spec's error with the
	// registry's answer as the reason.
	locked := s.push(t, "library/locked", scantest.Image(t, base, scantest.Layer(t, scantest.Reg("srv/locked.txt", "locked"))))
	id = a.scanID(t, scanRequest(registryURL, basic(robotName, wrongSecret), "library/locked", locked, ""))
	x, _ = a.await(t, id, harborfmt.MediaTypeVulnerability, 0)
	if x.status != http.StatusInternalServerError {
		t.Fatalf("wrong robot password: %d %s", x.status, x.body)
	}
	if msg := errorMessage(t, x.body); !strings.Contains(msg, "scan failed") || !strings.Contains(msg, "401 Unauthorized") ||
		!strings.Contains(msg, "UNAUTHORIZED") {
		t.Errorf("wrong robot password reason: %q", msg)
	}
	var letter customsv1.DeadLetter
	dl := queuetest.WaitMsgs(t, s.js, queue.DLQStream, 1)
	if err := proto.Unmarshal(dl[len(dl)-1].Data, &letter); err != nil {
		t.Fatal(err)
	}
	if letter.GetJob().GetDigest() != locked || len(letter.GetJob().GetSealedAuthorization()) != 0 {
		t.Errorf("dead letter: %v", letter.GetJob())
	}

	// The control: Harbor's jobs did carry the credentials, sealed.
	sealed := 0
	for _, j := range s.capturedJobs(t) {
		if j.GetSource() == "harbor" && len(j.GetSealedAuthorization()) > 0 {
			sealed++
		}
	}
	if sealed != 5 { // app, eicar, raced twice, locked
		t.Errorf("%d jobs with sealed credentials, want 5", sealed)
	}
	s.checkNoSecret(t, []string{robotSecret, wrongSecret,
		strings.TrimPrefix(robot, "Basic "), strings.TrimPrefix(basic(robotName, wrongSecret), "Basic ")})

	t.Logf("figure: new digest (Debian-like base + npm layer, nothing cached), polled every 10 ms: POST → report %v", newFine.Round(time.Millisecond))
	t.Logf("figure: new digest (base layer cached), Harbor's pace (Refresh-After 1 s): POST → report %v (%d polls)", newHarborPace.Round(time.Millisecond), polls)
	t.Logf("figure: digest already scanned: POST → report %v (one poll)", storedLatency.Round(time.Microsecond))
}

// checkNoSecret looks for secrets in every message of every stream (the
// jobs as published included, report events decompressed), every object
// of the bucket, and the logs of all services.
func (s *stack) checkNoSecret(t *testing.T, secrets []string) {
	t.Helper()
	ctx := context.Background()
	var streams strings.Builder
	names := s.js.StreamNames(ctx)
	seen := map[string]bool{}
	for n := range names.Name() {
		seen[n] = true
		st, err := s.js.Stream(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if err != nil {
				continue // deleted (work queue, KV updates)
			}
			streams.WriteString(m.Subject + "\n")
			for k, vs := range m.Header {
				streams.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
			}
			streams.Write(m.Data)
			if n == queue.ReportsStream && !wire.IsTagsSubject(m.Subject) {
				ev := &customsv1.ScanCompleted{}
				if err := proto.Unmarshal(m.Data, ev); err != nil {
					t.Fatal(err)
				}
				zr, err := gzip.NewReader(bytes.NewReader(ev.GetReport()))
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(zr)
				streams.Write(raw)
			}
			streams.WriteString("\n")
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{queue.JobsStream, queue.DLQStream, queue.ReportsStream, queue.AdvisoriesStream,
		"KV_" + harbor.ScansBucket, "KV_customs-verdicts", "KV_" + scanner.ScannedBucket} {
		if !seen[want] {
			t.Errorf("stream %s was not searched", want)
		}
	}
	s.mu.Lock()
	for _, m := range s.jobs {
		streams.Write(m.Data)
		streams.WriteString("\n")
	}
	s.mu.Unlock()

	var objects strings.Builder
	keys, err := s.bucket.List(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		b, err := s.bucket.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		objects.WriteString(k + "\n")
		objects.Write(b)
	}
	everything := map[string]string{"NATS": streams.String(), "S3": objects.String(), "logs": s.logs.String()}
	// What was searched holds what the test did: the reports, the failure.
	for where, text := range everything {
		if !strings.Contains(text, "UNAUTHORIZED") || !strings.Contains(text, "library/eicar") {
			t.Errorf("%s: the scans are not in what was searched", where)
		}
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s carries a robot credential (%.6s…)", where, secret)
			}
		}
	}
	if os.Getenv("HARBOR_E2E_LOGS") != "" {
		t.Log(s.logs.String())
	}
	t.Logf("searched %d bytes of NATS messages, %d S3 objects, %d bytes of logs", len(everything["NATS"]), len(keys), len(everything["logs"]))
}
