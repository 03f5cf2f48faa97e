package scanner_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/scanner"
)

// push enqueues a job as ingest does for one webhook event.
func (e *env) pushEvent(t *testing.T, repo, digest, eventID string, tags ...string) {
	t.Helper()
	job := &customsv1.ScanJob{JobId: e.host + "/" + repo + "@" + digest, Source: "test", Registry: e.host,
		Repository: repo, Digest: digest, Tags: tags, Insecure: true, RequestedAt: timestamppb.Now(), EventId: eventID}
	data, _ := proto.Marshal(job)
	if _, err := e.js.Publish(context.Background(), queue.JobsSubjectPrefix+"test", data, jetstream.WithMsgID(wire.JobMsgID(job))); err != nil {
		t.Fatal(err)
	}
}

// A second tag pushed for a digest already scanned is recorded (a signed
// TagsAdded for results) without pulling the image again.
func TestNewTagOfScannedDigestIsRecordedWithoutRescan(t *testing.T) {
	e := start(t, scanner.Config{})
	digest := e.push(t, "team/app", scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...)))
	e.pushEvent(t, "team/app", digest, "ev-1", "latest")
	queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)
	waitJobs(t, e.js)
	before := e.reg.manifests.Load()

	e.pushEvent(t, "team/app", digest, "ev-2", "v1.2", "latest")
	msgs := queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 2)
	waitJobs(t, e.js)
	if n := e.reg.manifests.Load() - before; n != 0 {
		t.Fatalf("the new tag made %d manifest requests: the image was scanned again", n)
	}
	m := msgs[1]
	if m.Subject != wire.TagsSubject(digest) {
		t.Fatalf("second event on %s, want %s", m.Subject, wire.TagsSubject(digest))
	}
	signer, _ := wire.NewSigner(testSigningKey)
	ev, err := (&wire.Reader{Signer: signer}).DecodeTags(m.Subject, m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ev.GetTags()) != "[v1.2]" || ev.GetRepository() != "team/app" || ev.GetRequestedAt() == nil {
		t.Errorf("tags event = %v", ev)
	}

	// The same webhook delivered again: nothing new.
	e.pushEvent(t, "team/app", digest, "ev-3", "v1.2")
	waitJobs(t, e.js)
	info, _ := mustStream(t, e.js, queue.ReportsStream).Info(context.Background())
	if info.State.Msgs != 2 {
		t.Errorf("%d report-stream messages after a repeated tag, want 2", info.State.Msgs)
	}
}

// A push whose scan failed (the image was not there yet) is scanned again
// when pushed again: a failed attempt is not remembered as scanned.
func TestRepushAfterFailedScanIsScanned(t *testing.T) {
	e := start(t, scanner.Config{})
	img := scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...))
	d, _ := img.Digest()
	digest := d.String()
	e.pushEvent(t, "team/app", digest, "ev-1", "latest") // 404: not pushed yet
	msgs := queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)
	if ev, _ := decodeReport(t, msgs[0].Data); ev.GetStatus() != report.StatusFailed {
		t.Fatalf("first attempt %s, want failed", ev.GetStatus())
	}
	waitJobs(t, e.js)
	e.push(t, "team/app", img)
	e.pushEvent(t, "team/app", digest, "ev-2", "latest") // the same tag, a new push
	msgs = queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 2)
	ev, r := decodeReport(t, msgs[1].Data)
	if ev.GetStatus() != report.StatusComplete || len(r.Packages) == 0 {
		t.Fatalf("re-push: %s with %d packages, want a complete scan", ev.GetStatus(), len(r.Packages))
	}
	// Failed and complete reports of one digest never share a message id.
	if a, b := msgs[0].Header.Get(jetstream.MsgIDHeader), msgs[1].Header.Get(jetstream.MsgIDHeader); a == b || !strings.Contains(a, "failed") {
		t.Errorf("message ids %q and %q", a, b)
	}
}

// Two pushes of one digest with different tags at once: one scan, both
// tags reach results.
func TestConcurrentPushesOfOneDigestScanOnce(t *testing.T) {
	e := start(t, scanner.Config{Workers: 2})
	digest := e.push(t, "team/app", scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...)))
	before := e.reg.manifests.Load()
	e.pushEvent(t, "team/app", digest, "ev-1", "a")
	e.pushEvent(t, "team/app", digest, "ev-2", "b")
	waitJobs(t, e.js)
	msgs := queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 2)
	var scans int
	tags := map[string]bool{}
	for _, m := range msgs {
		if strings.HasPrefix(m.Subject, queue.ReportsSubjectPrefix+"tags.") {
			var ev customsv1.TagsAdded
			if err := proto.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			for _, tg := range ev.GetTags() {
				tags[tg] = true
			}
			continue
		}
		scans++
		_, r := decodeReport(t, m.Data)
		for _, tg := range r.Artifact.Tags {
			tags[tg] = true
		}
	}
	if scans != 1 || !tags["a"] || !tags["b"] {
		t.Fatalf("%d reports, tags %v: want one scan carrying or announcing both tags", scans, tags)
	}
	if n := e.reg.manifests.Load() - before; n > 3 {
		t.Errorf("%d manifest requests for one scan", n)
	}
}

func mustStream(t *testing.T, js jetstream.JetStream, name string) jetstream.Stream {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A scanned record the scanner cannot read (corrupt, or written by
// something else) does not make a job look scanned: the image is scanned.
func TestUnreadableScannedRecordDoesNotSkipTheScan(t *testing.T) {
	e := start(t, scanner.Config{})
	digest := e.push(t, "team/app", scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...)))
	ctx := context.Background()
	var kv jetstream.KeyValue
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if kv, err = e.js.KeyValue(ctx, scanner.ScannedBucket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scanned bucket: %v", err)
		}
	}
	job := &customsv1.ScanJob{Registry: e.host, Repository: "team/app", Digest: digest}
	if _, err := kv.Put(ctx, wire.ScannedKey(job), []byte("not a record")); err != nil {
		t.Fatal(err)
	}
	e.pushEvent(t, "team/app", digest, "ev-1", "latest")
	ev, _ := decodeReport(t, queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)[0].Data)
	if ev.GetStatus() != report.StatusComplete {
		t.Fatalf("scan status %s", ev.GetStatus())
	}
}
