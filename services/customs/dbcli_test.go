package customs_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/customs-scan/customs/pkg/osvfeed/osvfeedtest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/vulndb"
)

// osvZip packs OSV records the way osv.dev's <ecosystem>/all.zip does:
// one <id>.json per record at the top level.
func osvZip(t *testing.T, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(osvDir, f))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(filepath.Base(f))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func runCustoms(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(customsBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// `customs db update` downloads the all.zip dumps (here from a local HTTP
// server standing in for osv.dev) and a directory of records, builds the
// database in the default place ($CUSTOMS_DB), and `customs scan` uses it.
func TestDBUpdateThenScan(t *testing.T) {
	var downloads atomic.Int64
	npmZip := osvZip(t, "other/GHSA-35jh-r3h4-6jhm.json", "other/GHSA-p6mc-m468-83gw.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/npm/all.zip" {
			http.NotFound(w, r)
			return
		}
		downloads.Add(1)
		w.Header().Set("Content-Type", "application/zip")
		w.Write(npmZip)
	}))
	defer srv.Close()

	dbPath := filepath.Join(t.TempDir(), "cache", "vulndb.gob.gz")
	env := []string{"CUSTOMS_DB=" + dbPath}
	out, errOut, err := runCustoms(t, env, "db", "update", "--progress",
		"--source", srv.URL+"/npm/all.zip", "--source", filepath.Join(osvDir, "go"))
	if err != nil {
		t.Fatalf("db update: %v\n%s", err, errOut)
	}
	if downloads.Load() != 1 || !strings.Contains(out, "wrote "+dbPath) || !strings.Contains(errOut, "MiB") {
		t.Fatalf("db update: downloads=%d\nstdout: %s\nstderr: %s", downloads.Load(), out, errOut)
	}
	db, err := vulndb.OpenFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, db.Version()) || db.Header().Advisories < 10 {
		t.Fatalf("db: %+v\n%s", db.Header(), out)
	}
	info, _, err := runCustoms(t, env, "db", "info")
	if err != nil || !strings.Contains(info, db.Version()) {
		t.Fatalf("db info: %v\n%s", err, info)
	}

	dir := t.TempDir()
	img := scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...),
		scantest.Layer(t, scantest.Reg("app/node_modules/lodash/package.json", `{"name":"lodash","version":"4.17.20"}`)))
	saved := filepath.Join(dir, "app.tar")
	tag, _ := name.NewTag("example.com/team/app:1")
	if err := tarball.WriteToFile(saved, tag, img); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = runCustoms(t, env, "scan", "--input", saved)
	if err != nil {
		t.Fatalf("scan: %v\n%s", err, errOut)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.VulnerabilityDB.Status != report.VulnDBChecked || r.VulnerabilityDB.Version != db.Version() || findVuln(&r, "GHSA-35jh-r3h4-6jhm") == nil {
		t.Fatalf("scan with the database: %+v %+v", r.VulnerabilityDB, r.Vulnerabilities)
	}

	// --ignore: listed as ignored, with its reason, in JSON and table.
	ign := filepath.Join(dir, "ignore.yaml")
	os.WriteFile(ign, []byte("ignore:\n  - id: GHSA-35jh-r3h4-6jhm\n    reason: accepted risk, see TICKET-1\n"), 0o644)
	out, errOut, err = runCustoms(t, env, "scan", "--input", saved, "--ignore", ign, "--format", "table")
	if err != nil {
		t.Fatalf("scan --ignore: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "IGNORED") || !strings.Contains(out, "GHSA-35jh-r3h4-6jhm") || !strings.Contains(out, db.Version()) {
		t.Fatalf("table with an ignored vulnerability:\n%s", out)
	}

	// No database: the scan still lists packages, and says what it did not do.
	env = []string{"CUSTOMS_DB=" + filepath.Join(dir, "none.gob.gz")}
	out, errOut, err = runCustoms(t, env, "scan", "--input", saved)
	if err != nil {
		t.Fatalf("scan without a database: %v\n%s", err, errOut)
	}
	r = report.Report{}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.VulnerabilityDB.Status != report.VulnDBNotChecked || len(r.Packages) == 0 || !strings.Contains(errOut, "customs db update") {
		t.Fatalf("without a database: %+v, %d packages, stderr %q", r.VulnerabilityDB, len(r.Packages), errOut)
	}
	// An explicit --db that does not exist is an error, not a silent skip.
	if _, errOut, err := runCustoms(t, nil, "scan", "--input", saved, "--db", filepath.Join(dir, "typo.gob.gz")); err == nil || !strings.Contains(errOut, "typo.gob.gz") {
		t.Fatalf("scan --db missing: err=%v stderr=%s", err, errOut)
	}
	// A source that is not OSV data fails with a reason and writes nothing.
	bad := filepath.Join(dir, "bad")
	os.MkdirAll(bad, 0o755)
	os.WriteFile(filepath.Join(bad, "x.json"), []byte(`{"hello": "world"}`), 0o644)
	badDB := filepath.Join(dir, "bad.gob.gz")
	if _, errOut, err := runCustoms(t, nil, "db", "update", "--db", badDB, "--source", bad); err == nil || !strings.Contains(errOut, "no usable OSV records") {
		t.Fatalf("bad source: err=%v stderr=%s", err, errOut)
	}
	if _, err := os.Stat(badDB); err == nil {
		t.Fatal("a database was written from a bad source")
	}
	if _, errOut, err := runCustoms(t, nil, "db", "update", "--db", badDB, "--source", srv.URL+"/missing/all.zip"); err == nil || !strings.Contains(errOut, "404") {
		t.Fatalf("404 source: err=%v stderr=%s", err, errOut)
	}
}

// --layer-cache: a second scan of an image sharing the cached layers gives
// the same packages and findings.
func TestScanLayerCacheDir(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "layers")
	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	scanOne := func(img v1.Image, file string) report.Report {
		t.Helper()
		tag, _ := name.NewTag("example.com/team/app:1")
		p := filepath.Join(dir, file)
		if err := tarball.WriteToFile(p, tag, img); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := runCustoms(t, nil, "scan", "--input", p, "--layer-cache", cache)
		if err != nil {
			t.Fatalf("scan: %v\n%s", err, errOut)
		}
		var r report.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := scanOne(scantest.Image(t, base), "a.tar")
	entries, _ := os.ReadDir(cache)
	if len(entries) != 1 {
		t.Fatalf("cache holds %d entries after one single-layer image", len(entries))
	}
	second := scanOne(scantest.Image(t, base, scantest.Layer(t, scantest.Reg("etc/motd", "hi\n"))), "b.tar")
	if entries, _ = os.ReadDir(cache); len(entries) != 2 {
		t.Fatalf("cache holds %d entries, want 2", len(entries))
	}
	if len(first.Packages) == 0 || len(first.Packages) != len(second.Packages) || second.OS != first.OS {
		t.Fatalf("first %d packages %+v, second %d packages %+v", len(first.Packages), first.OS, len(second.Packages), second.OS)
	}
	for i := range first.Packages {
		if first.Packages[i] != second.Packages[i] {
			t.Errorf("package %d: %+v vs %+v", i, first.Packages[i], second.Packages[i])
		}
	}
}

// `customs db update` without --source keeps the database current from a
// mirror of OSV's per-ecosystem dumps (here a local one serving real
// records): every ecosystem is asked, unchanged ones answer 304 and are
// not downloaded again, an unchanged set of dumps is not rebuilt, and a
// corrupt dump leaves the database as it was and fails the command.
func TestDBUpdateFromMirror(t *testing.T) {
	m := osvfeedtest.New(t, map[string][]string{
		"Go":  {"osv/go/GO-2021-0113.json", "osv/go/GO-2022-1059.json"},
		"npm": {"osv/other/GHSA-35jh-r3h4-6jhm.json"},
	})
	dbPath := filepath.Join(t.TempDir(), "vulndb.gob.gz")
	env := []string{"CUSTOMS_DB=" + dbPath, "CUSTOMS_OSV_MIRROR=" + m.URL}
	out, errOut, err := runCustoms(t, env, "db", "update", "--progress")
	if err != nil {
		t.Fatalf("db update: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(out, "2 downloaded, 0 unchanged, "+strconv.Itoa(len(vulndb.Ecosystems())-2)+" not on the mirror, 0 failed") ||
		!strings.Contains(out, "wrote "+dbPath) || !strings.Contains(errOut, "npm\n") {
		t.Fatalf("first update:\n%s\n%s", out, errOut)
	}
	db, err := vulndb.OpenFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(db.Match([]report.Package{{Name: "lodash", Version: "4.17.15", Ecosystem: "npm"}})); n != 1 {
		t.Errorf("lodash: %d", n)
	}
	before, _ := os.ReadFile(dbPath)

	out, errOut, err = runCustoms(t, env, "db", "update")
	if err != nil || !strings.Contains(out, "0 downloaded, 2 unchanged") || !strings.Contains(out, "up to date: "+dbPath) {
		t.Fatalf("second update: %v\n%s\n%s", err, out, errOut)
	}
	if m.Downloads("Go") != 1 || m.Downloads("npm") != 1 {
		t.Errorf("downloads Go %d npm %d after an unchanged update, want 1 each", m.Downloads("Go"), m.Downloads("npm"))
	}

	m.SetRaw("Go", []byte("PK\x03\x04 not really a zip"))
	out, errOut, err = runCustoms(t, env, "db", "update")
	if err == nil || !strings.Contains(errOut, "Go: not a zip") || !strings.Contains(errOut, "the database was not changed") {
		t.Fatalf("corrupt dump: %v\n%s\n%s", err, out, errOut)
	}
	if after, _ := os.ReadFile(dbPath); !bytes.Equal(before, after) {
		t.Error("a corrupt dump changed the database")
	}

	// --mirror wins over the environment; --source and --mirror exclude
	// each other.
	m.Set(t, "Go", "osv/go/GO-2021-0113.json")
	out, errOut, err = runCustoms(t, []string{"CUSTOMS_DB=" + dbPath, "CUSTOMS_OSV_MIRROR=http://127.0.0.1:1"}, "db", "update", "--mirror", m.URL)
	if err != nil || !strings.Contains(out, "1 downloaded, 1 unchanged") || !strings.Contains(out, "wrote ") {
		t.Fatalf("--mirror: %v\n%s\n%s", err, out, errOut)
	}
	if _, _, err := runCustoms(t, env, "db", "update", "--mirror", m.URL, "--source", "x"); err == nil {
		t.Error("--mirror with --source accepted")
	}
}
