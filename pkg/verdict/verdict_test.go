package verdict_test

import (
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/verdict"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
)

func TestRematchAnnouncesOnlyWhatIsNew(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	xnet := report.Package{Name: "golang.org/x/net", Version: "v0.0.0-20220722155237-a158d28d115b", Ecosystem: "Go"}
	r := &report.Report{Status: report.StatusComplete, Packages: []report.Package{xnet}}
	r.Normalize()

	// First match: the GitHub advisory only.
	gained, changed := (verdict.Rules{}).Rematch(r, vulndbtest.Build(t, t0, "osv-aliases/GHSA-69cg-p879-7622.json"))
	if !changed || len(gained) != 1 || gained[0].ID != "GHSA-69cg-p879-7622" || r.Verdict != report.VerdictWarn {
		t.Fatalf("first: gained %+v verdict %s", gained, r.Verdict)
	}
	// The Go record joins it: renamed to GO-2022-0969, not new.
	gained, _ = (verdict.Rules{}).Rematch(r, vulndbtest.Build(t, t0.Add(time.Hour), "osv-aliases/GHSA-69cg-p879-7622.json", "osv/go/GO-2022-0969.json"))
	if len(gained) != 0 || len(r.Vulnerabilities) != 1 || r.Vulnerabilities[0].ID != "GO-2022-0969" {
		t.Fatalf("second: gained %+v, vulnerabilities %+v", gained, r.Vulnerabilities)
	}
	// A database without it: gone, nothing gained, verdict back to pass.
	gained, _ = (verdict.Rules{}).Rematch(r, vulndbtest.Build(t, t0.Add(2*time.Hour), "osv/go/GO-2020-0015.json"))
	if len(gained) != 0 || len(r.Vulnerabilities) != 0 || r.Verdict != report.VerdictPass || r.VulnerabilityDB.Status != report.VulnDBChecked {
		t.Fatalf("third: gained %+v, vulnerabilities %+v, verdict %s", gained, r.Vulnerabilities, r.Verdict)
	}
	// Failed scans and indexes are not re-matched.
	failed := &report.Report{Status: report.StatusFailed}
	if _, changed := (verdict.Rules{}).Rematch(failed, vulndbtest.Build(t, t0, "osv/go/GO-2020-0015.json")); changed {
		t.Fatal("a failed scan was re-matched")
	}
}

// A report says how old the database was when matched, and that it was
// stale past the threshold.
func TestStaleDatabase(t *testing.T) {
	built := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	db := vulndbtest.Build(t, built, "osv/go/GO-2021-0113.json")
	for _, c := range []struct {
		after     time.Duration
		age       time.Duration
		wantStale bool
	}{
		{0, 71 * time.Hour, false},
		{0, 73 * time.Hour, true},
		{time.Hour, 2 * time.Hour, true},
		{-1, 1000 * time.Hour, false},
	} {
		rules := verdict.Rules{StaleAfter: c.after, Now: func() time.Time { return built.Add(c.age) }}
		r := &report.Report{Status: report.StatusComplete}
		rules.Match(r, db)
		if r.VulnerabilityDB.Stale != c.wantStale || r.VulnerabilityDB.AgeSeconds != int64(c.age/time.Second) {
			t.Errorf("after %s, age %s: %+v", c.after, c.age, r.VulnerabilityDB)
		}
	}
}
