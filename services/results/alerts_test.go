package results_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
	"github.com/customs-scan/customs/pkg/vulndist"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/results"
)

// settled waits until results has handled every report event published so
// far (alerts are published before the event is acknowledged).
func (e *env) settled(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := e.js.Consumer(ctx, queue.ReportsStream, queue.ResultsConsumer)
		if err == nil {
			if info, err := c.Info(ctx); err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("report events not all handled")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alerts returns every alert published so far.
func (e *env) alerts(t *testing.T) []*customsv1.Alert {
	t.Helper()
	ctx := context.Background()
	cons, err := e.js.OrderedConsumer(ctx, queue.EventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{queue.AlertsSubject + ">"}})
	if err != nil {
		t.Fatal(err)
	}
	var out []*customsv1.Alert
	for {
		msgs, err := cons.Fetch(100, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range msgs.Messages() {
			n++
			a := &customsv1.Alert{}
			if err := proto.Unmarshal(m.Data(), a); err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
		if n == 0 {
			return out
		}
	}
}

func vuln(id, pkg, sev string, aliases ...string) report.Vulnerability {
	return report.Vulnerability{ID: id, Aliases: aliases, Package: pkg, Version: "1.0", FixedVersion: "1.1", Severity: sev}
}

func itemIDs(a *customsv1.Alert) string {
	var ids []string
	for _, it := range a.GetNewItems() {
		ids = append(ids, it.GetKind()+":"+it.GetId())
	}
	return strings.Join(ids, ",")
}

// What is new about each push, compared with the image it replaces.
func TestAlertsNameOnlyWhatIsNew(t *testing.T) {
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken, Quarantine: "enforce"})
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	at := func(n int) *time.Time { v := t0.Add(time.Duration(n) * time.Minute); return &v }
	push := func(r *report.Report, n int, tags ...string) {
		r.Artifact.Tags, r.RequestedAt, r.FinishedAt = tags, at(n), *at(n)
		e.publish(t, r)
		e.waitReport(t, r.Artifact.Digest)
		e.settled(t)
	}
	// 1. First push of a repository, with malware: everything is new; the
	// quarantine is part of the push alert.
	v1 := quarantineReport("team/app", 1, t0)
	v1.Vulnerabilities = []report.Vulnerability{vuln("GHSA-aaaa", "lodash", "HIGH", "CVE-2020-1")}
	push(v1, 1, "1.0")
	// 2. A rebuild with the same content under the same tag: nothing new.
	rebuild := quarantineReport("team/app", 2, t0)
	rebuild.Vulnerabilities = []report.Vulnerability{vuln("CVE-2020-1", "lodash", "HIGH", "GHSA-aaaa")} // same, named by its alias
	push(rebuild, 2, "1.0")
	// 3. The next version has one more HIGH vulnerability and no malware.
	v2 := newReport("team/app", 3, t0)
	v2.Verdict = report.VerdictWarn
	v2.Vulnerabilities = []report.Vulnerability{vuln("GHSA-aaaa", "lodash", "HIGH"), vuln("GHSA-bbbb", "minimist", "HIGH")}
	push(v2, 3, "1.0")
	// 4. A clean first push of another repository: nothing to say.
	push(newReport("team/clean", 4, t0), 4, "latest")

	got := e.alerts(t)
	if len(got) != 2 {
		for _, a := range got {
			t.Logf("alert %s %s: %s", a.GetKind(), a.GetDigest(), itemIDs(a))
		}
		t.Fatalf("got %d alerts, want 2", len(got))
	}
	first, third := got[0], got[1]
	if first.GetDigest() != digest(1) || !first.GetFirstPush() || first.GetKind() != "push" ||
		itemIDs(first) != "malware:eicar,vulnerability:GHSA-aaaa" || first.GetQuarantine().GetState() != "quarantined" ||
		first.GetVerdict() != "quarantine" || first.GetReportPath() != "/v1/reports/"+digest(1) {
		t.Errorf("first push alert = %v", first)
	}
	if third.GetDigest() != digest(3) || third.GetPreviousDigest() != digest(2) || itemIDs(third) != "vulnerability:GHSA-bbbb" ||
		third.GetPreviousVerdict() != "quarantine" || third.GetQuarantine() != nil {
		t.Errorf("third push alert = %v", third)
	}
	if it := third.GetNewItems()[0]; it.GetPackage() != "minimist" || it.GetInstalledVersion() != "1.0" || it.GetFixedVersion() != "1.1" {
		t.Errorf("item = %v", it)
	}

	// The same report delivered again: no second alert.
	v2again := newReport("team/app", 3, t0)
	v2again.Verdict = report.VerdictWarn
	v2again.Vulnerabilities = v2.Vulnerabilities
	push(v2again, 3, "1.0")
	if n := len(e.alerts(t)); n != 2 {
		t.Errorf("redelivered report: %d alerts, want 2", n)
	}

	// An operator's release is news of its own.
	if code, body := e.send(t, "POST", testToken, "/v1/quarantine/"+digest(1)+"/release", `{"reason":"test file"}`); code != 200 {
		t.Fatalf("release: %d %s", code, body)
	}
	got = e.alerts(t)
	if len(got) != 3 || got[2].GetKind() != "release" || got[2].GetQuarantine().GetBy() != "admin-token" || got[2].GetQuarantine().GetReason() != "test file" {
		t.Fatalf("after release: %v", got)
	}
}

// A database update that adds a vulnerability to a stored image is one
// alert with just that vulnerability.
func TestRematchAlertListsTheNewVulnerability(t *testing.T) {
	e := start(t)
	a := withPackages(newReport("team/web", 1, time.Now().UTC().Truncate(time.Second)), lodash)
	a.Artifact.Tags = []string{"latest"}
	e.publish(t, a)
	e.waitReport(t, a.Artifact.Digest)
	e.settled(t)
	if n := len(e.alerts(t)); n != 0 {
		t.Fatalf("clean first push: %d alerts", n)
	}
	db := vulndbtest.Build(t, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "osv/other/GHSA-p6mc-m468-83gw.json")
	if _, _, err := vulndist.Publish(context.Background(), e.js, db); err != nil {
		t.Fatal(err)
	}
	e.waitDB(t, a.Artifact.Digest, db.Version())
	deadline := time.Now().Add(30 * time.Second)
	var got []*customsv1.Alert
	for len(got) == 0 && time.Now().Before(deadline) {
		got = e.alerts(t)
	}
	if len(got) != 1 || got[0].GetKind() != "rematch" || itemIDs(got[0]) != "vulnerability:GHSA-p6mc-m468-83gw" || got[0].GetDbVersion() != db.Version() {
		t.Fatalf("alerts = %v", got)
	}
}
