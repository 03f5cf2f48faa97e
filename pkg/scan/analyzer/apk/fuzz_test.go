package apk_test

import (
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/apk"
)

// FuzzAnalyze feeds lib/apk/db/installed to the apk analyzer and checks
// the analyzertest.FuzzFile invariants, plus: every package has a
// version, and no name or version spans lines.
func FuzzAnalyze(f *testing.F) {
	analyzertest.AddRootfsSeeds(f, "testdata")
	for _, s := range []string{
		"P:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\nP:busybox\nV:1.36.1-r5\n",
		"P:a\r\nV:1\r\n\r\nP:\nV:\n\n:\nP\nV\n",
		"C:Q1abc=\nP:x\nV:1\no:\nc:deadbeef\n\n\n\nP:y\nV:2",
	} {
		analyzertest.AddSeed(f, analyzertest.Seed{Path: "lib/apk/db/installed", Data: []byte(s)})
	}
	analyzertest.FuzzFile(f, apk.New(), func(t *testing.T, _ *analyzer.File, res *analyzer.Result) {
		for _, p := range res.Packages {
			if p.Version == "" || strings.ContainsAny(p.Name+p.Version, "\n") {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}
