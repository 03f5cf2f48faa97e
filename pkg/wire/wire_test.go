package wire_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

const key = "wire-test-signing-key-0123456789abcdef"

func sampleReport(packages int) *report.Report {
	r := &report.Report{
		Artifact:   report.Artifact{Registry: "r.test", Repository: "team/app", Digest: "sha256:" + strings.Repeat("ab", 32)},
		Status:     report.StatusComplete,
		Verdict:    report.VerdictQuarantine,
		FinishedAt: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC),
	}
	for i := range packages {
		r.Packages = append(r.Packages, report.Package{Name: fmt.Sprintf("p%d-%x", i, i*2654435761), Version: fmt.Sprint(i)})
	}
	r.Normalize()
	return r
}

// Round trip through a real JetStream, inline and by reference, and the
// signature checks on the way back.
func TestReportEventRoundTrip(t *testing.T) {
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	ctx := context.Background()
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	bodies, err := wire.EnsureReportBodies(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := wire.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	pub := &wire.Publisher{JS: js, Bodies: bodies, Signer: signer}
	reader := &wire.Reader{Bodies: bodies, Signer: signer}
	pushed := time.Date(2026, 12, 6, 7, 59, 0, 0, time.UTC)
	stream, err := js.Stream(ctx, queue.ReportsStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 40000} { // inline; over InlineMax compressed
		r := sampleReport(n)
		r.Artifact.Digest = fmt.Sprintf("sha256:%064x", n)
		if err := pub.Publish(ctx, "job", pushed, r); err != nil {
			t.Fatal(err)
		}
		m, err := stream.GetLastMsgForSubject(ctx, wire.ReportSubject(r.Artifact.Digest))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := reader.Decode(ctx, m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatalf("%d packages: %v", n, err)
		}
		if len(ev.Report.Packages) != n || ev.Report.Verdict != report.VerdictQuarantine || !ev.RequestedAt.Equal(pushed) {
			t.Errorf("%d packages: got %d packages, verdict %s, pushed %v", n, len(ev.Report.Packages), ev.Report.Verdict, ev.RequestedAt)
		}
		// Any other key, or none, is refused.
		other, _ := wire.NewSigner(strings.Repeat("z", 40))
		if _, err := (&wire.Reader{Bodies: bodies, Signer: other}).Decode(ctx, m.Subject, m.Header, m.Data); !queue.IsPermanent(err) {
			t.Errorf("another key: %v", err)
		}
		if _, err := reader.Decode(ctx, m.Subject, nil, m.Data); !queue.IsPermanent(err) {
			t.Errorf("unsigned: %v", err)
		}
	}

	ta := &customsv1.TagsAdded{Registry: "r.test", Repository: "team/app", Digest: "sha256:" + strings.Repeat("cd", 32),
		Tags: []string{"v2"}, RequestedAt: timestamppb.New(pushed)}
	if err := pub.PublishTags(ctx, ta); err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, wire.TagsSubject(ta.GetDigest()))
	if err != nil {
		t.Fatal(err)
	}
	if !wire.IsTagsSubject(m.Subject) || wire.IsTagsSubject(wire.ReportSubject(ta.GetDigest())) {
		t.Errorf("IsTagsSubject(%s)", m.Subject)
	}
	got, err := reader.DecodeTags(m.Subject, m.Header, m.Data)
	if err != nil || got.GetTags()[0] != "v2" {
		t.Fatalf("tags: %v %v", got, err)
	}
}

func TestIDs(t *testing.T) {
	job := &customsv1.ScanJob{JobId: wire.JobID("Registry.Test:443", "team/app", "sha256:1"), Tags: []string{"b", "a", "b"}, EventId: "ev"}
	if job.GetJobId() != "registry.test/team/app@sha256:1" {
		t.Errorf("JobID = %s", job.GetJobId())
	}
	if id := wire.JobMsgID(job); id != "registry.test/team/app@sha256:1#a,b#ev" {
		t.Errorf("JobMsgID = %s", id)
	}
	r := sampleReport(0)
	complete := wire.ReportMsgID(r, time.Unix(5, 0))
	r.Status = report.StatusFailed
	if failed := wire.ReportMsgID(r, time.Unix(5, 0)); failed == complete {
		t.Errorf("failed and complete reports share the id %s", failed)
	}
	if wire.ReportMsgID(r, time.Unix(5, 0)) == wire.ReportMsgID(r, time.Unix(6, 0)) {
		t.Error("two pushes share a report id")
	}
	if _, err := wire.NewSigner("short"); err == nil {
		t.Error("a short key was accepted")
	}
	for cfg, ok := range map[wire.SigningConfig]bool{
		{}:                            false,
		{Key: key}:                    true,
		{Mode: "off"}:                 true,
		{Mode: "sometimes", Key: key}: false,
		{Key: "short"}:                false,
	} {
		if _, err := cfg.Signer(); (err == nil) != ok {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

func TestJobRoundTrip(t *testing.T) {
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	ctx := context.Background()
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	job := &customsv1.ScanJob{JobId: wire.JobID("r.test", "team/app", "sha256:1"), Source: "distribution",
		Registry: "r.test", Repository: "team/app", Digest: "sha256:1", Tags: []string{"latest"}, EventId: "ev-1"}
	for i, wantDup := range []bool{false, true} { // a webhook retry is the same message
		dup, err := wire.PublishJob(ctx, js, job)
		if err != nil || dup != wantDup {
			t.Fatalf("publish %d: duplicate %v, %v", i, dup, err)
		}
	}
	s, err := js.Stream(ctx, queue.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, wire.JobSubject("distribution"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := wire.DecodeJob(m.Data)
	if err != nil || got.GetJobId() != job.GetJobId() || got.GetTags()[0] != "latest" {
		t.Fatalf("decoded %v, %v", got, err)
	}
	if _, err := wire.DecodeJob([]byte{0x0a, 0x01, 'x'}); err == nil {
		t.Error("a job without registry, repository or digest was accepted")
	}
}

func TestPartOfIndex(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	other := "sha256:" + strings.Repeat("b", 64)
	for _, c := range []struct {
		job  string
		want bool
	}{
		{wire.JobID("registry:5000", "team/app", d), false},
		{wire.JobID("registry:5000", "team/app", other), true},
		{"", false},
	} {
		ev := &wire.Event{Report: &report.Report{Artifact: report.Artifact{Digest: d}}, JobID: c.job}
		if got := ev.PartOfIndex(); got != c.want {
			t.Errorf("job %q: PartOfIndex = %v, want %v", c.job, got, c.want)
		}
	}
}
