package vulndb

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/report"
)

// testdata/osv/go holds real records copied from golang.org/x/vulndb
// (data/osv); testdata/osv/other holds trimmed records written from real
// Debian, Ubuntu, Alpine, GHSA, PyPA and RustSec advisories.
const testdataDir = "testdata/osv"

func loadTestDB(t testing.TB) *DB {
	t.Helper()
	db, st, err := Load(context.Background(), testdataDir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Invalid != 0 {
		t.Fatalf("invalid records: %+v", st)
	}
	return db
}

type want struct {
	id, fixed, severity string
}

func matchOne(t *testing.T, db *DB, p report.Package) map[string]report.Vulnerability {
	t.Helper()
	got := map[string]report.Vulnerability{}
	for _, v := range db.Match([]report.Package{p}) {
		if _, dup := got[v.ID]; dup {
			t.Fatalf("duplicate %s", v.ID)
		}
		got[v.ID] = v
	}
	return got
}

func check(t *testing.T, db *DB, p report.Package, wants ...want) {
	t.Helper()
	got := matchOne(t, db, p)
	if len(got) != len(wants) {
		t.Errorf("%s %s %s@%s: got %d vulns %v, want %d", p.Ecosystem, p.Name, p.SourceName, p.Version, len(got), got, len(wants))
	}
	for _, w := range wants {
		v, ok := got[w.id]
		if !ok {
			t.Errorf("%s@%s: missing %s", p.Name, p.Version, w.id)
			continue
		}
		if v.FixedVersion != w.fixed {
			t.Errorf("%s@%s %s: fixed %q, want %q", p.Name, p.Version, w.id, v.FixedVersion, w.fixed)
		}
		if w.severity != "" && v.Severity != w.severity {
			t.Errorf("%s@%s %s: severity %q, want %q", p.Name, p.Version, w.id, v.Severity, w.severity)
		}
		if v.Package != p.Name || v.Version != p.Version || v.Aliases == nil {
			t.Errorf("%s: bad vuln %+v", w.id, v)
		}
	}
}

func TestGoRealRecords(t *testing.T) {
	db := loadTestDB(t)
	std := func(v string) report.Package { return report.Package{Name: "stdlib", Version: v, Ecosystem: "Go"} }
	// GO-2022-0969: <1.18.6, [1.19.0-0, 1.19.1). GO-2023-1571: <1.19.6,
	// [1.20.0-0,1.20.1). GO-2023-1840: <1.19.10, [1.20.0-0,1.20.5).
	// GO-2024-2687: <1.21.9, [1.22.0-0,1.22.2).
	check(t, db, std("1.19.1"),
		want{"GO-2023-1571", "1.19.6", SeverityUnknown},
		want{"GO-2023-1840", "1.19.10", ""},
		want{"GO-2024-2687", "1.21.9", ""})
	check(t, db, std("go1.19.0"),
		want{"GO-2022-0969", "1.19.1", ""},
		want{"GO-2023-1571", "1.19.6", ""},
		want{"GO-2023-1840", "1.19.10", ""},
		want{"GO-2024-2687", "1.21.9", ""})
	check(t, db, std("1.18.5"),
		want{"GO-2022-0969", "1.18.6", ""},
		want{"GO-2023-1571", "1.19.6", ""},
		want{"GO-2023-1840", "1.19.10", ""},
		want{"GO-2024-2687", "1.21.9", ""})
	check(t, db, std("v1.22.1"), want{"GO-2024-2687", "1.22.2", ""})
	check(t, db, std("1.22.2"))
	check(t, db, std("1.20.0-rc.1"), // pre-release of 1.20 is inside [1.20.0-0, ...)
		want{"GO-2023-1571", "1.20.1", ""},
		want{"GO-2023-1840", "1.20.5", ""},
		want{"GO-2024-2687", "1.21.9", ""})

	mod := func(n, v string) report.Package { return report.Package{Name: n, Version: v, Ecosystem: "Go"} }
	check(t, db, mod("golang.org/x/net", "v0.0.0-20220906000000-aaaaaaaaaaaa"),
		want{"GO-2022-0969", "0.0.0-20220906165146-f3363e06e74c", ""},
		want{"GO-2023-1571", "0.7.0", ""},
		want{"GO-2024-2687", "0.23.0", ""})
	check(t, db, mod("golang.org/x/net", "v0.23.0"))
	check(t, db, mod("golang.org/x/text", "v0.3.6"),
		want{"GO-2021-0113", "0.3.7", ""}, want{"GO-2022-1059", "0.3.8", ""})
	check(t, db, mod("golang.org/x/text", "v0.3.2"),
		want{"GO-2020-0015", "0.3.3", ""}, want{"GO-2021-0113", "0.3.7", ""}, want{"GO-2022-1059", "0.3.8", ""})
	check(t, db, mod("golang.org/x/crypto", "v0.16.0"), want{"GO-2023-2402", "0.17.0", ""})
	check(t, db, mod("golang.org/x/crypto", "v0.17.0"))
	// Withdrawn records (GO-2022-0617 k8s.io/kubernetes, GO-2024-2442
	// teleport) are never reported.
	check(t, db, mod("k8s.io/kubernetes", "v1.0.0"))
	check(t, db, mod("github.com/gravitational/teleport", "v1.0.0"))
	// Unparseable versions do not match.
	check(t, db, mod("golang.org/x/crypto", "(devel)"))

	// Aliases are copied.
	v := matchOne(t, db, std("1.19.0"))["GO-2022-0969"]
	if strings.Join(v.Aliases, ",") != "CVE-2022-27664,GHSA-69cg-p879-7622" {
		t.Errorf("aliases %v", v.Aliases)
	}
}

func TestDistros(t *testing.T) {
	db := loadTestDB(t)
	// Debian matches on the source package and source version.
	libssl := report.Package{Name: "libssl3", Version: "3.0.11-1~deb12u1", SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u1", Ecosystem: "Debian:12"}
	check(t, db, libssl,
		want{"DSA-5532-1", "3.0.11-1~deb12u2", SeverityUnknown},
		want{"DEBIAN-CVE-2024-0727", "3.0.13-1~deb12u1", SeverityLow})
	libssl.SourceVersion, libssl.Version = "3.0.11-1~deb12u2", "3.0.11-1~deb12u2"
	check(t, db, libssl, want{"DEBIAN-CVE-2024-0727", "3.0.13-1~deb12u1", ""})
	libssl.SourceVersion, libssl.Version = "3.0.13-1~deb12u1", "3.0.13-1~deb12u1"
	check(t, db, libssl)
	// Other release: only its own ranges apply.
	check(t, db, report.Package{Name: "openssl", Version: "1.1.1n-0+deb11u5", Ecosystem: "Debian:11"},
		want{"DEBIAN-CVE-2024-0727", "1.1.1w-0+deb11u2", SeverityLow})
	// Without a source name the binary name is used: libssl3 is no source.
	check(t, db, report.Package{Name: "libssl3", Version: "3.0.0-1", Ecosystem: "Debian:12"})

	// Ubuntu "22.04" matches OSV "Ubuntu:22.04:LTS"; severity from the
	// Ubuntu priority.
	check(t, db, report.Package{Name: "libssl3", Version: "3.0.2-0ubuntu1.10", SourceName: "openssl", Ecosystem: "Ubuntu:22.04"},
		want{"UBUNTU-CVE-2023-5363", "3.0.2-0ubuntu1.12", SeverityMedium})
	check(t, db, report.Package{Name: "libssl3", Version: "3.0.2-0ubuntu1.12", SourceName: "openssl", Ecosystem: "Ubuntu:22.04"})
	check(t, db, report.Package{Name: "libssl3", Version: "3.0.2-0ubuntu1.10", SourceName: "openssl", Ecosystem: "Ubuntu:24.04"})

	// Alpine, origin package, with and without the "v".
	for _, eco := range []string{"Alpine:v3.18", "Alpine:3.18"} {
		v := matchOne(t, db, report.Package{Name: "libcrypto3", Version: "3.1.3-r0", SourceName: "openssl", Ecosystem: eco})["ALPINE-CVE-2023-5363"]
		if v.FixedVersion != "3.1.4-r0" || strings.Join(v.Aliases, ",") != "CVE-2023-5363" {
			t.Errorf("%s: %+v", eco, v)
		}
	}
	check(t, db, report.Package{Name: "libcrypto3", Version: "3.1.4-r0", SourceName: "openssl", Ecosystem: "Alpine:v3.18"})
	check(t, db, report.Package{Name: "libcrypto3", Version: "3.1.3-r0", SourceName: "openssl", Ecosystem: "Alpine:v3.19"})
	check(t, db, report.Package{Name: "libcrypto3", Version: "3.0.11-r1", SourceName: "openssl", Ecosystem: "Alpine:v3.17"},
		want{"ALPINE-CVE-2023-5363", "3.0.12-r0", ""})
}

func TestLanguageEcosystems(t *testing.T) {
	db := loadTestDB(t)
	npm := func(n, v string) report.Package { return report.Package{Name: n, Version: v, Ecosystem: "npm"} }
	check(t, db, npm("lodash", "4.17.15"),
		want{"GHSA-35jh-r3h4-6jhm", "4.17.21", SeverityHigh}, // 7.2
		want{"GHSA-p6mc-m468-83gw", "4.17.19", SeverityHigh}) // 7.4
	check(t, db, npm("lodash", "4.17.20"), want{"GHSA-35jh-r3h4-6jhm", "4.17.21", ""})
	check(t, db, npm("lodash", "3.6.0"), want{"GHSA-35jh-r3h4-6jhm", "4.17.21", ""})
	check(t, db, npm("lodash", "4.17.21"))
	// last_affected is inclusive; no fixed version.
	check(t, db, npm("lodash.template", "4.5.0"), want{"GHSA-35jh-r3h4-6jhm", "", ""})
	check(t, db, npm("lodash.template", "4.5.1"))

	py := func(n, v string) report.Package { return report.Package{Name: n, Version: v, Ecosystem: "PyPI"} }
	check(t, db, py("requests", "2.28.1"), want{"PYSEC-2023-74", "2.31.0", SeverityUnknown})
	check(t, db, py("Requests", "2.31.0rc1"), want{"PYSEC-2023-74", "2.31.0", ""}) // PEP 503 name, PEP 440 pre-release
	check(t, db, py("requests", "2.31.0"))
	check(t, db, py("requests", "2.2.1"))
	// GHSA textual severity when there is no CVSS vector.
	check(t, db, py("py", "1.11.0"), want{"GHSA-w596-4wvx-j9j6", "", SeverityMedium})
	check(t, db, py("py", "1.11.1"))

	mvn := func(v string) report.Package {
		return report.Package{Name: "org.apache.logging.log4j:log4j-core", Version: v, Ecosystem: "Maven"}
	}
	for v, fixed := range map[string]string{
		"2.14.1": "2.15.0", "2.13.0": "2.15.0", "2.10.0": "2.12.2", "2.4": "2.12.2",
		"2.0-beta9": "2.3.1", "2.0-rc1": "2.3.1", "2.3": "2.3.1",
	} {
		check(t, db, mvn(v), want{"GHSA-jfh8-c2jp-5v3q", fixed, SeverityCritical})
	}
	for _, v := range []string{"2.0-beta8", "2.3.1", "2.12.2", "2.15.0", "2.17.1"} {
		check(t, db, mvn(v))
	}

	crate := func(v string) report.Package { return report.Package{Name: "time", Version: v, Ecosystem: "crates.io"} }
	check(t, db, crate("0.1.44"), want{"RUSTSEC-2020-0071", "0.2.0", SeverityMedium}) // 5.1
	check(t, db, crate("0.2.7"), want{"RUSTSEC-2020-0071", "0.2.23", ""})
	check(t, db, crate("0.2.22"), want{"RUSTSEC-2020-0071", "0.2.23", ""})
	check(t, db, crate("0.2.5"))
	check(t, db, crate("0.3.0"))
}

func TestMatchSortedDeduplicated(t *testing.T) {
	db := loadTestDB(t)
	p := report.Package{Name: "lodash", Version: "4.17.15", Ecosystem: "npm"}
	q := report.Package{Name: "libssl3", Version: "3.0.11-1~deb12u1", SourceName: "openssl", Ecosystem: "Debian:12"}
	got := db.Match([]report.Package{p, q, p, q})
	var keys []string
	for _, v := range got {
		keys = append(keys, v.Package+" "+v.ID)
	}
	want := "libssl3 DEBIAN-CVE-2024-0727|libssl3 DSA-5532-1|lodash GHSA-35jh-r3h4-6jhm|lodash GHSA-p6mc-m468-83gw"
	if strings.Join(keys, "|") != want {
		t.Errorf("got %q\nwant %q", strings.Join(keys, "|"), want)
	}
	if got := db.Match(nil); got == nil || len(got) != 0 {
		t.Errorf("Match(nil) = %#v, want empty non-nil", got)
	}
}

func TestFixedAcrossRangesAndEntries(t *testing.T) {
	b := NewBuilder()
	// One record, two affected entries for the same package, unsorted
	// events: the smallest fixed above the installed version wins.
	b.AddJSON([]byte(`{"id":"TEST-1","modified":"2024-01-01T00:00:00Z","affected":[
	 {"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"SEMVER","events":[{"fixed":"2.0.0"},{"introduced":"1.5.0"},{"introduced":"0"},{"fixed":"1.0.0"}]}]},
	 {"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.0.0"},{"fixed":"1.8.0"}]}]}]}`))
	db := b.Build()
	for v, fixed := range map[string]string{"0.5.0": "1.0.0", "1.6.0": "1.8.0", "1.9.0": "2.0.0", "1.2.0": "1.8.0"} {
		check(t, db, report.Package{Name: "x", Version: v, Ecosystem: "npm"}, want{"TEST-1", fixed, ""})
	}
	check(t, db, report.Package{Name: "x", Version: "2.0.0", Ecosystem: "npm"})
}

func TestBuilderRecords(t *testing.T) {
	b := NewBuilder()
	b.AddJSON([]byte(`{not json`))
	b.AddJSON([]byte(`{"id":""}`))
	old := `{"id":"T-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"versions":["1.0.0"]}]}`
	newer := `{"id":"T-1","modified":"2024-02-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"versions":["2.0.0"]}]}`
	b.AddJSON([]byte(newer))
	b.AddJSON([]byte(old)) // older copy loses
	b.AddJSON([]byte(`{"id":"T-2","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"GIT","events":[{"introduced":"0"}]}]}]}`))
	db := b.Build()
	st := b.Stats()
	if st.Records != 5 || st.Invalid != 2 || st.Entries != 1 || st.Dropped != 1 {
		t.Errorf("stats %+v", st)
	}
	check(t, db, report.Package{Name: "a", Version: "2.0.0", Ecosystem: "npm"}, want{"T-1", "", SeverityUnknown})
	check(t, db, report.Package{Name: "a", Version: "1.0.0", Ecosystem: "npm"})

	// A later withdrawal removes the record.
	b.AddJSON([]byte(`{"id":"T-1","modified":"2024-03-01T00:00:00Z","withdrawn":"2024-03-01T00:00:00Z"}`))
	check(t, db, report.Package{Name: "a", Version: "2.0.0", Ecosystem: "npm"}, want{"T-1", "", ""})
	check(t, b.Build(), report.Package{Name: "a", Version: "2.0.0", Ecosystem: "npm"})
}

func TestSeverity(t *testing.T) {
	for vec, want := range map[string]string{
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H":                    SeverityCritical, // 10.0
		"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N":                    SeverityHigh,     // 7.5
		"CVSS:3.1/AV:L/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H":                    SeverityMedium,   // 5.1
		"CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N":                    SeverityLow,      // 2.0
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N":                    SeverityNone,     // 0.0
		"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N": SeverityCritical, // 9.3
		"garbage": "",
	} {
		typ := "CVSS_V3"
		if strings.HasPrefix(vec, "CVSS:4") {
			typ = "CVSS_V4"
		}
		if got := severityFromScores([]osvSeverity{{Type: typ, Score: vec}}); got != want {
			t.Errorf("%s: %q, want %q", vec, got, want)
		}
	}
	for raw, want := range map[string]string{
		`{"severity":"MODERATE"}`:        SeverityMedium,
		`{"urgency":"unimportant"}`:      SeverityLow,
		`{"urgency":"high**"}`:           SeverityHigh,
		`{"urgency":"not yet assigned"}`: "",
		`{"severity":{"x":1}}`:           "",
		`[]`:                             "",
	} {
		if got := severityFromSpecific([]byte(raw)); got != want {
			t.Errorf("%s: %q, want %q", raw, got, want)
		}
	}
}

func TestEcosystemNormalization(t *testing.T) {
	for in, want := range map[string]string{
		"Ubuntu:22.04:LTS": "Ubuntu|22.04", "Ubuntu:22.04": "Ubuntu|22.04",
		"Ubuntu:Pro:18.04:LTS": "Ubuntu|Pro:18.04", "Alpine:3.19": "Alpine|v3.19",
		"Alpine:v3.19": "Alpine|v3.19", "debian:12": "Debian|12", "pypi": "PyPI", "Go": "Go",
	} {
		b, r := normalizeEcosystem(in)
		got := b
		if r != "" {
			got += "|" + r
		}
		if got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func writeZip(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		w, err := zw.Create(filepath.Base(p))
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSourcesAgree(t *testing.T) {
	ctx := context.Background()
	fixed := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	build := func(add func(b *Builder) error) *DB {
		t.Helper()
		b := NewBuilder()
		b.Now = fixed
		if err := add(b); err != nil {
			t.Fatal(err)
		}
		return b.Build()
	}
	fromDir := build(func(b *Builder) error { return b.AddSource(ctx, testdataDir, Limits{}) })

	zipData := writeZip(t, testdataDir)
	zipPath := filepath.Join(t.TempDir(), "all.zip")
	if err := os.WriteFile(zipPath, zipData, 0o644); err != nil {
		t.Fatal(err)
	}
	fromZip := build(func(b *Builder) error { return b.AddSource(ctx, zipPath, Limits{}) })
	fromReader := build(func(b *Builder) error { return b.AddZip(ctx, bytes.NewReader(zipData), Limits{}) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/Go/all.zip" {
			http.NotFound(w, r)
			return
		}
		w.Write(zipData)
	}))
	defer srv.Close()
	fromURL := build(func(b *Builder) error { return b.AddSource(ctx, srv.URL+"/Go/all.zip", Limits{}) })
	if err := NewBuilder().AddSource(ctx, srv.URL+"/missing.zip", Limits{}); err == nil {
		t.Error("404 accepted")
	}

	for name, db := range map[string]*DB{"zip": fromZip, "reader": fromReader, "url": fromURL} {
		if db.Version() != fromDir.Version() {
			t.Errorf("%s: version %s, dir %s", name, db.Version(), fromDir.Version())
		}
	}
	h := fromDir.Header()
	// 21 files, 3 withdrawn; 25 affected entries (stdlib and x/net count
	// separately).
	if h.Advisories != 18 || !strings.HasPrefix(fromDir.Version(), "sha256:") || !strings.HasSuffix(fromDir.Version(), "@2026-01-02T03:04:05Z") {
		t.Errorf("header %+v version %s", h, fromDir.Version())
	}

	// Limits are enforced.
	if err := NewBuilder().AddZip(ctx, bytes.NewReader(zipData), Limits{MaxRecordBytes: 100}); err == nil {
		t.Error("record limit not enforced on zip")
	}
	if err := NewBuilder().AddZip(ctx, bytes.NewReader(zipData), Limits{MaxDownloadBytes: 100}); err == nil {
		t.Error("download limit not enforced")
	}
	if err := NewBuilder().AddDir(ctx, testdataDir, Limits{MaxRecords: 3}); err == nil {
		t.Error("record count limit not enforced on dir")
	}
	if err := NewBuilder().AddSource(ctx, filepath.Join(t.TempDir(), "nope"), Limits{}); err == nil {
		t.Error("missing source accepted")
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	db := loadTestDB(t)
	var buf bytes.Buffer
	if err := db.Write(&buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("db: %d entries, %d advisories, %d bytes gzip'd gob", db.Len(), db.Header().Advisories, buf.Len())
	data := buf.Bytes()
	got, err := Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if got.Version() != db.Version() || got.Len() != db.Len() {
		t.Fatalf("version %s/%s len %d/%d", got.Version(), db.Version(), got.Len(), db.Len())
	}
	pkgs := samplePackages()
	// Compared as stored (JSON): the CVSS scores are pointers.
	a, b := jsonString(t, db.Match(pkgs)), jsonString(t, got.Match(pkgs))
	if a != b || len(db.Match(pkgs)) < 10 {
		t.Errorf("match differs after round trip:\n%s\n%s", a, b)
	}
	// Writing again is byte-identical (deterministic file).
	var again bytes.Buffer
	if err := got.Write(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), data) {
		t.Error("rewrite not byte-identical")
	}
	// Corruption is detected.
	if _, err := Read(bytes.NewReader(data[:len(data)/2])); err == nil {
		t.Error("truncated file accepted")
	}
	if _, err := Read(strings.NewReader("not gzip")); err == nil {
		t.Error("garbage accepted")
	}
}

func samplePackages() []report.Package {
	return []report.Package{
		{Name: "stdlib", Version: "1.19.1", Ecosystem: "Go"},
		{Name: "golang.org/x/net", Version: "v0.6.0", Ecosystem: "Go"},
		{Name: "golang.org/x/text", Version: "v0.3.2", Ecosystem: "Go"},
		{Name: "lodash", Version: "4.17.15", Ecosystem: "npm"},
		{Name: "requests", Version: "2.28.1", Ecosystem: "PyPI"},
		{Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Ecosystem: "Maven"},
		{Name: "time", Version: "0.1.44", Ecosystem: "crates.io"},
		{Name: "libssl3", Version: "3.0.11-1~deb12u1", SourceName: "openssl", Ecosystem: "Debian:12"},
		{Name: "libcrypto3", Version: "3.1.3-r0", SourceName: "openssl", Ecosystem: "Alpine:v3.18"},
		{Name: "left-pad", Version: "1.3.0", Ecosystem: "npm"},
	}
}

func BenchmarkBuildAndMatch1000(b *testing.B) {
	base := samplePackages()
	pkgs := make([]report.Package, 0, 1000)
	for i := 0; len(pkgs) < 1000; i++ {
		p := base[i%len(base)]
		if i >= len(base) && i%2 == 0 {
			p.Name = fmt.Sprintf("%s-%d", p.Name, i) // misses, like most real packages
		}
		pkgs = append(pkgs, p)
	}
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := Load(context.Background(), testdataDir); err != nil {
				b.Fatal(err)
			}
		}
	})
	db := loadTestDB(b)
	b.Run("match1000", func(b *testing.B) {
		for b.Loop() {
			if len(db.Match(pkgs)) == 0 {
				b.Fatal("no matches")
			}
		}
	})
}

// osv.dev's Go dump has both GO-2022-0969 and its GitHub advisory
// GHSA-69cg-p879-7622 (each naming the other): one vulnerability of
// golang.org/x/net, named by the Go id, with the GHSA's CVSS severity.
func TestAliasRecordsMerge(t *testing.T) {
	b := NewBuilder()
	for _, f := range []string{"osv/go/GO-2022-0969.json", "osv-aliases/GHSA-69cg-p879-7622.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		b.AddJSON(data)
	}
	db := b.Build()
	got := db.Match([]report.Package{{Name: "golang.org/x/net", Version: "v0.0.0-20220722155237-a158d28d115b", Ecosystem: "Go"}})
	if len(got) != 1 {
		t.Fatalf("got %d vulnerabilities, want one merged: %+v", len(got), got)
	}
	v := got[0]
	if v.ID != "GO-2022-0969" || v.Severity != SeverityHigh || v.FixedVersion != "0.0.0-20220906165146-f3363e06e74c" ||
		!slices.Equal(v.Aliases, []string{"CVE-2022-27664", "GHSA-69cg-p879-7622"}) {
		t.Fatalf("merged = %+v", v)
	}
	// Different packages are never merged.
	got = db.Match([]report.Package{
		{Name: "golang.org/x/net", Version: "v0.0.0-20220722155237-a158d28d115b", Ecosystem: "Go"},
		{Name: "stdlib", Version: "1.18.5", Ecosystem: "Go"},
	})
	if len(got) != 2 || got[0].Package != "golang.org/x/net" || got[1].Package != "stdlib" || got[1].ID != "GO-2022-0969" {
		t.Fatalf("two packages: %+v", got)
	}
}

// A distribution match names the source package it was matched on when
// that differs from the installed one; other matches don't.
func TestMatchRecordsSourcePackage(t *testing.T) {
	db, _, err := Load(context.Background(), filepath.Join("testdata", "osv", "other"))
	if err != nil {
		t.Fatal(err)
	}
	got := db.Match([]report.Package{
		{Name: "libssl3", Version: "3.0.11-1~deb12u1+b1", SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u1", Ecosystem: "Debian:12"},
		{Name: "lodash", Version: "4.17.20", Ecosystem: "npm"},
	})
	for _, v := range got {
		switch v.Package {
		case "libssl3":
			if v.SourceName != "openssl" || v.SourceVersion != "3.0.11-1~deb12u1" || v.Version != "3.0.11-1~deb12u1+b1" {
				t.Errorf("%s: %+v", v.ID, v)
			}
		case "lodash":
			if v.SourceName != "" || v.SourceVersion != "" {
				t.Errorf("%s: %+v", v.ID, v)
			}
		}
	}
	if len(got) < 3 {
		t.Fatalf("got %+v", got)
	}
}

func jsonString(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
