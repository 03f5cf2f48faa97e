package scan_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// scanImage is scan.Image with Customs' package analyzers
// (inspect.PackageAnalyzers) unless opts choose others: the library has no
// analyzers of its own.
func scanImage(ctx context.Context, img v1.Image, opts ...scan.Option) (*scan.Result, error) {
	return scan.Image(ctx, img, append([]scan.Option{scan.WithAnalyzers(inspect.PackageAnalyzers()...)}, opts...)...)
}

func mustScan(t testing.TB, img v1.Image, opts ...scan.Option) *scan.Result {
	t.Helper()
	res, err := scanImage(context.Background(), img, opts...)
	if err != nil {
		t.Fatalf("scan.Image: %v", err)
	}
	return res
}

// byName indexes packages by name; it fails on duplicates.
func byName(t testing.TB, pkgs []report.Package) map[string]report.Package {
	t.Helper()
	m := map[string]report.Package{}
	for _, p := range pkgs {
		if _, dup := m[p.Name]; dup {
			t.Fatalf("package %s reported twice: %+v", p.Name, pkgs)
		}
		m[p.Name] = p
	}
	return m
}

func layerDigest(t testing.TB, l v1.Layer) string {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestDebianImage(t *testing.T) {
	l1 := scantest.Layer(t, scantest.DebianRootfs(t)...)
	img := scantest.Image(t, l1)
	res := mustScan(t, img)

	wantOS := report.OS{ID: "debian", Version: "12", Name: "Debian GNU/Linux 12 (bookworm)"}
	if res.OS != wantOS {
		t.Errorf("OS = %+v, want %+v", res.OS, wantOS)
	}
	if res.Platform != "linux/amd64" {
		t.Errorf("Platform = %q", res.Platform)
	}
	if len(res.Layers) != 1 {
		t.Fatalf("Layers = %+v", res.Layers)
	}
	diffID, _ := l1.DiffID()
	size, _ := l1.Size()
	if want := (report.Layer{Digest: layerDigest(t, l1), DiffID: diffID.String(), Size: size}); res.Layers[0] != want {
		t.Errorf("Layers[0] = %+v, want %+v", res.Layers[0], want)
	}
	pkgs := byName(t, res.Packages)
	if len(pkgs) != len(scantest.DebianPackages) {
		t.Fatalf("packages = %+v, want %v", res.Packages, scantest.DebianPackages)
	}
	bash := pkgs["bash"]
	want := report.Package{
		Name:          "bash",
		Version:       "5.2.15-2+b8",
		Ecosystem:     "Debian:12",
		PURL:          "pkg:deb/debian/bash@5.2.15-2%2Bb8?arch=amd64&distro=debian-12",
		Path:          "var/lib/dpkg/status",
		Layer:         layerDigest(t, l1),
		SourceName:    "bash",
		SourceVersion: "5.2.15-2",
		Arch:          "amd64",
		Analyzer:      "dpkg",
	}
	if bash != want {
		t.Errorf("bash = %+v\nwant %+v", bash, want)
	}
	if libc := pkgs["libc6"]; libc.SourceName != "glibc" || libc.SourceVersion != libc.Version {
		t.Errorf("libc6 source = %q %q", libc.SourceName, libc.SourceVersion)
	}
	if res.Findings == nil {
		res.Findings = []report.Finding{}
	}
	if len(res.Findings) != 0 {
		t.Errorf("findings = %+v", res.Findings)
	}
}

// A second layer rewrites the status file to add a package: old packages
// stay attributed to layer 1, the new one to layer 2; a package upgraded
// in layer 3 moves to layer 3, a removed one disappears.
func TestDebianLayerAttribution(t *testing.T) {
	status := scantest.DpkgStatusPath
	l1 := scantest.Layer(t, scantest.DebianRootfs(t)...)
	l2 := scantest.Layer(t, scantest.Reg(status, scantest.DebianStatus(t, "base-files", "bash", "libc6", "zlib1g")))
	upgraded := strings.Replace(scantest.DebianStatus(t, "base-files", "libc6", "zlib1g"),
		"Version: "+scantest.DebianVersion("libc6"), "Version: 2.36-9+deb12u99", 1)
	l3 := scantest.Layer(t, scantest.Reg(status, upgraded))

	res := mustScan(t, scantest.Image(t, l1, l2))
	pkgs := byName(t, res.Packages)
	for name, layer := range map[string]v1.Layer{"base-files": l1, "bash": l1, "libc6": l1, "zlib1g": l2} {
		if got := pkgs[name].Layer; got != layerDigest(t, layer) {
			t.Errorf("%s attributed to %s, want %s", name, got, layerDigest(t, layer))
		}
	}

	res = mustScan(t, scantest.Image(t, l1, l2, l3))
	pkgs = byName(t, res.Packages)
	if _, ok := pkgs["bash"]; ok {
		t.Error("bash was removed from the status in layer 3 but is still reported")
	}
	for name, layer := range map[string]v1.Layer{"base-files": l1, "libc6": l3, "zlib1g": l2} {
		if got := pkgs[name].Layer; got != layerDigest(t, layer) {
			t.Errorf("%s attributed to %s, want %s", name, got, layerDigest(t, layer))
		}
	}
	if v := pkgs["libc6"].Version; v != "2.36-9+deb12u99" {
		t.Errorf("libc6 version %q", v)
	}

	// Deleted in layer 2 and re-created in layer 3: everything is
	// attributed to layer 3 (the lineage is broken).
	del := scantest.Layer(t, scantest.Whiteout(status))
	back := scantest.Layer(t, scantest.Reg(status, scantest.DebianStatus(t, "base-files", "bash", "libc6")))
	res = mustScan(t, scantest.Image(t, l1, del, back))
	for _, p := range res.Packages {
		if p.Layer != layerDigest(t, back) {
			t.Errorf("%s attributed to %s, want the re-creating layer", p.Name, p.Layer)
		}
	}
	if len(res.Packages) != 3 {
		t.Errorf("packages = %+v", res.Packages)
	}
}

func TestAlpineImage(t *testing.T) {
	l := scantest.Layer(t, scantest.AlpineRootfs(t)...)
	res := mustScan(t, scantest.Image(t, l))
	if want := (report.OS{ID: "alpine", Version: "3.19.1", Name: "Alpine Linux v3.19"}); res.OS != want {
		t.Errorf("OS = %+v", res.OS)
	}
	pkgs := byName(t, res.Packages)
	if len(pkgs) != len(scantest.AlpinePackages) {
		t.Fatalf("packages = %+v", res.Packages)
	}
	for name, ver := range scantest.AlpinePackages {
		p := pkgs[name]
		if p.Version != ver || p.Ecosystem != "Alpine:v3.19" || p.Layer != layerDigest(t, l) || p.Analyzer != "apk" {
			t.Errorf("%s = %+v", name, p)
		}
	}
	if p := pkgs["libcrypto3"]; p.SourceName != "openssl" ||
		p.PURL != "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1" {
		t.Errorf("libcrypto3 = %+v", p)
	}
}

func TestDistrolessImage(t *testing.T) {
	// os-release and the packages come from different layers, as in
	// the real distroless images.
	files := scantest.DistrolessRootfs(t)
	l1 := scantest.Layer(t, files[0])
	l2 := scantest.Layer(t, files[1:]...)
	res := mustScan(t, scantest.Image(t, l1, l2))
	if res.OS.Name != "Distroless" || res.OS.ID != "debian" || res.OS.Version != "12" {
		t.Errorf("OS = %+v", res.OS)
	}
	pkgs := byName(t, res.Packages)
	if len(pkgs) != len(scantest.DistrolessPackages) {
		t.Fatalf("packages = %+v", res.Packages)
	}
	for name, ver := range scantest.DistrolessPackages {
		p := pkgs[name]
		if p.Version != ver || p.Ecosystem != "Debian:12" || p.Path != scantest.DpkgStatusDPath+"/"+name || p.Layer != layerDigest(t, l2) {
			t.Errorf("%s = %+v", name, p)
		}
	}
}

func TestGoBinaryLayer(t *testing.T) {
	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	app := scantest.GoBinaryLayer(t)
	res := mustScan(t, scantest.Image(t, base, app))
	var gopkgs []report.Package
	for _, p := range res.Packages {
		if p.Ecosystem == "Go" {
			gopkgs = append(gopkgs, p)
		}
	}
	goVer := strings.TrimPrefix(strings.Fields(runtime.Version())[0], "go")
	if len(gopkgs) != 2 {
		t.Fatalf("Go packages = %+v", gopkgs)
	}
	// Sorted by name: the module path sorts before "stdlib".
	if p := gopkgs[0]; p.Name != scantest.GoBinaryModule || p.Version != "(devel)" || p.Path != scantest.GoBinaryPath || p.Layer != layerDigest(t, app) || p.Analyzer != "gobinary" {
		t.Errorf("main module = %+v", p)
	}
	if p := gopkgs[1]; p.Name != "stdlib" || p.Version != goVer || p.PURL != "pkg:golang/stdlib@v"+goVer || p.Path != scantest.GoBinaryPath {
		t.Errorf("stdlib = %+v", p)
	}
}

// os-release: a regular etc/os-release wins over usr/lib/os-release; when
// etc/os-release is a symlink, usr/lib/os-release is used; a later layer
// replacing the regular file by a symlink hides it.
func TestOSReleasePrecedence(t *testing.T) {
	usrlib := scantest.Reg("usr/lib/os-release", "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"from usr/lib\"\n")
	etc := scantest.Reg("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"from etc\"\n")
	res := mustScan(t, scantest.Image(t, scantest.Layer(t, usrlib, etc)))
	if res.OS.Name != "from etc" {
		t.Errorf("both regular: OS = %+v", res.OS)
	}
	res = mustScan(t, scantest.Image(t,
		scantest.Layer(t, etc, usrlib),
		scantest.Layer(t, scantest.Symlink("etc/os-release", "../usr/lib/os-release"))))
	if res.OS.Name != "from usr/lib" {
		t.Errorf("etc replaced by a symlink: OS = %+v", res.OS)
	}
}

func TestCompressions(t *testing.T) {
	for name, c := range map[string]scantest.Compression{"gzip": scantest.Gzip, "zstd": scantest.Zstd, "tar": scantest.Uncompressed} {
		t.Run(name, func(t *testing.T) {
			res := mustScan(t, scantest.Image(t, scantest.LayerWith(t, c, scantest.AlpineRootfs(t)...)))
			if len(res.Packages) != len(scantest.AlpinePackages) || res.OS.ID != "alpine" {
				t.Errorf("OS %+v, packages %+v", res.OS, res.Packages)
			}
		})
	}
}

// Results do not depend on concurrency, and are deterministic.
func TestDeterministic(t *testing.T) {
	var layers []v1.Layer
	layers = append(layers, scantest.Layer(t, scantest.DebianRootfs(t)...))
	layers = append(layers, scantest.Layer(t, scantest.Reg(scantest.DpkgStatusPath, scantest.DebianStatus(t, scantest.DebianStanzaNames...))))
	layers = append(layers, scantest.Layer(t, scantest.AlpineRootfs(t)...))
	layers = append(layers, scantest.Layer(t, scantest.DistrolessRootfs(t)[1:]...))
	img := scantest.Image(t, layers...)
	var first []byte
	for _, n := range []int{1, 2, 4, 8} {
		res := mustScan(t, img, scan.WithConcurrency(n))
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
		} else if string(b) != string(first) {
			t.Fatalf("concurrency %d gave a different result:\n%s\nvs\n%s", n, b, first)
		}
	}
}

