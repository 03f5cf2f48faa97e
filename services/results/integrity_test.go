package results_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/results"
)

func quarantined(repo string, n int, finished time.Time) *report.Report {
	r := newReport(repo, n, finished)
	r.Verdict = report.VerdictQuarantine
	r.VerdictRule = "default:malware"
	r.Findings = []report.Finding{{Kind: report.KindMalware, Rule: "xmrig", Severity: report.SeverityCritical, Path: "usr/bin/xmrig"}}
	return r
}

func failed(repo string, n int, finished time.Time, reason string) *report.Report {
	r := newReport(repo, n, finished)
	r.Status, r.Error, r.Verdict, r.Packages = report.StatusFailed, reason, report.VerdictWarn, []report.Package{}
	return r
}

func TestFailedScanNeverReplacesCompleteReport(t *testing.T) {
	e := start(t)
	base := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	e.publish(t, quarantined("team/app", 1, base))
	e.waitReport(t, digest(1))

	// A webhook naming another repository that lacks the digest: 404.
	e.publish(t, failed("other/app", 1, base.Add(time.Minute), "scan: get manifest: 404 Not Found"))
	// A transient failure in the same repository, later still.
	e.publish(t, failed("team/app", 1, base.Add(2*time.Minute), "registry unreachable"))
	deadline := time.Now().Add(20 * time.Second)
	var got *report.Report
	for {
		got = e.waitReport(t, digest(1))
		if got.LatestAttempt != nil && got.LatestAttempt.Repository == "team/app" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.Status != report.StatusComplete || got.Verdict != report.VerdictQuarantine || len(got.Findings) != 1 {
		t.Fatalf("a failed scan replaced the complete report: status %s verdict %s findings %d", got.Status, got.Verdict, len(got.Findings))
	}
	if got.LatestAttempt == nil || got.LatestAttempt.Status != report.StatusFailed ||
		got.LatestAttempt.Error != "registry unreachable" || got.LatestAttempt.Repository != "team/app" {
		t.Fatalf("latest_attempt = %+v, want the later failure", got.LatestAttempt)
	}

	// Every failed attempt is kept, newest first.
	_, body := e.get(t, "/v1/reports/"+digest(1)+"/attempts")
	var att struct {
		Attempts []report.Report `json:"attempts"`
	}
	if err := json.Unmarshal(body, &att); err != nil {
		t.Fatal(err)
	}
	if len(att.Attempts) != 2 || att.Attempts[0].Error != "registry unreachable" || att.Attempts[1].Artifact.Repository != "other/app" {
		t.Errorf("attempts = %s", body)
	}

	// The other repository lists its failed push; the owner's listing
	// still shows the quarantine.
	var list struct {
		Reports []reportSummary `json:"reports"`
	}
	_, body = e.get(t, "/v1/reports?repository=other/app")
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Reports) != 1 || list.Reports[0].Status != report.StatusFailed {
		t.Errorf("other/app listing = %s", body)
	}
	_, body = e.get(t, "/v1/reports?repository=team/app")
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Reports) != 1 || list.Reports[0].Verdict != report.VerdictQuarantine || list.Reports[0].Status != report.StatusComplete {
		t.Errorf("team/app listing = %s", body)
	}

	// A new complete scan still replaces the report.
	later := newReport("team/app", 1, base.Add(time.Hour))
	e.publish(t, later)
	deadline = time.Now().Add(20 * time.Second)
	for {
		got = e.waitReport(t, digest(1))
		if got.Verdict == report.VerdictPass || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.Verdict != report.VerdictPass || got.LatestAttempt != nil {
		t.Errorf("a later complete report was not stored: verdict %s attempt %+v", got.Verdict, got.LatestAttempt)
	}
}

type reportSummary struct {
	Digest  string   `json:"digest"`
	Status  string   `json:"status"`
	Verdict string   `json:"verdict"`
	Tags    []string `json:"tags"`
}

