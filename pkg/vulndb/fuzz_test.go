package vulndb

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/report"
)

// FuzzAddJSON builds a database from one OSV record, writes it and reads
// it back, and matches packages named by the record (every version its
// ranges and versions list name, plus one from the fuzzer) against it.
// It checks that nothing panics (JSON, CVSS vectors, version parsers of
// every ecosystem, range sorting), that a record is counted exactly once
// (kept, invalid or withdrawn), that the database round-trips through
// Write and Read with the same content hash, and that every match names
// the queried package with a known severity.
func FuzzAddJSON(f *testing.F) {
	for _, dir := range []string{"testdata/osv", "testdata/osv-aliases", "testdata/osv-rpm"} {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
				if b, err := os.ReadFile(p); err == nil {
					f.Add(b, "1.0.0")
				}
			}
			return nil
		})
	}
	f.Add([]byte(`{"id":"X-1","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},{"type":"CVSS_V4","score":"CVSS:4.0/AV:N"}],`+
		`"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.11-1~deb12u2"},{"last_affected":"1:2"}]}],`+
		`"ecosystem_specific":{"urgency":"high"},"database_specific":{"severity":"HIGH"}},`+
		`{"package":{"ecosystem":"Alpine:v3.19","name":"musl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2.4-r3"}]}]},`+
		`{"package":{"ecosystem":"Red Hat:enterprise_linux:9::appstream","name":"curl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"0:7.76.1-26.el9_3.2"}]}]},`+
		`{"package":{"ecosystem":"Ubuntu:22.04:LTS","name":"bash"},"versions":["5.1-6ubuntu1"]},`+
		`{"package":{"ecosystem":"PyPI","name":"Django_Rest"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.0a1"},{"fixed":"2.0.post1"}]}]},`+
		`{"package":{"ecosystem":"Maven","name":"org.x:y"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.0-SNAPSHOT"}]}]},`+
		`{"package":{"ecosystem":"RubyGems","name":"rack"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.0.beta1"}]}]},`+
		`{"package":{"ecosystem":"npm","name":"@a/b"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3-rc.1"}]}]},`+
		`{"package":{"ecosystem":"Go","name":"stdlib"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.22.0"},{"fixed":"1.22.3"}]},{"type":"GIT","events":[{"introduced":"abc"}]}]}]}`), "1.22.1")
	f.Add([]byte(`{"id":"W","modified":"2024-01-01T00:00:00Z","withdrawn":"2024-02-01T00:00:00Z"}`), "")
	f.Add([]byte(`{"id":"","affected":[{}]}`), "0")
	known := map[string]bool{"": true, SeverityNone: true, SeverityLow: true, SeverityMedium: true, SeverityHigh: true, SeverityCritical: true, SeverityUnknown: true}
	f.Fuzz(func(t *testing.T, data []byte, version string) {
		b := NewBuilder()
		b.Now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
		b.AddJSON(data)
		db := b.Build()
		st := b.Stats()
		if st.Records != 1 || st.Invalid+st.Withdrawn > 1 || (st.Invalid+st.Withdrawn == 1 && db.Len() != 0) {
			t.Fatalf("stats %+v with %d entries", st, db.Len())
		}
		var buf bytes.Buffer
		if err := db.Write(&buf); err != nil {
			t.Fatalf("Write: %v", err)
		}
		back, err := Read(&buf)
		if err != nil {
			t.Fatalf("Read of a database just written: %v", err)
		}
		if h, bh := db.Header(), back.Header(); h.Format != bh.Format || h.ContentHash != bh.ContentHash || !h.Built.Equal(bh.Built) ||
			h.Entries != bh.Entries || h.Advisories != bh.Advisories {
			t.Fatalf("header %+v read back as %+v", db.Header(), back.Header())
		}
		if db.Len() == 0 {
			return
		}
		var rec osvRecord
		_ = json.Unmarshal(data, &rec)
		var pkgs []report.Package
		for _, a := range rec.Affected {
			vs := append([]string{version, "0"}, a.Versions...)
			for _, r := range a.Ranges {
				for _, ev := range r.Events {
					vs = append(vs, ev.Introduced, ev.Fixed, ev.LastAffected, ev.Limit)
				}
			}
			for _, v := range vs {
				if v == "" || len(pkgs) >= 256 {
					continue
				}
				pkgs = append(pkgs,
					report.Package{Name: a.Package.Name, Version: v, Ecosystem: a.Package.Ecosystem},
					report.Package{Name: "bin-" + a.Package.Name, Version: "1", SourceName: a.Package.Name, SourceVersion: v, Ecosystem: a.Package.Ecosystem})
			}
		}
		names := map[string]bool{}
		for _, p := range pkgs {
			names[p.Name+"\x00"+p.Version] = true
		}
		for _, d := range []*DB{db, back} {
			for _, v := range d.Match(pkgs) {
				if v.ID == "" || !names[v.Package+"\x00"+v.Version] || !known[v.Severity] {
					t.Fatalf("bad match %+v", v)
				}
			}
		}
	})
}
