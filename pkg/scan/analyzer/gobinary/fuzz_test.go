package gobinary_test

import (
	"os"
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/gobinary"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// FuzzAnalyze feeds one executable to the gobinary analyzer (build info
// read from ELF, Mach-O or PE) and checks the analyzertest.FuzzFile
// invariants, plus: every package is a Go package with a version and a
// purl.
func FuzzAnalyze(f *testing.F) {
	analyzertest.AddSeed(f, analyzertest.Seed{Path: scantest.GoBinaryPath, Mode: 0o755, Data: scantest.GoBinary(f)})
	if b, err := os.ReadFile("/bin/true"); err == nil { // an ELF that is not a Go binary
		analyzertest.AddSeed(f, analyzertest.Seed{Path: "bin/true", Mode: 0o755, Data: b})
	}
	for _, s := range []string{
		"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00\x01\x00\x00\x00" + "\xff Go buildinf:\x08\x02" + "go1.22.3",
		"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00PE\x00\x00",
		"\xcf\xfa\xed\xfe\x07\x00\x00\x01\x03\x00\x00\x00\x02\x00\x00\x00",
		"\xca\xfe\xba\xbe\x00\x00\x00\x02",
	} {
		analyzertest.AddSeed(f, analyzertest.Seed{Path: "usr/bin/x", Mode: 0o755, Data: []byte(s)})
	}
	analyzertest.FuzzFile(f, gobinary.New(), func(t *testing.T, _ *analyzer.File, res *analyzer.Result) {
		for _, p := range res.Packages {
			if p.Ecosystem != gobinary.Ecosystem || p.Version == "" || p.PURL == "" {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}
