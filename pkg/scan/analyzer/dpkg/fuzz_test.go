package dpkg_test

import (
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/dpkg"
)

// FuzzAnalyze feeds one file to the dpkg analyzer (var/lib/dpkg/status or
// a distroless status.d file) and checks the analyzertest.FuzzFile
// invariants, plus: every package has a version, and no name or version
// spans lines (a stanza boundary must never be swallowed into a value).
func FuzzAnalyze(f *testing.F) {
	analyzertest.AddRootfsSeeds(f, "testdata")
	for _, s := range []analyzertest.Seed{
		{Path: "var/lib/dpkg/status", Data: []byte("Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: b\nVersion: 2\nStatus: deinstall ok config-files\n")},
		{Path: "var/lib/dpkg/status", Data: []byte("Package: a\r\nStatus: install ok installed\r\nVersion: 1:2.3-4\r\nSource: s (5)\r\nArchitecture: amd64\r\n Description: x\n")},
		{Path: "var/lib/dpkg/status", Data: []byte("Package:\nVersion:\n\n\n\nPackage: \x00\nVersion: \xff\n")},
		{Path: "var/lib/dpkg/status.d/base", Data: []byte("Package: base-files\nVersion: 12.4\nSource: base-files (12.4+deb12u5)\n")},
		{Path: "var/lib/dpkg/status.d/x", Data: []byte("Source: (\nSource: a (\nPackage: p\nVersion: v\n")},
	} {
		analyzertest.AddSeed(f, s)
	}
	analyzertest.FuzzFile(f, dpkg.New(), func(t *testing.T, _ *analyzer.File, res *analyzer.Result) {
		for _, p := range res.Packages {
			if p.Version == "" || strings.ContainsAny(p.Name+p.Version, "\n") {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}