func TestProgressAndAnalyzers(t *testing.T) {
	files := scantest.DebianRootfs(t)
	for i := 0; i < 3000; i++ { // > 1024 entries: progress per batch of entries
		files = append(files, scantest.Reg("usr/share/doc/f"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+"/"+itoa(i), "x"))
	}
	img := scantest.Image(t, scantest.Layer(t, files...))
	var calls atomic.Int64
	res := mustScan(t, img, scan.WithProgress(func() { calls.Add(1) }))
	if n := calls.Load(); n < 4 {
		t.Errorf("progress called %d times", n)
	}
	if len(res.Packages) != 3 {
		t.Errorf("packages = %d", len(res.Packages))
	}
	// Only the os-release analyzer: no packages, the OS still found.
	res = mustScan(t, img, scan.WithAnalyzers(inspect.PackageAnalyzers()[0]))
	if len(res.Packages) != 0 || res.OS.ID != "debian" {
		t.Errorf("osrelease only: OS %+v packages %d", res.OS, len(res.Packages))
	}
}

// Options that cannot be honoured fail New, before any image is read, with
// an error that is not a rejection of the image; scan.Image returns the
// same error.
func TestNewRefusesBadOptions(t *testing.T) {
	a := inspect.PackageAnalyzers()[1]
	for _, tc := range []struct {
		name string
		opts []scan.Option
		want string
	}{
		{"no analyzers", []scan.Option{scan.WithLimits(scan.DefaultLimits())}, "no analyzers"},
		{"duplicate names", []scan.Option{scan.WithAnalyzers(a, a)}, `two analyzers are named "dpkg"`},
		{"nil analyzer", []scan.Option{scan.WithAnalyzers(a, nil)}, "nil analyzer"},
		{"negative concurrency", []scan.Option{scan.WithAnalyzers(a), scan.WithConcurrency(-1)}, "concurrency -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := scan.New(tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || isRejected(err) || s != nil {
				t.Fatalf("New: %v, %v; want an error containing %q", s, err, tc.want)
			}
			img := &countingImage{Image: scantest.Image(t)}
			if _, ierr := scan.Image(context.Background(), img, tc.opts...); ierr == nil || ierr.Error() != err.Error() {
				t.Errorf("scan.Image: %v, want %v", ierr, err)
			}
			if img.calls.Load() != 0 {
				t.Error("the image was read although the options were refused")
			}
		})
	}
	// WithAnalyzers() with none is a scan of the layers only; a later
	// WithAnalyzers replaces an earlier (duplicates are judged per list).
	for _, opts := range [][]scan.Option{
		{scan.WithAnalyzers()},
		{scan.WithAnalyzers(a, a), scan.WithAnalyzers(a)},
	} {
		if _, err := scan.New(opts...); err != nil && !strings.Contains(err.Error(), "two analyzers") {
			t.Errorf("New: %v", err)
		}
	}
}

