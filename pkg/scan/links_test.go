package scan_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// pkgSummary lists the packages as "name@path#layer" (1-based layer
// index), sorted.
func pkgSummary(t testing.TB, res *scan.Result) string {
	t.Helper()
	idx := map[string]int{}
	for i, l := range res.Layers {
		idx[l.Digest] = i + 1
	}
	var out []string
	for _, p := range res.Packages {
		out = append(out, fmt.Sprintf("%s@%s#%d", p.Name, p.Path, idx[p.Layer]))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// debianOS is the os-release part of DebianRootfs: usr/lib/os-release and
// the etc/os-release symlink to it.
func debianOS(t testing.TB) []scantest.File {
	t.Helper()
	fs := scantest.DebianRootfs(t)[:5]
	if fs[1].Path != "etc/os-release" || fs[4].Path != "usr/lib/os-release" {
		t.Fatalf("DebianRootfs changed: %+v", fs)
	}
	return fs
}

func fileOf(t testing.TB, files []scantest.File, p string) string {
	t.Helper()
	for _, f := range files {
		if f.Path == p {
			return string(f.Content)
		}
	}
	t.Fatalf("no %s", p)
	return ""
}

const (
	alpineOSRelease = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n"
	status          = scantest.DpkgStatusPath
)

type linkCase struct {
	name   string
	layers [][]scantest.File
	want   string // pkgSummary
	osID   string
}

// scanLinkCase scans the case uncached, at concurrency 1 and 4, and
// through a layer cache (cold, then warm): every result must be the same.
func scanLinkCase(t *testing.T, tc linkCase) *scan.Result {
	t.Helper()
	var layers []v1.Layer
	for _, fs := range tc.layers {
		layers = append(layers, scantest.Layer(t, fs...))
	}
	img := scantest.Image(t, layers...)
	start := time.Now()
	want := mustScan(t, img)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("scan took %v", d)
	}
	if got := mustScan(t, img, scan.WithConcurrency(1)); !reflect.DeepEqual(got, want) {
		t.Errorf("concurrency 1 differs:\n got %+v\nwant %+v", got, want)
	}
	cache := newMemCache()
	var cacheErrs []error
	opts := []scan.Option{scan.WithLayerCache(cache), scan.WithCacheErrors(func(err error) { cacheErrs = append(cacheErrs, err) })}
	sameResult(t, mustScan(t, img, opts...), want) // cold: fills the cache
	if n := len(cache.keys()); n != len(layers) {
		t.Errorf("cache holds %d entries, want %d", n, len(layers))
	}
	sameResult(t, mustScan(t, img, opts...), want) // warm
	if len(cacheErrs) > 0 {
		t.Errorf("cache errors: %v", cacheErrs)
	}
	return want
}

func runLinkCases(t *testing.T, cases []linkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := scanLinkCase(t, tc)
			if got := pkgSummary(t, res); got != tc.want {
				t.Errorf("packages:\n got %s\nwant %s", got, tc.want)
			}
			if res.OS.ID != tc.osID {
				t.Errorf("OS = %+v, want ID %q", res.OS, tc.osID)
			}
			for _, p := range res.Packages {
				if p.Name == "bash" && p.Ecosystem != "Debian:12" && tc.osID == "debian" {
					t.Errorf("post-processing missed %+v", p)
				}
			}
		})
	}
}

