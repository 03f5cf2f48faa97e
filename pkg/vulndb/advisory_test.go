package vulndb

import (
	"bytes"
	"compress/gzip"
	"encoding/gob"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/report"
)

// Matches carry what reports and the export formats show about the
// advisory: summary (else the start of the details), CVSS vector and base
// score, references, dates and CWEs.
func TestMatchCarriesAdvisoryDetails(t *testing.T) {
	db := loadTestDB(t)
	got := map[string]report.Vulnerability{}
	for _, v := range db.Match(samplePackages()) {
		got[v.ID+" "+v.Package] = v
	}
	lodash := got["GHSA-35jh-r3h4-6jhm lodash"]
	if lodash.Summary != "Command Injection in lodash" || lodash.CVSS == nil ||
		lodash.CVSS.Version != "3.1" || lodash.CVSS.Vector != "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H" ||
		lodash.CVSS.Score == nil || *lodash.CVSS.Score != 7.2 ||
		!slices.Equal(lodash.CWEs, []string{"CWE-77", "CWE-94"}) ||
		lodash.Published == nil || !lodash.Published.Equal(time.Date(2021, 5, 6, 16, 5, 51, 0, time.UTC)) ||
		lodash.Modified == nil || !lodash.Modified.Equal(time.Date(2024, 2, 20, 17, 50, 45, 0, time.UTC)) {
		t.Errorf("lodash: %+v (cvss %+v)", lodash, lodash.CVSS)
	}
	// A Debian record has no summary: the first paragraph of its details.
	deb := got["DEBIAN-CVE-2024-0727 libssl3"]
	if !strings.HasPrefix(deb.Summary, "Issue summary: Processing a maliciously formatted PKCS12 file") || deb.CVSS != nil {
		t.Errorf("debian: summary %q cvss %+v", deb.Summary, deb.CVSS)
	}
	// Go records: references, published; the zero "modified" is left out.
	goV := got["GO-2020-0015 golang.org/x/text"]
	if len(goV.References) != 4 || goV.References[0] != "https://go.dev/cl/238238" || goV.Published == nil || goV.Modified != nil {
		t.Errorf("go: refs %v published %v modified %v", goV.References, goV.Published, goV.Modified)
	}
	// The report does not alias the database.
	lodash.CWEs[0] = "CWE-0"
	*lodash.CVSS.Score = 0
	again := db.Match([]report.Package{{Name: "lodash", Version: "4.17.15", Ecosystem: "npm"}})
	for _, v := range again {
		if v.ID == "GHSA-35jh-r3h4-6jhm" && (v.CWEs[0] != "CWE-77" || *v.CVSS.Score != 7.2) {
			t.Errorf("a report change reached the database: %+v", v)
		}
	}
}

// A merged GO-/GHSA- pair takes the GHSA's CVSS vector and CWEs (the Go
// record has none), the Go record's summary.
func TestAliasMergeFillsDetails(t *testing.T) {
	b := NewBuilder()
	for _, f := range []string{"osv/go/GO-2022-0969.json", "osv-aliases/GHSA-69cg-p879-7622.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		b.AddJSON(data)
	}
	got := b.Build().Match([]report.Package{{Name: "golang.org/x/net", Version: "v0.0.0-20220722155237-a158d28d115b", Ecosystem: "Go"}})
	if len(got) != 1 {
		t.Fatalf("got %+v", got)
	}
	v := got[0]
	if v.ID != "GO-2022-0969" || v.Summary != "Denial of service in net/http and golang.org/x/net/http2" ||
		v.CVSS == nil || v.CVSS.Score == nil || *v.CVSS.Score != 7.5 || !slices.Equal(v.CWEs, []string{"CWE-400"}) {
		t.Errorf("merged: %+v cvss %+v", v, v.CVSS)
	}
}

func TestCVSSVectors(t *testing.T) {
	for _, tc := range []struct {
		sev     []osvSeverity
		version string
		score   float64 // -1: no score
	}{
		{[]osvSeverity{{"CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}}, "3.1", 10},
		{[]osvSeverity{{"CVSS_V3", "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}}, "3.0", 7.5},
		{[]osvSeverity{{"CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}}, "4.0", 9.3},
		// v3 is preferred over v4, whatever the order.
		{[]osvSeverity{{"CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}, {"CVSS_V3", "CVSS:3.1/AV:L/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H"}}, "3.1", 5.1},
		// A vector that does not parse is kept, without a score.
		{[]osvSeverity{{"CVSS_V3", "CVSS:3.1/AV:X"}}, "3.1", -1},
		{[]osvSeverity{{"Ubuntu", "medium"}}, "", -2},
	} {
		c := cvssFromScores(tc.sev)
		switch {
		case tc.score == -2:
			if c != nil {
				t.Errorf("%v: %+v, want none", tc.sev, c)
			}
		case c == nil || c.Version != tc.version:
			t.Errorf("%v: %+v", tc.sev, c)
		case tc.score == -1 && c.Score != nil, tc.score >= 0 && (c.Score == nil || *c.Score != tc.score):
			t.Errorf("%v: score %v, want %v", tc.sev, c.Score, tc.score)
		}
	}
}

func TestSummarize(t *testing.T) {
	if got := summarize("  a\n summary ", "details"); got != "a summary" {
		t.Errorf("summary: %q", got)
	}
	if got := summarize("", "First paragraph\nstill first.\n\nSecond."); got != "First paragraph still first." {
		t.Errorf("details: %q", got)
	}
	long := summarize(strings.Repeat("é", 1000), "")
	if n := len([]rune(long)); n != maxSummary || !strings.HasSuffix(long, "…") {
		t.Errorf("long: %d runes", n)
	}
}

// A database of an older format is refused with the words that fix it.
func TestOldFormatAsksForRebuild(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := gob.NewEncoder(zw).Encode(Header{Format: 2, Entries: 0}); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	_, err := Read(&buf)
	if err == nil || !strings.Contains(err.Error(), "database format 2") || !strings.Contains(err.Error(), "customs db update") {
		t.Errorf("old format: %v", err)
	}
}