// countingImage counts Manifest calls.
type countingImage struct {
	v1.Image
	calls atomic.Int64
}

func (c *countingImage) Manifest() (*v1.Manifest, error) {
	c.calls.Add(1)
	return c.Image.Manifest()
}

// One Scanner serves many images, concurrently, each exactly as a
// Scanner of its own would; WithBudget charges a shared budget without
// changing the Scanner it derives from.
func TestScannerIsReusable(t *testing.T) {
	s, err := scan.New(scan.WithAnalyzers(inspect.PackageAnalyzers()...))
	if err != nil {
		t.Fatal(err)
	}
	debian := scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...))
	alpine := scantest.Image(t, scantest.Layer(t, scantest.AlpineRootfs(t)...))
	want := map[v1.Image][]byte{debian: marshal(t, mustScan(t, debian)), alpine: marshal(t, mustScan(t, alpine))}
	var wg sync.WaitGroup
	for i := range 8 {
		img := debian
		if i%2 == 1 {
			img = alpine
		}
		wg.Go(func() {
			res, err := s.Image(context.Background(), img)
			if err != nil {
				t.Error(err)
				return
			}
			if got := marshal(t, res); string(got) != string(want[img]) {
				t.Errorf("shared Scanner: got %s, want %s", got, want[img])
			}
		})
	}
	wg.Wait()

	b := scan.NewBudget(0, 1)
	if _, err := s.WithBudget(b).Image(context.Background(), debian); !errors.Is(err, scan.ErrLimitExceeded) {
		t.Errorf("scan within a budget of one file: %v, want ErrLimitExceeded", err)
	}
	if _, err := s.Image(context.Background(), debian); err != nil {
		t.Errorf("the Scanner WithBudget derives from is charged too: %v", err)
	}
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestEmptyImage(t *testing.T) {
	res := mustScan(t, scantest.Image(t))
	if len(res.Layers) != 0 || len(res.Packages) != 0 || res.OS != (report.OS{}) {
		t.Errorf("empty image: %+v", res)
	}
	// A layer that is an empty tar (only the end marker), and one that
	// has zero bytes at all.
	res = mustScan(t, scantest.Image(t, scantest.Layer(t), scantest.LayerFromTar(t, scantest.Uncompressed, nil)))
	if len(res.Layers) != 2 {
		t.Errorf("layers = %+v", res.Layers)
	}
}
