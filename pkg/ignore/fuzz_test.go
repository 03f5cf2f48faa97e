package ignore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
)

// FuzzLoadBytes checks that no input makes LoadBytes or Apply panic, and
// that Apply neither loses nor duplicates vulnerabilities.
func FuzzLoadBytes(f *testing.F) {
	for _, glob := range []string{"testdata/*/*", "testdata/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, name := range files {
			if data, err := os.ReadFile(name); err == nil {
				f.Add(data)
			}
		}
	}
	vulns := []report.Vulnerability{
		deb("CVE-2023-0464", "libssl3", "3.0.11-1~deb12u2"),
		deb("DEBIAN-CVE-2023-2650", "libssl3", "3.0.9-1", "CVE-2023-2650"),
		golang("CVE-2023-45288", "golang.org/x/net", "v0.17.0"),
		pypi("CVE-2022-40897", "setuptools", "65.5.0"),
		{ID: "CVE-2024-0001"}, // no package URL
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := LoadBytes("fuzz", data)
		if err != nil {
			return
		}
		for _, art := range []report.Artifact{appV1, {}} {
			kept, ignored := r.Apply(art, vulns, now)
			if len(kept)+len(ignored) != len(vulns) {
				t.Fatalf("kept %d + ignored %d != %d", len(kept), len(ignored), len(vulns))
			}
		}
	})
}
