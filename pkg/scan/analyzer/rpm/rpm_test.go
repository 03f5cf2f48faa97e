package rpm_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/rpm"
)

func TestCases(t *testing.T) {
	analyzertest.Run(t, rpm.New(), "testdata")
}

func TestMatch(t *testing.T) {
	a := rpm.New()
	for path, want := range map[string]bool{
		"var/lib/rpm/Packages":              true,
		"var/lib/rpm/Packages.db":           true,
		"var/lib/rpm/rpmdb.sqlite":          true,
		"usr/lib/sysimage/rpm/Packages":     true,
		"usr/lib/sysimage/rpm/Packages.db":  true,
		"usr/lib/sysimage/rpm/rpmdb.sqlite": true,
		"var/lib/rpm/Name":                  false,
		"var/lib/rpm/rpmdb.sqlite-shm":      false,
		"var/lib/rpm/x/Packages":            false,
		"usr/lib/sysimage/rpm":              false,
		"var/lib/Packages":                  false,
	} {
		if got := a.Match(path, 0o644, 1); got != want {
			t.Errorf("Match(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestEcosystem(t *testing.T) {
	for _, c := range []struct {
		os   report.OS
		want string
	}{
		{report.OS{ID: "rhel", Version: "9.3"}, "Red Hat:enterprise_linux:9"},
		{report.OS{ID: "rhel", Version: "10.0"}, "Red Hat:enterprise_linux:10"},
		{report.OS{ID: "rhel"}, "Red Hat"},
		{report.OS{ID: "almalinux", Version: "9.3"}, "AlmaLinux:9"},
		{report.OS{ID: "rocky", Version: "8.9"}, "Rocky Linux:8"},
		{report.OS{ID: "sles", Version: "15.5", Name: "SUSE Linux Enterprise Server 15 SP5"}, "SUSE:Linux Enterprise Server 15 SP5"},
		{report.OS{ID: "sles", Version: "15.5"}, "SUSE:Linux Enterprise Server 15 SP5"},
		{report.OS{ID: "sles", Version: "15"}, "SUSE:Linux Enterprise Server 15"},
		{report.OS{ID: "sles", Version: "16.0"}, "SUSE:Linux Enterprise Server 16.0"},
		{report.OS{ID: "sles", Version: "16.0", Name: "SUSE Linux Enterprise Server 16.0"}, "SUSE:Linux Enterprise Server 16.0"},
		{report.OS{ID: "sl-micro", Version: "6.0", Name: "SUSE Linux Micro 6.0"}, "SUSE:Linux Micro 6.0"},
		{report.OS{ID: "sle-micro", Version: "5.5", Name: "SUSE Linux Enterprise Micro 5.5"}, "SUSE:Linux Enterprise Micro 5.5"},
		{report.OS{ID: "opensuse-leap", Version: "15.5", Name: "openSUSE Leap 15.5"}, "openSUSE:Leap 15.5"},
		{report.OS{ID: "opensuse-leap", Version: "15.6"}, "openSUSE:Leap 15.6"},
		{report.OS{ID: "opensuse-tumbleweed", Version: "20240101", Name: "openSUSE Tumbleweed"}, "openSUSE:Tumbleweed"},
		{report.OS{ID: "photon", Version: "5.0"}, "Photon OS:5.0"},
		{report.OS{ID: "mageia", Version: "9"}, "Mageia:9"},
		{report.OS{ID: "openEuler", Version: "22.03", Name: "openEuler 22.03 (LTS-SP1)"}, "openEuler:22.03-LTS-SP1"},
		{report.OS{ID: "openEuler", Version: "24.03", Name: "openEuler 24.03 (LTS)"}, "openEuler:24.03-LTS"},
		{report.OS{ID: "openEuler", Version: "23.09", Name: "openEuler 23.09"}, "openEuler:23.09"},
		{report.OS{ID: "openEuler", Version: "22.03"}, "openEuler:22.03"},
		{report.OS{ID: "openEuler"}, "openEuler"},
		{report.OS{ID: "azurelinux", Version: "3.0", Name: "Microsoft Azure Linux 3.0"}, "Azure Linux:3"},
		{report.OS{ID: "mariner", Version: "2.0", Name: "CBL-Mariner/Linux"}, "Azure Linux:2"},
		// No OSV ecosystem: listed, never matched.
		{report.OS{ID: "fedora", Version: "39"}, "RPM"},
		{report.OS{ID: "centos", Version: "9"}, "RPM"},
		{report.OS{ID: "amzn", Version: "2023"}, "RPM"},
		{report.OS{ID: "ol", Version: "9.5"}, "RPM"},
		{report.OS{}, "RPM"},
	} {
		if got := rpm.Ecosystem(c.os); got != c.want {
			t.Errorf("Ecosystem(%+v) = %q, want %q", c.os, got, c.want)
		}
	}
}

func TestPURL(t *testing.T) {
	a := rpm.New()
	res := &analyzer.Result{Packages: []report.Package{
		{Name: "openssl-libs", Version: "1:3.0.7-24.el9", Arch: "x86_64", Path: "var/lib/rpm/rpmdb.sqlite"},
		{Name: "stale", Version: "1-1", Arch: "noarch", Path: "var/lib/rpm/Packages"},
	}}
	img := &analyzer.Image{OS: report.OS{ID: "rocky", Version: "9.3"}}
	if err := a.PostProcess(context.Background(), img, res); err != nil {
		t.Fatal(err)
	}
	if len(res.Packages) != 1 {
		t.Fatalf("stale Berkeley DB not dropped: %+v", res.Packages)
	}
	p := res.Packages[0]
	if want := "pkg:rpm/rocky/openssl-libs@3.0.7-24.el9?arch=x86_64&distro=rocky-9.3&epoch=1"; p.PURL != want {
		t.Errorf("PURL = %s, want %s", p.PURL, want)
	}
	if p.Ecosystem != "Rocky Linux:9" {
		t.Errorf("Ecosystem = %s", p.Ecosystem)
	}
}

// TestMalformed checks that truncated and corrupted copies of the test
// databases yield nothing or a subset, never a panic or a hang.
func TestMalformed(t *testing.T) {
	a := rpm.New()
	for _, f := range testDBs(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 16, 511, 4096, len(data) / 2} {
			analyze(t, a, f, data[:min(n, len(data))])
		}
		for _, step := range []int{4099, 8191} {
			c := append([]byte(nil), data...)
			for i := 64; i < len(c); i += step {
				c[i] ^= 0xff
			}
			analyze(t, a, f, c)
		}
	}
}

func analyze(t *testing.T, a *rpm.Analyzer, path string, data []byte) {
	t.Helper()
	rel := "var/lib/rpm/" + filepath.Base(path)
	if _, err := a.Analyze(context.Background(), &analyzer.File{Path: rel, Size: int64(len(data)), Data: data}); err != nil {
		t.Errorf("%s (%d bytes): %v", path, len(data), err)
	}
}

func testDBs(t testing.TB) []string {
	var out []string
	for _, pat := range []string{"testdata/*/rootfs/var/lib/rpm/*", "testdata/*/rootfs/usr/lib/sysimage/rpm/*"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	if len(out) == 0 {
		t.Fatal("no test databases")
	}
	return out
}

func FuzzAnalyze(f *testing.F) {
	for _, p := range testDBs(f) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(data) <= 128<<10 { // the BDB; the larger ones would slow every fuzz iteration
			f.Add(filepath.Base(p), data)
		}
	}
	a := rpm.New()
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		path := "var/lib/rpm/" + filepath.Base(name)
		if !a.Match(path, 0o644, int64(len(data))) {
			path = "var/lib/rpm/Packages"
		}
		_, _ = a.Analyze(context.Background(), &analyzer.File{Path: path, Size: int64(len(data)), Data: data})
	})
}
