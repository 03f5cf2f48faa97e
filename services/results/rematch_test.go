package results_test

import (
	"context"
	"sort"
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
)

func withPackages(r *report.Report, pkgs ...report.Package) *report.Report {
	r.Packages = pkgs
	return r
}

var (
	lodash = report.Package{Name: "lodash", Version: "4.17.15", Ecosystem: "npm", PURL: "pkg:npm/lodash@4.17.15", Path: "app/node_modules/lodash/package.json"}
	log4j  = report.Package{Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Ecosystem: "Maven", Path: "app/lib/log4j-core-2.14.1.jar"}
	py     = report.Package{Name: "py", Version: "1.11.1", Ecosystem: "PyPI", Path: "usr/lib/python3/dist-packages/py-1.11.1.dist-info/METADATA"}
)

func ids(vs []report.Vulnerability) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.ID)
	}
	sort.Strings(out)
	return out
}

func (e *env) events(t *testing.T, cons jetstream.Consumer, want int) map[string][]*customsv1.NewVulnerabilities {
	t.Helper()
	got := map[string][]*customsv1.NewVulnerabilities{}
	n := 0
	deadline := time.Now().Add(30 * time.Second)
	for n < want && time.Now().Before(deadline) {
		msgs, err := cons.Fetch(10, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			continue
		}
		for m := range msgs.Messages() {
			ev := &customsv1.NewVulnerabilities{}
			if err := proto.Unmarshal(m.Data(), ev); err != nil {
				t.Fatal(err)
			}
			got[ev.GetDigest()] = append(got[ev.GetDigest()], ev)
			n++
		}
	}
	// Nothing more may follow (duplicates would show here).
	if msgs, err := cons.Fetch(10, jetstream.FetchMaxWait(500*time.Millisecond)); err == nil {
		for m := range msgs.Messages() {
			ev := &customsv1.NewVulnerabilities{}
			_ = proto.Unmarshal(m.Data(), ev)
			t.Errorf("unexpected extra event for %s: %v", ev.GetDigest(), ev.GetNewVulnerabilities())
		}
	}
	if n != want {
		t.Fatalf("got %d events, want %d: %v", n, want, got)
	}
	return got
}

func (e *env) waitDB(t *testing.T, d, version string) *report.Report {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := e.waitReport(t, d)
		if r.VulnerabilityDB.Version == version {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("report %s still matched against %q, want %s", d, r.VulnerabilityDB.Version, version)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stored inventories are re-matched on every published database version;
// an S3 outage during the re-match delays it and loses nothing; events
// name only what is new; a report scanned against an older database is
// brought up to date before it is stored.
func TestRematchOnDatabaseUpdate(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	a := withPackages(newReport("team/web", 1, now), lodash)
	b := withPackages(newReport("team/api", 2, now), log4j)
	c := withPackages(newReport("team/tools", 3, now), py)
	for _, r := range []*report.Report{a, b, c} {
		e.publish(t, r)
		if got := e.waitReport(t, r.Artifact.Digest); got.VulnerabilityDB.Status != report.VulnDBNotChecked {
			t.Fatalf("stored before any database: %+v", got.VulnerabilityDB)
		}
	}
	cons, err := e.js.OrderedConsumer(ctx, queue.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{queue.NewVulnerabilitiesSubject + ">"},
	})
	if err != nil {
		t.Fatal(err)
	}

	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	v1 := vulndbtest.Build(t, t0, "osv/other/GHSA-p6mc-m468-83gw.json")
	if _, _, err := vulndist.Publish(ctx, e.js, v1); err != nil {
		t.Fatal(err)
	}
	ra := e.waitDB(t, a.Artifact.Digest, v1.Version())
	e.waitDB(t, b.Artifact.Digest, v1.Version())
	e.waitDB(t, c.Artifact.Digest, v1.Version())
	if got := ids(ra.Vulnerabilities); len(got) != 1 || got[0] != "GHSA-p6mc-m468-83gw" {
		t.Fatalf("a after v1: %v", got)
	}
	if code, body := e.get(t, "/v1/vulnerability-db"); code != 200 || !strings.Contains(string(body), v1.Version()) {
		t.Fatalf("GET /v1/vulnerability-db: %d %s", code, body)
	}
	evs := e.events(t, cons, 1)
	if ev := evs[a.Artifact.Digest]; len(ev) != 1 || ev[0].GetPreviousDbVersion() != "" || ev[0].GetDbVersion() != v1.Version() ||
		len(ev[0].GetNewVulnerabilities()) != 1 || ev[0].GetNewVulnerabilities()[0].GetId() != "GHSA-p6mc-m468-83gw" {
		t.Fatalf("events after v1: %v", evs)
	}

	// v2 is published while S3 is down: the re-match waits it out.
	e.s3.down.Store(true)
	v2 := vulndbtest.Build(t, t0.Add(24*time.Hour), "osv/other/GHSA-p6mc-m468-83gw.json", "osv/other/GHSA-35jh-r3h4-6jhm.json", "osv/other/GHSA-jfh8-c2jp-5v3q.json", "osv/other/GHSA-w596-4wvx-j9j6.json")
	if _, _, err := vulndist.Publish(ctx, e.js, v2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // let the re-match fail a few times
	e.s3.down.Store(false)
	ra = e.waitDB(t, a.Artifact.Digest, v2.Version())
	rb := e.waitDB(t, b.Artifact.Digest, v2.Version())
	rc := e.waitDB(t, c.Artifact.Digest, v2.Version())
	if got := ids(ra.Vulnerabilities); len(got) != 2 || got[0] != "GHSA-35jh-r3h4-6jhm" {
		t.Errorf("a after v2: %v", got)
	}
	if got := ids(rb.Vulnerabilities); len(got) != 1 || got[0] != "GHSA-jfh8-c2jp-5v3q" || rb.Verdict != report.VerdictWarn {
		t.Errorf("b after v2 (log4shell): %v verdict %s", got, rb.Verdict)
	}
	if len(rc.Vulnerabilities) != 0 { // py 1.11.1 is past last_affected 1.11.0
		t.Errorf("c after v2: %v", ids(rc.Vulnerabilities))
	}
	evs = e.events(t, cons, 2)
	if ev := evs[a.Artifact.Digest]; len(ev) != 1 || ev[0].GetPreviousDbVersion() != v1.Version() ||
		len(ev[0].GetNewVulnerabilities()) != 1 || ev[0].GetNewVulnerabilities()[0].GetId() != "GHSA-35jh-r3h4-6jhm" {
		t.Errorf("event for a after v2 must name only the new vulnerability: %v", ev)
	}
	if ev := evs[b.Artifact.Digest]; len(ev) != 1 || ev[0].GetVerdict() != report.VerdictWarn || ev[0].GetPreviousVerdict() != report.VerdictPass {
		t.Errorf("event for b: %v", ev)
	}

	// A scanner that had not swapped yet sends a report matched against v1.
	d := withPackages(newReport("team/web", 4, time.Now().UTC()), lodash)
	built := v1.Header().Built
	d.VulnerabilityDB = report.VulnerabilityDB{Status: report.VulnDBChecked, Version: v1.Version(), BuiltAt: &built}
	d.Vulnerabilities = v1.Match(d.Packages)
	e.publish(t, d)
	rd := e.waitReport(t, d.Artifact.Digest)
	if rd.VulnerabilityDB.Version != v2.Version() || len(rd.Vulnerabilities) != 2 {
		t.Fatalf("lagging scan stored as %s with %v", rd.VulnerabilityDB.Version, ids(rd.Vulnerabilities))
	}
}
