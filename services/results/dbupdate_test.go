package results_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/osvfeed/osvfeedtest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/services/results"
)

// With CUSTOMS_DB_UPDATE_INTERVAL and a mirror, results builds the
// database from the mirror's dumps, publishes it, and stored reports are
// re-matched against it; /metrics shows the database's age.
func TestScheduledDatabaseUpdate(t *testing.T) {
	m := osvfeedtest.New(t, map[string][]string{"npm": {"osv/other/GHSA-p6mc-m468-83gw.json"}})
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken,
		DBUpdateInterval: time.Hour, OSVMirror: m.URL, OSVCacheDir: t.TempDir()})
	r := withPackages(newReport("team/web", 1, time.Now().UTC()), lodash)
	e.publish(t, r)
	deadline := time.Now().Add(30 * time.Second)
	var got *report.Report
	for time.Now().Before(deadline) {
		got = e.waitReport(t, r.Artifact.Digest)
		if len(got.Vulnerabilities) == 1 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(got.Vulnerabilities) != 1 || got.Vulnerabilities[0].ID != "GHSA-p6mc-m468-83gw" || got.VulnerabilityDB.Stale {
		t.Fatalf("after the scheduled update: %+v %+v", got.Vulnerabilities, got.VulnerabilityDB)
	}
	if m.Downloads("npm") != 1 {
		t.Errorf("npm downloaded %d times", m.Downloads("npm"))
	}
	code, body := e.get(t, "/metrics")
	if code != 200 || !strings.Contains(string(body), "customs_vulndb_age_seconds ") ||
		!strings.Contains(string(body), `customs_vulndb_updates_total{outcome="published"} 1`) {
		t.Fatalf("/metrics: %d\n%s", code, grepLines(string(body), "customs_vulndb"))
	}
}

// A re-match against a database older than CUSTOMS_DB_STALE_AFTER says
// so in the report.
func TestStaleDatabaseInReports(t *testing.T) {
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken, DBStaleAfter: 24 * time.Hour})
	r := withPackages(newReport("team/web", 1, time.Now().UTC()), lodash)
	e.publish(t, r)
	e.waitReport(t, r.Artifact.Digest)
	old := vulndbtest.Build(t, time.Now().Add(-48*time.Hour).Truncate(time.Second), "osv/other/GHSA-p6mc-m468-83gw.json")
	if _, _, err := vulndist.Publish(context.Background(), e.js, old); err != nil {
		t.Fatal(err)
	}
	got := e.waitDB(t, r.Artifact.Digest, old.Version())
	if !got.VulnerabilityDB.Stale || got.VulnerabilityDB.AgeSeconds < 47*3600 {
		t.Fatalf("vulnerability_db %+v", got.VulnerabilityDB)
	}
	_, body := e.get(t, "/metrics")
	if !strings.Contains(string(body), "customs_vulndb_age_seconds 1728") {
		t.Errorf("age gauge: %s", grepLines(string(body), "customs_vulndb_age"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
