package osrelease_test

import (
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/osrelease"
)

// FuzzAnalyze feeds etc/os-release or usr/lib/os-release to the
// osrelease analyzer and checks the analyzertest.FuzzFile invariants,
// plus: a result is an OS with an ID (os-release(5) defaults it to
// "linux"), a priority, and the same OS Parse returns.
func FuzzAnalyze(f *testing.F) {
	analyzertest.AddRootfsSeeds(f, "testdata")
	for _, s := range []string{
		"ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME='Debian GNU/Linux 12 (bookworm)'\n",
		"ID=\"\"\nVERSION_ID=\"\\\"\\$\\`\\\\\"\n# comment\n  \n=\nPRETTY_NAME=\"unterminated\n",
		"NAME=x\r\nID=alpine\r\nVERSION_ID=3.19.1\r\n",
		"ID=\"a\\",
	} {
		analyzertest.AddSeed(f, analyzertest.Seed{Path: "etc/os-release", Data: []byte(s)})
		analyzertest.AddSeed(f, analyzertest.Seed{Path: "usr/lib/os-release", Data: []byte(s)})
	}
	analyzertest.FuzzFile(f, osrelease.New(), func(t *testing.T, file *analyzer.File, res *analyzer.Result) {
		if res.OS == nil || res.OS.ID == "" || res.OSPriority <= 0 || len(res.Packages)+len(res.Findings) != 0 {
			t.Fatalf("bad result %+v (OS %+v)", res, res.OS)
		}
		if os, ok := osrelease.Parse(file.Data); !ok || os != *res.OS {
			t.Fatalf("Parse = %+v, %t; Analyze found %+v", os, ok, *res.OS)
		}
	})
}
