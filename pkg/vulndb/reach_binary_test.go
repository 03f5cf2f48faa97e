package vulndb_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/gobinary"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/vulndb"
)

// textProgram requires golang.org/x/text v0.3.2, affected by GO-2020-0015
// (encoding/unicode, transform.String), GO-2021-0113 (language.Parse, …)
// and GO-2022-1059 (language.ParseAcceptLanguage, MatchStrings), and
// calls only language.Parse (which the compiler inlines into main).
var textProgram = scantest.GoProgram{
	Module:  "example.com/customs/reach",
	Require: map[string]string{"golang.org/x/text": "v0.3.2"},
	Main: `package main

import (
	"fmt"
	"os"

	"golang.org/x/text/language"
)

func main() {
	t, err := language.Parse(os.Args[len(os.Args)-1])
	fmt.Println(t, err)
}
`,
}

// goDBFiles are the Go records of testdata (osv/go and osv-platform).
func goDBFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"testdata/osv/go", "testdata/osv-platform"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

func goDB(t *testing.T) *vulndb.DB {
	t.Helper()
	b := vulndb.NewBuilder()
	for _, f := range goDBFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.AddJSON(data)
	}
	return b.Build()
}

func analyze(t *testing.T, bin []byte) []report.Package {
	t.Helper()
	res, err := gobinary.New().Analyze(context.Background(), &analyzer.File{Path: "app", Mode: 0o755, Size: int64(len(bin)), Data: bin})
	if err != nil || res == nil {
		t.Fatalf("analyze: %v %v", res, err)
	}
	return res.Packages
}

// reachability of each Go vulnerability matched in bin.
func reachability(t *testing.T, db *vulndb.DB, bin []byte) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, v := range db.MatchPlatform(analyze(t, bin), "") {
		got[v.ID] = v.Reachable
	}
	return got
}

// A binary built here, with the vulnerable module from the module proxy:
// of the three advisories of x/text v0.3.2 only GO-2021-0113 names a
// function the binary contains (language.Parse, inlined: found through
// the inline tree). Stripped, the same binary says unknown.
func TestGoBinaryReachability(t *testing.T) {
	db := goDB(t)
	bin := scantest.BuildGo(t, textProgram)
	want := map[string]string{"GO-2020-0015": "false", "GO-2021-0113": "true", "GO-2022-1059": "false"}
	if got := reachability(t, db, bin); !mapsEqual(got, want) {
		t.Errorf("reachability %v, want %v", got, want)
	}
	stripped := textProgram
	stripped.Strip = true
	want = map[string]string{"GO-2020-0015": "unknown", "GO-2021-0113": "unknown", "GO-2022-1059": "unknown"}
	if got := reachability(t, db, scantest.BuildGo(t, stripped)); !mapsEqual(got, want) {
		t.Errorf("stripped: reachability %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// govulncheckVersion is the govulncheck the comparison builds.
const govulncheckVersion = "v1.10.0"

var govulncheckBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "customs-govulncheck-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(goTool(), "install", "golang.org/x/vuln/cmd/govulncheck@"+govulncheckVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{err: err, out: string(out)}
	}
	return filepath.Join(dir, "govulncheck"), nil
})

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// govulncheck runs govulncheck -mode binary on bin against the records in
// files and returns, per OSV id, the deepest level it reported: "module",
// "package" or "symbol".
func govulncheck(t *testing.T, bin []byte, files []string) map[string]string {
	t.Helper()
	tool, err := govulncheckBin()
	if err != nil {
		t.Skipf("govulncheck %s could not be built (no module proxy?): %v", govulncheckVersion, err)
	}
	dbDir := t.TempDir() // a flat directory of <id>.json is a database to govulncheck
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dbDir, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	binPath := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(binPath, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool, "-mode", "binary", "-scan", "symbol", "-format", "json", "-db", "file://"+dbDir, binPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("govulncheck: %v\n%s", err, stderr.String())
	}
	level := map[string]string{}
	rank := map[string]int{"module": 1, "package": 2, "symbol": 3}
	dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(out)))
	for {
		var msg struct {
			Finding *struct {
				OSV   string `json:"osv"`
				Trace []struct {
					Package  string `json:"package"`
					Function string `json:"function"`
				} `json:"trace"`
			} `json:"finding"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("govulncheck output: %v", err)
		}
		if msg.Finding == nil || len(msg.Finding.Trace) == 0 {
			continue
		}
		l := "module"
		switch {
		case msg.Finding.Trace[0].Function != "":
			l = "symbol"
		case msg.Finding.Trace[0].Package != "":
			l = "package"
		}
		if rank[l] > rank[level[msg.Finding.OSV]] {
			level[msg.Finding.OSV] = l
		}
	}
	return level
}

// Customs and govulncheck -mode binary agree on the same binaries: the
// vulnerabilities matched (after the platform filter) are those
// govulncheck reports, and reachable ones are exactly those it finds at
// symbol level. ELF, PE and Mach-O builds of the same program, with and
// without a symbol table.
func TestGoReachabilityAgreesWithGovulncheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds govulncheck")
	}
	db := goDB(t)
	files := goDBFiles(t)
	for _, target := range []struct {
		goos, goarch string
		strip        bool
	}{
		{"linux", runtime.GOARCH, false},
		{"linux", runtime.GOARCH, true},
		{"windows", "amd64", false},
		{"darwin", "arm64", false},
	} {
		name := target.goos + "/" + target.goarch
		if target.strip {
			name += "/stripped"
		}
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			p := textProgram
			p.GOOS, p.GOARCH, p.Strip = target.goos, target.goarch, target.strip
			bin := scantest.BuildGo(t, p)
			ours := reachability(t, db, bin)
			theirs := govulncheck(t, bin, files)
			var oursAll, theirsAll, oursReach, theirsSym []string
			for id, r := range ours {
				oursAll = append(oursAll, id)
				if r == report.ReachableTrue {
					oursReach = append(oursReach, id)
				}
			}
			for id, l := range theirs {
				theirsAll = append(theirsAll, id)
				if l == "symbol" {
					theirsSym = append(theirsSym, id)
				}
			}
			for _, s := range [][]string{oursAll, theirsAll, oursReach, theirsSym} {
				sort.Strings(s)
			}
			if !slices.Equal(oursAll, theirsAll) {
				t.Errorf("matched: customs %v, govulncheck %v", oursAll, theirsAll)
			}
			if target.strip {
				// Without symbols govulncheck falls back to module
				// precision and Customs says unknown.
				for id, r := range ours {
					if r != report.ReachableUnknown {
						t.Errorf("%s: reachable %q on a stripped binary", id, r)
					}
				}
				return
			}
			if !slices.Equal(oursReach, theirsSym) {
				t.Errorf("reachable: customs %v, govulncheck (symbol level) %v", oursReach, theirsSym)
			}
			t.Logf("%s: %d matched, %d reachable; govulncheck %v", name, len(oursAll), len(oursReach), theirs)
		})
	}
}
