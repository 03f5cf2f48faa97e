package vulndb

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/customs-scan/customs/pkg/gosyms"
	"github.com/customs-scan/customs/pkg/report"
)

func buildFrom(t *testing.T, files ...string) *DB {
	t.Helper()
	b := NewBuilder()
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		b.AddJSON(data)
	}
	return b.Build()
}

// GO-2023-2185 (path/filepath, \??\ prefixes) affects Windows only: a
// Linux binary built with an affected Go does not get it, a Windows one
// does; without the binary's own GOOS the image platform decides.
func TestGoPlatformFilter(t *testing.T) {
	db := buildFrom(t, "osv-platform/GO-2023-2185.json")
	std := func(goos, goarch string) report.Package {
		return report.Package{Name: "stdlib", Version: "1.21.3", Ecosystem: "Go", GOOS: goos, GOARCH: goarch}
	}
	for _, c := range []struct {
		pkg      report.Package
		platform string
		want     int
	}{
		{std("linux", "amd64"), "", 0},
		{std("linux", "amd64"), "windows/amd64", 0}, // the binary's own settings win
		{std("windows", "amd64"), "linux/amd64", 1},
		{std("", ""), "linux/arm64/v8", 0},
		{std("", ""), "windows/amd64", 1},
		{std("", ""), "", 1}, // nothing known: reported
	} {
		got := db.MatchPlatform([]report.Package{c.pkg}, c.platform)
		if len(got) != c.want {
			t.Errorf("%s/%s on %q: %d vulnerabilities, want %d: %+v", c.pkg.GOOS, c.pkg.GOARCH, c.platform, len(got), c.want, got)
		}
	}
	// The imports survive a write and read (format 4).
	data, err := db.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Read(bytesReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if got := again.MatchPlatform([]report.Package{std("linux", "amd64")}, ""); len(got) != 0 {
		t.Errorf("after a round trip: %+v", got)
	}
	e := again.index[indexKey(ecoGo, "stdlib")][0]
	if len(e.Imports) != 2 || e.Imports[0].Path != "path/filepath" || e.Imports[0].GOOS[0] != "windows" || len(e.Imports[0].Symbols) != 15 {
		t.Errorf("imports after a round trip: %+v", e.Imports)
	}
}

// Go's records carry no severity: a Go vulnerability takes it from an
// aliased record (here GitHub's GHSA-69cg-p879-7622, CVSS 7.5, which
// names golang.org/x/net only, so it does not merge with stdlib's match).
func TestGoSeverityFromAlias(t *testing.T) {
	alone := buildFrom(t, "osv/go/GO-2022-0969.json")
	std := report.Package{Name: "stdlib", Version: "1.18.5", Ecosystem: "Go"}
	if got := alone.Match([]report.Package{std}); len(got) != 1 || got[0].Severity != SeverityUnknown || got[0].CVSS != nil {
		t.Fatalf("without the alias: %+v", got)
	}
	db := buildFrom(t, "osv/go/GO-2022-0969.json", "osv-aliases/GHSA-69cg-p879-7622.json")
	got := db.Match([]report.Package{std})
	if len(got) != 1 || got[0].ID != "GO-2022-0969" || got[0].Severity != SeverityHigh ||
		got[0].CVSS == nil || got[0].CVSS.Vector != "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H" {
		t.Fatalf("with the alias: %+v", got)
	}
	// Other ecosystems keep their own (absent) rating.
	other := buildFrom(t, "osv/other/PYSEC-2023-74.json")
	if got := other.Match([]report.Package{{Name: "requests", Version: "2.28.1", Ecosystem: "PyPI"}}); len(got) != 1 || got[0].Severity != SeverityUnknown {
		t.Fatalf("pypi: %+v", got)
	}
}

// Reachability from a module's symbol fingerprint, govulncheck's rules.
func TestGoReachability(t *testing.T) {
	db := buildFrom(t, "osv/go/GO-2021-0113.json", "osv/go/GO-2022-1059.json", "osv/go/GO-2023-1840.json")
	fp := func(syms ...gosyms.Symbol) string { return gosyms.Fingerprint(syms) }
	text := func(fp string) report.Package {
		return report.Package{Name: "golang.org/x/text", Version: "0.3.5", Ecosystem: "Go", GoSymbols: fp}
	}
	reach := func(pkgs ...report.Package) map[string]string {
		m := map[string]string{}
		for _, v := range db.Match(pkgs) {
			m[v.ID] = v.Reachable
		}
		return m
	}
	parse := fp(gosyms.Symbol{Pkg: "golang.org/x/text/language", Name: "Parse"}, gosyms.Symbol{Pkg: "golang.org/x/text/language", Name: "Tag.String"})
	got := reach(text(parse))
	if got["GO-2021-0113"] != report.ReachableTrue || got["GO-2022-1059"] != report.ReachableFalse {
		t.Errorf("Parse linked: %v", got)
	}
	other := fp(gosyms.Symbol{Pkg: "golang.org/x/text/unicode/norm", Name: "Form.String"})
	if got := reach(text(other)); got["GO-2021-0113"] != report.ReachableFalse || got["GO-2022-1059"] != report.ReachableFalse {
		t.Errorf("language not linked: %v", got)
	}
	if got := reach(text("")); got["GO-2021-0113"] != report.ReachableUnknown {
		t.Errorf("stripped: %v", got)
	}
	if got := reach(text("garbage")); got["GO-2021-0113"] != report.ReachableUnknown {
		t.Errorf("corrupt fingerprint: %v", got)
	}
	// Two binaries with the same version: reachable if either is.
	if got := reach(text(other), text(parse)); got["GO-2021-0113"] != report.ReachableTrue {
		t.Errorf("two installs: %v", got)
	}
	// An import without symbols (runtime in GO-2023-1840) is the whole
	// package.
	std := report.Package{Name: "stdlib", Version: "1.19.1", Ecosystem: "Go",
		GoSymbols: fp(gosyms.Symbol{Pkg: "runtime", Name: "main"})}
	if got := reach(std); got["GO-2023-1840"] != report.ReachableTrue {
		t.Errorf("runtime: %v", got)
	}
	// Non-Go ecosystems say nothing.
	for _, v := range loadTestDB(t).Match([]report.Package{{Name: "lodash", Version: "4.17.15", Ecosystem: "npm"}}) {
		if v.Reachable != "" {
			t.Errorf("npm %s: reachable %q", v.ID, v.Reachable)
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