// (1) A database written through a symlinked directory is found where the
// runtime (containerd) puts it.
func TestSymlinkedDirectoryWrite(t *testing.T) {
	osf := debianOS(t)
	st := scantest.DebianStatus(t, "bash", "zlib1g")
	got := "bash@var/lib/dpkg/status#2 zlib1g@var/lib/dpkg/status#2"
	with := func(extra ...scantest.File) []scantest.File { return append(slices.Clone(osf), extra...) }
	runLinkCases(t, []linkCase{
		{"absolute target, file in a later layer",
			[][]scantest.File{with(scantest.Symlink("opt/d", "/var/lib/dpkg")), {scantest.Reg("opt/d/status", st)}}, got, "debian"},
		{"among many other files (cached layers searched, not hashed)",
			[][]scantest.File{with(append(fillers("usr/share/doc", 200), scantest.Symlink("opt/d", "/var/lib/dpkg"))...), append(fillers("srv", 200), scantest.Reg("opt/d/status", st))}, got, "debian"},
		{"relative target, file in a later layer",
			[][]scantest.File{with(scantest.Symlink("opt/d", "../var/lib/dpkg")), {scantest.Reg("opt/d/status", st)}}, got, "debian"},
		{"link and file in one layer",
			[][]scantest.File{with(), {scantest.Symlink("opt/d", "/var/lib/dpkg"), scantest.Reg("opt/d/status", st)}}, got, "debian"},
		{"link to an ancestor",
			[][]scantest.File{with(scantest.Symlink("x", "var/lib")), {scantest.Reg("x/dpkg/status", st)}}, got, "debian"},
		{"link to the root",
			[][]scantest.File{with(scantest.Symlink("r", "/")), {scantest.Reg("r/var/lib/dpkg/status", st)}}, got, "debian"},
		{"chained directory links",
			[][]scantest.File{with(scantest.Symlink("a", "/b"), scantest.Symlink("b", "var/lib/dpkg")), {scantest.Reg("a/status", st)}}, got, "debian"},
		{"link written through a link",
			[][]scantest.File{with(scantest.Symlink("opt/v", "/var")), {scantest.Symlink("opt/v/lib", "/srv/lib"), scantest.Reg("srv/lib/dpkg/status", st)}},
			"bash@var/lib/dpkg/status#2 zlib1g@var/lib/dpkg/status#2", "debian"},
		{"over an existing database: both readings, each package once",
			[][]scantest.File{scantest.DebianRootfs(t), {scantest.Symlink("opt/d", "/var/lib/dpkg")}, {scantest.Reg("opt/d/status", st)}},
			"base-files@var/lib/dpkg/status#1 bash@var/lib/dpkg/status#1 libc6@var/lib/dpkg/status#1 zlib1g@var/lib/dpkg/status#3", "debian"},
		{"link replaced by a directory before the write",
			[][]scantest.File{with(scantest.Symlink("opt/d", "/var/lib/dpkg")), {scantest.Dir("opt/d"), scantest.Reg("opt/d/status", st)}}, "", "debian"},
		{"link deleted after the write: the file stays",
			[][]scantest.File{with(scantest.Symlink("opt/d", "/var/lib/dpkg")), {scantest.Reg("opt/d/status", st)}, {scantest.Whiteout("opt/d")}}, got, "debian"},
		{"directory turned into a link after the write",
			[][]scantest.File{with(scantest.Reg("opt/d/status", st)), {scantest.Symlink("opt/d", "/var/lib/dpkg")}}, "", "debian"},
		{"written file deleted later at its physical path",
			[][]scantest.File{with(scantest.Symlink("opt/d", "/var/lib/dpkg")), {scantest.Reg("opt/d/status", st)}, {scantest.Whiteout(status)}}, "", "debian"},
		{"written file replaced later at its physical path",
			[][]scantest.File{with(scantest.Symlink("opt/d", "/var/lib/dpkg")), {scantest.Reg("opt/d/status", st)}, {scantest.Reg(status, scantest.DebianStatus(t, "zlib1g", "tzdata"))}},
			"tzdata@var/lib/dpkg/status#3 zlib1g@var/lib/dpkg/status#2", "debian"},
		{"distroless status.d",
			[][]scantest.File{with(scantest.Symlink("opt/s", "/var/lib/dpkg/status.d")), {scantest.Reg("opt/s/tzdata", scantest.DebianStatus(t, "tzdata"))}},
			"tzdata@var/lib/dpkg/status.d/tzdata#2", "debian"},
		{"apk",
			[][]scantest.File{{scantest.Symlink("x", "/lib/apk")}, {scantest.Reg("x/db/installed", fileOf(t, scantest.AlpineRootfs(t), scantest.ApkInstalledPath))}},
			apkSummary(t, "lib/apk/db/installed", 2), ""},
		{"merged /usr: written through lib, read under its name once",
			[][]scantest.File{{scantest.Symlink("lib", "usr/lib")}, {scantest.Reg(scantest.ApkInstalledPath, fileOf(t, scantest.AlpineRootfs(t), scantest.ApkInstalledPath))}},
			apkSummary(t, scantest.ApkInstalledPath, 2), ""},
		{"os-release",
			[][]scantest.File{{scantest.Symlink("o", "/etc")}, {scantest.Reg("o/os-release", alpineOSRelease)}}, "", "alpine"},
	})
}