func forge(t *testing.T, r *report.Report) []byte {
	t.Helper()
	body, err := wire.EncodeReport(r)
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(&customsv1.ScanCompleted{
		JobId: r.Artifact.Digest, Registry: r.Artifact.Registry, Repository: r.Artifact.Repository,
		Digest: r.Artifact.Digest, Verdict: r.Verdict, Status: r.Status, Report: body, ReportEncoding: "gzip",
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestForgedReportEventIsRefusedAndDeadLettered(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	base := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	e.publish(t, quarantined("team/app", 1, base))
	e.waitReport(t, digest(1))

	forged := newReport("team/app", 1, base.Add(time.Hour)) // a newer "pass"
	subject := wire.ReportSubject(digest(1))
	// Unsigned.
	if _, err := e.js.Publish(ctx, subject, forge(t, forged)); err != nil {
		t.Fatal(err)
	}
	// Signed with another key.
	other, err := wire.NewSigner(strings.Repeat("x", 40))
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = forge(t, forged)
	msg.Header.Set(wire.SignatureHeader, other.Sign(subject, msg.Data))
	if _, err := e.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	// Signed with the right key for another subject (replayed elsewhere).
	msg = nats.NewMsg(subject)
	msg.Data = forge(t, forged)
	msg.Header.Set(wire.SignatureHeader, testSigner(t).Sign(wire.ReportSubject(digest(2)), msg.Data))
	if _, err := e.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}

	dead := queuetest.WaitMsgs(t, e.js, queue.DLQStream, 3)
	for _, m := range dead {
		if m.Subject != results.DeadReportSubject {
			t.Errorf("dead letter on %s", m.Subject)
		}
		reason := m.Header.Get("Customs-Dead-Reason")
		if !strings.Contains(reason, "signature") && !strings.Contains(reason, "not signed") {
			t.Errorf("dead letter reason %q", reason)
		}
		if m.Header.Get("Customs-Dead-Subject") != subject {
			t.Errorf("dead letter subject header %q", m.Header.Get("Customs-Dead-Subject"))
		}
	}
	if got := e.waitReport(t, digest(1)); got.Verdict != report.VerdictQuarantine {
		t.Fatalf("a forged event replaced the quarantine report: verdict %s", got.Verdict)
	}
	// Undecodable (but signed) events are dead-lettered too, not dropped.
	junk := []byte("not a protobuf \xff\xff")
	msg = nats.NewMsg(subject)
	msg.Data = junk
	msg.Header.Set(wire.SignatureHeader, testSigner(t).Sign(subject, junk))
	if _, err := e.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	dead = queuetest.WaitMsgs(t, e.js, queue.DLQStream, 4)
	if r := dead[3].Header.Get("Customs-Dead-Reason"); !strings.Contains(r, "decode") {
		t.Errorf("undecodable event dead-lettered with %q", r)
	}
}

func TestLargeReportTravelsByReference(t *testing.T) {
	e := start(t)
	r := quarantined("team/big", 1, time.Now().UTC().Truncate(time.Millisecond))
	// ~60,000 packages with unique names: several MiB compressed, far past
	// NATS's 1 MiB message limit.
	for i := range 60000 {
		r.Packages = append(r.Packages, report.Package{
			Name: fmt.Sprintf("pkg-%d-%x", i, i*2654435761), Version: fmt.Sprintf("1.%d.%d", i%97, i%1013),
			Ecosystem: "npm", PURL: fmt.Sprintf("pkg:npm/pkg-%d-%x@1.%d", i, i*40503, i), Path: fmt.Sprintf("app/node_modules/pkg-%d/package.json", i),
		})
	}
	body, err := wire.EncodeReport(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) <= wire.InlineMax {
		t.Fatalf("test report is only %d bytes compressed", len(body))
	}
	e.publish(t, r)
	got := e.waitReport(t, digest(1))
	if got.Verdict != report.VerdictQuarantine || len(got.Packages) != len(r.Packages) {
		t.Fatalf("large report: verdict %s, %d packages, want quarantine and %d", got.Verdict, len(got.Packages), len(r.Packages))
	}
	// The event itself stayed small.
	for _, m := range queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1) {
		if len(m.Data) > 64<<10 {
			t.Errorf("report event is %d bytes", len(m.Data))
		}
	}

	// The object it points to cannot be swapped: a different body under
	// the same name no longer matches the signed digest.
	bodies, err := e.js.ObjectStore(context.Background(), wire.ReportBodiesBucket)
	if err != nil {
		t.Fatal(err)
	}
	names, err := bodies.List(context.Background())
	if err != nil || len(names) != 1 {
		t.Fatalf("objects: %v %v", names, err)
	}
	sub, err := e.js.Stream(context.Background(), queue.ReportsStream)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := sub.GetLastMsgForSubject(context.Background(), wire.ReportSubject(digest(1)))
	if err != nil {
		t.Fatal(err)
	}
	pass := newReport("team/big", 1, time.Now().UTC().Add(time.Hour))
	passBody, _ := wire.EncodeReport(pass)
	if _, err := bodies.PutBytes(context.Background(), names[0].Name, passBody); err != nil {
		t.Fatal(err)
	}
	replay := &nats.Msg{Subject: orig.Subject, Data: orig.Data, Header: nats.Header{}}
	replay.Header.Set(wire.SignatureHeader, orig.Header.Get(wire.SignatureHeader))
	if _, err := e.js.PublishMsg(context.Background(), replay); err != nil {
		t.Fatal(err)
	}
	dead := queuetest.WaitMsgs(t, e.js, queue.DLQStream, 1)
	if reason := dead[0].Header.Get("Customs-Dead-Reason"); !strings.Contains(reason, "does not match") {
		t.Errorf("swapped object dead-lettered with %q", reason)
	}
	if got := e.waitReport(t, digest(1)); got.Verdict != report.VerdictQuarantine {
		t.Fatalf("a swapped object replaced the report: verdict %s", got.Verdict)
	}
}

func TestListingOrdersByPushAndMovesTags(t *testing.T) {
	e := start(t)
	base := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	// latest is pushed twice: the first image is slow to scan and finishes
	// after the second.
	first := newReport("team/app", 1, base.Add(10*time.Minute))
	firstPush := base
	first.RequestedAt, first.Artifact.Tags = &firstPush, []string{"latest", "v1"}
	second := newReport("team/app", 2, base.Add(2*time.Minute))
	secondPush := base.Add(time.Minute)
	second.RequestedAt, second.Artifact.Tags = &secondPush, []string{"latest"}
	e.publish(t, second)
	e.publish(t, first)
	e.waitReport(t, digest(1))
	e.waitReport(t, digest(2))
	_, body := e.get(t, "/v1/reports?repository=team/app")
	var list struct {
		Reports []reportSummary `json:"reports"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Reports) != 2 || list.Reports[0].Digest != digest(2) || list.Reports[1].Digest != digest(1) {
		t.Fatalf("listing is not newest push first: %s", body)
	}
	if fmt.Sprint(list.Reports[0].Tags) != "[latest]" || fmt.Sprint(list.Reports[1].Tags) != "[v1]" {
		t.Errorf("tags: newest %v, older %v; want latest only on the newest push", list.Reports[0].Tags, list.Reports[1].Tags)
	}
}

// The consumer must not be left stuck by refused events: a valid event
// after them is still stored.
func TestRefusedEventsDoNotBlockTheQueue(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := e.js.Publish(ctx, wire.ReportSubject(digest(i+10)), forge(t, newReport("x/y", i+10, time.Now()))); err != nil {
			t.Fatal(err)
		}
	}
	e.publish(t, newReport("team/app", 1, time.Now().UTC()))
	e.waitReport(t, digest(1))
	cons, err := e.js.Consumer(ctx, queue.ReportsStream, queue.ResultsConsumer)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer still has work: %+v", info)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := e.get(t, "/v1/reports/"+digest(10)); code != http.StatusNotFound {
		t.Errorf("an unsigned report was stored: %d", code)
	}
}

func TestTagsAddedJoinTheReportAndMoveInTheListing(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	base := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	old := newReport("team/app", 1, base.Add(time.Minute))
	oldPush := base
	old.RequestedAt, old.Artifact.Tags = &oldPush, []string{"v1"}
	cur := newReport("team/app", 2, base.Add(3*time.Minute))
	curPush := base.Add(2 * time.Minute)
	cur.RequestedAt, cur.Artifact.Tags = &curPush, []string{"latest"}
	p := &wire.Publisher{JS: e.js, Signer: testSigner(t)}
	// The tags event arrives before its report: it waits for it.
	later := base.Add(5 * time.Minute)
	if err := p.PublishTags(ctx, &customsv1.TagsAdded{Registry: old.Artifact.Registry, Repository: "team/app",
		Digest: digest(1), Tags: []string{"latest"}, RequestedAt: timestamppb.New(later)}); err != nil {
		t.Fatal(err)
	}
	e.publish(t, cur)
	e.publish(t, old)
	deadline := time.Now().Add(30 * time.Second)
	var r *report.Report
	for {
		r = e.waitReport(t, digest(1))
		if len(r.Artifact.Tags) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if fmt.Sprint(r.Artifact.Tags) != "[latest v1]" {
		t.Fatalf("report tags %v, want [latest v1]", r.Artifact.Tags)
	}
	_, body := e.get(t, "/v1/reports?repository=team/app")
	var list struct {
		Reports []reportSummary `json:"reports"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Reports) != 2 || list.Reports[0].Digest != digest(1) || fmt.Sprint(list.Reports[0].Tags) != "[latest v1]" ||
		list.Reports[1].Digest != digest(2) || len(list.Reports[1].Tags) != 0 {
		t.Fatalf("latest did not move to the re-tagged digest: %s", body)
	}
}