func fillers(dir string, n int) []scantest.File {
	var fs []scantest.File
	for i := range n {
		fs = append(fs, scantest.Reg(fmt.Sprintf("%s/f%d/x", dir, i), "x"))
	}
	return fs
}

func apkSummary(t testing.TB, p string, layer int) string {
	t.Helper()
	var out []string
	for name := range scantest.AlpinePackages {
		out = append(out, fmt.Sprintf("%s@%s#%d", name, p, layer))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// (2) A database that is itself a symlink, or whose directory is one, is
// read where the link leads, under the name the analyzer wants.
func TestSymlinkedDatabase(t *testing.T) {
	osf := debianOS(t)
	st := scantest.DebianStatus(t, "bash", "zlib1g")
	at := func(layer int) string {
		return fmt.Sprintf("bash@var/lib/dpkg/status#%d zlib1g@var/lib/dpkg/status#%d", layer, layer)
	}
	with := func(extra ...scantest.File) []scantest.File { return append(slices.Clone(osf), extra...) }
	link := scantest.Symlink(status, "../../../opt/x/status")
	content := scantest.Reg("opt/x/status", st)
	alpine := fileOf(t, scantest.AlpineRootfs(t), scantest.ApkInstalledPath)
	runLinkCases(t, []linkCase{
		{"same layer", [][]scantest.File{with(link, content)}, at(1), "debian"},
		{"link above the content", [][]scantest.File{with(content), {link}}, at(1), "debian"},
		{"link below the content", [][]scantest.File{with(link), {content}}, at(2), "debian"},
		{"absolute target", [][]scantest.File{with(scantest.Symlink(status, "/opt/x/status"), content)}, at(1), "debian"},
		{"link to a link", [][]scantest.File{with(scantest.Symlink(status, "/opt/a"), scantest.Symlink("opt/a", "x/status")), {content}}, at(2), "debian"},
		{"link replacing a real database",
			[][]scantest.File{scantest.DebianRootfs(t), {scantest.Symlink(status, "/opt/x/status"), scantest.Reg("opt/x/status", scantest.DebianStatus(t, "zlib1g"))}},
			"zlib1g@var/lib/dpkg/status#2", "debian"},
		{"content replaced above", [][]scantest.File{with(link, content), {scantest.Reg("opt/x/status", scantest.DebianStatus(t, "tzdata"))}},
			"tzdata@var/lib/dpkg/status#2", "debian"},
		{"content deleted above", [][]scantest.File{with(link, content), {scantest.Whiteout("opt/x")}}, "", "debian"},
		{"link deleted above", [][]scantest.File{with(link, content), {scantest.Whiteout(status)}}, "", "debian"},
		{"anchor directory a link", [][]scantest.File{with(scantest.Symlink("var/lib/dpkg", "/opt/dpkg"), scantest.Reg("opt/dpkg/status", st))},
			at(1), "debian"},
		{"anchor directory a link, content below it", [][]scantest.File{with(scantest.Reg("opt/dpkg/status", st)), {scantest.Symlink("var/lib/dpkg", "../../opt/dpkg")}},
			at(1), "debian"},
		{"anchor's parent a link", [][]scantest.File{with(scantest.Symlink("var/lib", "/opt/l"), scantest.Reg("opt/l/dpkg/status", st))}, at(1), "debian"},
		{"status.d entry a link",
			[][]scantest.File{with(scantest.Symlink("var/lib/dpkg/status.d/tzdata", "/opt/tz"), scantest.Reg("opt/tz", scantest.DebianStatus(t, "tzdata")))},
			"tzdata@var/lib/dpkg/status.d/tzdata#1", "debian"},
		{"apk database directory a link (apk-tools 3 layout)",
			[][]scantest.File{{scantest.Symlink("lib/apk/db", "../../usr/lib/apk/db"), scantest.Reg("usr/lib/apk/db/installed", alpine)}},
			apkSummary(t, scantest.ApkInstalledPath, 1), ""},
		{"link replaced later in its layer by a file",
			[][]scantest.File{with(link, content, scantest.Reg(status, scantest.DebianStatus(t, "tzdata")))}, "tzdata@var/lib/dpkg/status#1", "debian"},
		{"file replaced later in its layer by a link",
			[][]scantest.File{with(scantest.Reg(status, scantest.DebianStatus(t, "tzdata")), link, content)}, at(1), "debian"},
		{"a file nobody wants", [][]scantest.File{with(scantest.Symlink(status, "/opt/x/status"), scantest.Reg("opt/x/status", "not a status file\n"))}, "", "debian"},
		{"a dangling link", [][]scantest.File{with(scantest.Symlink(status, "/opt/nothing"))}, "", "debian"},
	})
}

// rpm: Fedora's var/lib/rpm → ../../usr/lib/sysimage/rpm reports each
// package once; a database elsewhere is found through the link.
func TestSymlinkedRPMDatabase(t *testing.T) {
	db, err := os.ReadFile("analyzer/rpm/testdata/mariner2-sqlite/rootfs/var/lib/rpm/rpmdb.sqlite")
	if err != nil {
		t.Fatal(err)
	}
	osr, err := os.ReadFile("analyzer/rpm/testdata/mariner2-sqlite/rootfs/usr/lib/os-release")
	if err != nil {
		t.Fatal(err)
	}
	plain := mustScan(t, scantest.Image(t, scantest.Layer(t,
		scantest.File{Path: "usr/lib/os-release", Content: osr},
		scantest.File{Path: "var/lib/rpm/rpmdb.sqlite", Content: db})))
	if len(plain.Packages) < 5 {
		t.Fatalf("plain rpm scan: %d packages", len(plain.Packages))
	}
	for _, tc := range []struct {
		name  string
		files []scantest.File
		path  string
	}{
		{"fedora layout", []scantest.File{
			scantest.Symlink("var/lib/rpm", "../../usr/lib/sysimage/rpm"),
			{Path: "usr/lib/sysimage/rpm/rpmdb.sqlite", Content: db}}, "usr/lib/sysimage/rpm/rpmdb.sqlite"},
		{"database elsewhere", []scantest.File{
			scantest.Symlink("var/lib/rpm", "/opt/rpm"),
			{Path: "opt/rpm/rpmdb.sqlite", Content: db}}, "var/lib/rpm/rpmdb.sqlite"},
		{"database file elsewhere", []scantest.File{
			scantest.Symlink("var/lib/rpm/rpmdb.sqlite", "../../../opt/rpmdb"),
			{Path: "opt/rpmdb", Content: db}}, "var/lib/rpm/rpmdb.sqlite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := append([]scantest.File{{Path: "usr/lib/os-release", Content: osr}}, tc.files...)
			res := scanLinkCase(t, linkCase{layers: [][]scantest.File{files}})
			if len(res.Packages) != len(plain.Packages) {
				t.Fatalf("%d packages (%s), want %d", len(res.Packages), names(res), len(plain.Packages))
			}
			for i, p := range res.Packages {
				want := plain.Packages[i]
				want.Path, want.Layer = tc.path, p.Layer
				if p != want {
					t.Errorf("package %d = %+v, want %+v", i, p, want)
				}
			}
		})
	}
}

// (3) os-release: etc/os-release is read through its link, and wins over
// usr/lib/os-release as os-release(5) says.
func TestSymlinkedOSRelease(t *testing.T) {
	res := scanLinkCase(t, linkCase{layers: [][]scantest.File{scantest.DebianRootfs(t)}})
	if res.OS.ID != "debian" || res.OS.Version != "12" || res.OS.Name != "Debian GNU/Linux 12 (bookworm)" {
		t.Errorf("debian:12 layout: OS = %+v", res.OS)
	}
	if pkgSummary(t, res) != "base-files@var/lib/dpkg/status#1 bash@var/lib/dpkg/status#1 libc6@var/lib/dpkg/status#1" {
		t.Errorf("debian:12 layout: %s", pkgSummary(t, res))
	}
	osf := debianOS(t)
	runLinkCases(t, []linkCase{
		{"link in a later layer than the content",
			[][]scantest.File{{osf[2], osf[3], osf[4]}, {osf[0], osf[1]}}, "", "debian"},
		{"absolute target", [][]scantest.File{{osf[4], scantest.Symlink("etc/os-release", "/usr/lib/os-release")}}, "", "debian"},
		{"link to a file elsewhere", [][]scantest.File{{scantest.Symlink("etc/os-release", "../opt/os-release"), scantest.Reg("opt/os-release", alpineOSRelease)}}, "", "alpine"},
		{"etc/os-release wins over usr/lib/os-release",
			[][]scantest.File{osf, {scantest.Symlink("etc/os-release", "/opt/os-release"), scantest.Reg("opt/os-release", alpineOSRelease)}}, "", "alpine"},
		{"usr/lib a link", [][]scantest.File{{osf[1], scantest.Symlink("usr/lib", "/opt/lib"), scantest.Reg("opt/lib/os-release", fileOf(t, osf, "usr/lib/os-release"))}}, "", "debian"},
		{"merged /usr", [][]scantest.File{append(slices.Clone(osf), scantest.Symlink("lib", "usr/lib"), scantest.Symlink("bin", "usr/bin"))}, "", "debian"},
	})
}

// (4) Resolution never leaves the image: ".." stops at the root and
// absolute targets start there.
func TestSymlinkClamped(t *testing.T) {
	osf := debianOS(t)
	st := scantest.DebianStatus(t, "bash")
	with := func(extra ...scantest.File) []scantest.File { return append(slices.Clone(osf), extra...) }
	found := "bash@var/lib/dpkg/status#1"
	runLinkCases(t, []linkCase{
		{"database link climbing above the root",
			[][]scantest.File{with(scantest.Symlink(status, "../../../../../../../../opt/x/status"), scantest.Reg("opt/x/status", st))}, found, "debian"},
		{"anchor directory linked to /../..",
			[][]scantest.File{with(scantest.Symlink("var/lib/dpkg", "/../.."), scantest.Reg("status", st))}, found, "debian"},
		{"written through a link climbing above the root",
			[][]scantest.File{with(scantest.Symlink("opt/d", "../../../../../../var/lib/dpkg")), {scantest.Reg("opt/d/status", st)}}, "bash@var/lib/dpkg/status#2", "debian"},
		{"os-release climbing out and back in",
			[][]scantest.File{{osf[4], scantest.Symlink("etc/os-release", "../../../../../usr/lib/os-release")}}, "", "debian"},
		{"os-release aimed at the host's /etc/passwd",
			[][]scantest.File{{scantest.Symlink("etc/os-release", "../../../../etc/passwd"), scantest.Reg("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")}}, "", ""},
		{"database aimed at the host",
			[][]scantest.File{with(scantest.Symlink(status, "/../../../proc/self/environ"), scantest.Symlink("var/lib/dpkg/status.d/x", "../../../../../../etc/shadow"))}, "", "debian"},
	})
}

// (5) Loops and long chains resolve to nothing: no finding, no error.
func TestSymlinkLoops(t *testing.T) {
	osf := debianOS(t)
	st := scantest.DebianStatus(t, "bash")
	with := func(extra ...scantest.File) []scantest.File { return append(slices.Clone(osf), extra...) }
	chain := func(n int, first string, dir bool) []scantest.File {
		// first → c1 → … → c(n-1) → the content: n links.
		var fs []scantest.File
		prev := first
		for i := 1; i < n; i++ {
			c := fmt.Sprintf("opt/c%d", i)
			fs = append(fs, scantest.Symlink(prev, "/"+c))
			prev = c
		}
		if dir {
			return append(fs, scantest.Symlink(prev, "/opt/real"), scantest.Reg("opt/real/status", st))
		}
		return append(fs, scantest.Symlink(prev, "/opt/real"), scantest.Reg("opt/real", st))
	}
	runLinkCases(t, []linkCase{
		{"self-link", [][]scantest.File{with(scantest.Symlink(status, "status"))}, "", "debian"},
		{"two-link loop", [][]scantest.File{with(scantest.Symlink(status, "s2"), scantest.Symlink("var/lib/dpkg/s2", "/var/lib/dpkg/status"))}, "", "debian"},
		{"loop across layers", [][]scantest.File{with(scantest.Symlink(status, "/opt/a")), {scantest.Symlink("opt/a", "/var/lib/dpkg/status")}}, "", "debian"},
		{"directory self-loop", [][]scantest.File{with(scantest.Symlink("var/lib/dpkg", "dpkg"), scantest.Reg("opt/status", st))}, "", "debian"},
		{"directory loop written through",
			[][]scantest.File{with(scantest.Symlink("opt/d", "/opt/e"), scantest.Symlink("opt/e", "../opt/d")), {scantest.Reg("opt/d/status", st), scantest.Symlink("var/lib/dpkg", "/opt/d")}}, "", "debian"},
		{"link to its own child", [][]scantest.File{with(scantest.Symlink("var/lib/dpkg", "dpkg/x"))}, "", "debian"},
		{"40 links: followed", [][]scantest.File{with(chain(40, status, false)...)}, "bash@var/lib/dpkg/status#1", "debian"},
		{"41 links: too many", [][]scantest.File{with(chain(41, status, false)...)}, "", "debian"},
		{"100 links", [][]scantest.File{with(chain(100, status, false)...)}, "", "debian"},
		{"100 directory links", [][]scantest.File{with(chain(100, "var/lib/dpkg", true)...)}, "", "debian"},
		{"100 directory links written through", [][]scantest.File{with(chain(100, "opt/w", true)...), {scantest.Reg("opt/w/status", st)}}, "", "debian"},
	})
}

// Ordinary images are streamed once per layer: Debian's etc/os-release
// link, merged /usr and writes below links leading nowhere an analyzer
// looks (ko's /var/run/ko with /var/run → /run) need no second read.
func TestSymlinksNoSecondRead(t *testing.T) {
	base := scantest.Layer(t, append(scantest.DebianRootfs(t),
		scantest.Symlink("lib", "usr/lib"), scantest.Symlink("var/run", "/run"), scantest.Symlink("usr/bin/X11", "."))...)
	app := scantest.Layer(t, scantest.Reg("var/run/ko/index.html", "<html>"), scantest.Exec("ko-app/app", scantest.GoBinary(t)))
	ls := counting(base, app)
	res := mustScan(t, scantest.Image(t, layersOf(ls)...))
	if f := fetches(ls); !slices.Equal(f, []int64{1, 1}) {
		t.Errorf("fetched %v, want [1 1]", f)
	}
	if len(res.Packages) != 5 || res.OS.ID != "debian" {
		t.Errorf("OS %+v, packages %s", res.OS, names(res))
	}

	// The evasion is read twice: the layer holding the content only.
	content := scantest.Layer(t, scantest.Reg("opt/x/status", scantest.DebianStatus(t, "bash")))
	top := scantest.Layer(t, scantest.Symlink(status, "/opt/x/status"))
	ls = counting(base, content, top)
	res = mustScan(t, scantest.Image(t, layersOf(ls)...))
	if f := fetches(ls); !slices.Equal(f, []int64{1, 2, 1}) {
		t.Errorf("fetched %v, want [1 2 1]", f)
	}
	if got := pkgSummary(t, res); got != "bash@var/lib/dpkg/status#2" {
		t.Errorf("packages %s", got)
	}
}

// fickleLayer serves its content the first time and other bytes after.
type fickleLayer struct {
	v1.Layer
	other []byte
	n     atomic.Int64
}

func (l *fickleLayer) Compressed() (io.ReadCloser, error) {
	if l.n.Add(1) == 1 {
		return l.Layer.Compressed()
	}
	return io.NopCloser(bytes.NewReader(l.other)), nil
}

// A second read must see the bytes the first one verified.
func TestSymlinkSecondReadVerified(t *testing.T) {
	content := []scantest.File{scantest.Reg("opt/x/status", scantest.DebianStatus(t, "bash"))}
	evil := []scantest.File{scantest.Reg("opt/x/status", scantest.DebianStatus(t, "zlib1g"))}
	for _, tc := range []struct {
		name  string
		other []byte
		want  string
	}{
		{"other content", scantest.Compress(t, scantest.Gzip, scantest.Tar(t, evil...)), "content"},
		{"more content", scantest.Compress(t, scantest.Gzip, scantest.Tar(t, append(slices.Clone(evil), scantest.Reg("pad", strings.Repeat("x", 1<<20)))...)), "changed between two reads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &fickleLayer{Layer: scantest.Layer(t, content...), other: tc.other}
			_, err := scanErr(t, scantest.Image(t, l, scantest.Layer(t, scantest.Symlink(status, "/opt/x/status"))))
			if !isRejected(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a rejection about %q", err, tc.want)
			}
		})
	}
}

// The work symlinks may cost is bounded: thousands of links in a package
// database directory, each with a target of thousands of components, are
// a limit, not minutes of CPU.
func TestSymlinkResolutionBudget(t *testing.T) {
	target := "/opt/" + strings.Repeat("a/", 2000)
	files := debianOS(t)
	for i := range 3000 {
		files = append(files, scantest.Symlink(fmt.Sprintf("var/lib/dpkg/status.d/p%d", i), target))
	}
	start := time.Now()
	_, err := scanErr(t, scantest.Image(t, scantest.Layer(t, files...)))
	wantRejected(t, err, true, "resolving the image's symlinks takes more than")
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
}
