package yara_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/yara"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	engine "github.com/customs-scan/customs/pkg/yara"
)

// rules: what the analyzer adds to the engine (pkg/yara tests the rule
// language) is the finding: severity from meta, title from description,
// the excerpt naming strings in declaration order.
const rules = `
rule XMRig_Miner : miner linux {
    meta:
        description = "XMRig Monero miner (binary or config)"
        severity = "critical"
    strings:
        $pool1 = "stratum+tcp://" ascii
        $name  = "xmrig" ascii nocase
        $opt1  = "donate-level" ascii
    condition:
        $name and $pool1 and $opt1
}

rule Test_Marker { meta: severity = "low" strings: $m = "CUSTOMS-YARA-TEST" condition: $m at 0 }
`

var marker = []byte("CUSTOMS-YARA-TEST marker file\n")

// elf returns a 64-byte ELF-looking header followed by body.
func elf(body string) []byte {
	return append(append([]byte("\x7fELF"), make([]byte, 60)...), body...)
}

func TestAnalyzer(t *testing.T) {
	a, err := yara.New(yara.Options{Source: rules})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != "yara" || !a.KeepsDeleted() {
		t.Error("Name/KeepsDeleted")
	}
	for _, tc := range []struct {
		path string
		mode int
		size int64
		want bool
	}{
		{"usr/bin/xmrig", 0o755, 100, true},
		{"opt/miner/config.json", 0o644, 100, false},
		{"tmp/config.json", 0o644, 100, true},
		{"app/start.sh", 0o644, 100, true},
		{"app/lib.JAR", 0o644, 100, true},
		{"usr/bin/huge", 0o755, yara.DefaultMaxFileSize + 1, false},
		{"usr/bin/empty", 0o755, 0, false},
	} {
		if got := a.Match(tc.path, os.FileMode(tc.mode), tc.size); got != tc.want {
			t.Errorf("Match(%s) = %v", tc.path, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { a.Match("usr/share/doc/x/README.gz", 0o644, 10) }); n != 0 {
		t.Errorf("Match allocates %v", n)
	}

	data := elf("xmrig\x00stratum+tcp://x\x00--donate-level=1")
	res, err := a.Analyze(context.Background(), &analyzer.File{Path: "usr/bin/x", Size: int64(len(data)), Data: data})
	if err != nil || len(res.Findings) != 1 {
		t.Fatalf("Analyze = %+v, %v", res, err)
	}
	sum := sha256.Sum256(data)
	want := report.Finding{
		Kind: "malware", Rule: "yara:XMRig_Miner", Severity: "CRITICAL",
		Title:   "YARA: XMRig_Miner: XMRig Monero miner (binary or config)",
		Excerpt: "matched $pool1 at 0x46, $name at 0x40, $opt1 at 0x58",
		SHA256:  hex.EncodeToString(sum[:]), Engine: "yara",
	}
	if res.Findings[0] != want {
		t.Errorf("finding %+v\nwant    %+v", res.Findings[0], want)
	}
	res, err = a.Analyze(context.Background(), &analyzer.File{Path: "x", Size: int64(len(marker)), Data: marker})
	if err != nil || len(res.Findings) != 1 || res.Findings[0].Severity != "LOW" {
		t.Fatalf("marker = %+v, %v", res, err)
	}
	// Default severity.
	b, err := yara.New(yara.Options{Source: `rule plain { strings: $a = "zz" condition: $a }`})
	if err != nil {
		t.Fatal(err)
	}
	res, _ = b.Analyze(context.Background(), &analyzer.File{Path: "x", Size: 2, Data: []byte("zz")})
	if res == nil || res.Findings[0].Severity != "HIGH" || res.Findings[0].Title != "YARA: plain" {
		t.Errorf("default severity: %+v", res)
	}
	if _, err := yara.New(yara.Options{}); err == nil {
		t.Error("New without rules: no error")
	}
}

// Through scan.Image: a miner added in layer 2 and deleted in layer 3 is still
// reported, attributed to layer 2.
func TestScanImage(t *testing.T) {
	a, err := yara.New(yara.Options{Source: rules})
	if err != nil {
		t.Fatal(err)
	}
	miner := elf("xmrig\x00stratum+tcp://x\x00--donate-level=1")
	l1 := scantest.Layer(t, scantest.Reg("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
		scantest.Exec("usr/bin/hello", []byte("#!/bin/sh\necho hello\n")))
	l2 := scantest.Layer(t, scantest.Exec("usr/local/bin/kworker", miner),
		scantest.Reg("tmp/marker", string(marker)),
		scantest.Reg("usr/share/doc/miner.txt", string(miner))) // not matched
	l3 := scantest.Layer(t, scantest.Whiteout("usr/local/bin/kworker"))
	res, err := scan.Image(context.Background(), scantest.Image(t, l1, l2, l3), scan.WithAnalyzers(a))
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := l2.Digest()
	var got []string
	for _, f := range res.Findings {
		got = append(got, f.Path+" "+f.Rule)
		if f.Layer != d2.String() || f.Engine != "yara" {
			t.Errorf("finding %+v: want layer 2 %s", f, d2)
		}
	}
	want := []string{"tmp/marker yara:Test_Marker", "usr/local/bin/kworker yara:XMRig_Miner"}
	if !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
}

// FuzzAnalyze feeds one file to the analyzer (the rules above, every file
// matched) and checks the analyzertest.FuzzFile invariants, plus: one
// malware finding per rule the engine matches, each with a "yara:" rule,
// the yara engine, a severity and the file's SHA-256. FuzzCompile in
// pkg/yara fuzzes the rules themselves.
func FuzzAnalyze(f *testing.F) {
	for _, s := range []analyzertest.Seed{
		{Path: "tmp/marker", Data: marker},
		{Path: "usr/bin/x", Mode: 0o755, Data: elf("xmrig\x00stratum+tcp://x\x00--donate-level=1")},
		{Path: "app/run.sh", Data: []byte("#!/bin/sh\nXMRIG --donate-level 1 -o stratum+tcp://pool:3333\n")},
	} {
		analyzertest.AddSeed(f, s)
	}
	rs, err := engine.Compile(rules)
	if err != nil {
		f.Fatal(err)
	}
	a, err := yara.New(yara.Options{Rules: rs, AllFiles: true})
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzFile(f, a, func(t *testing.T, file *analyzer.File, res *analyzer.Result) {
		if n := len(rs.Scan(file.Data)); len(res.Findings) != n {
			t.Fatalf("%d findings, the rules match %d times", len(res.Findings), n)
		}
		for _, fi := range res.Findings {
			if fi.Kind != report.KindMalware || !strings.HasPrefix(fi.Rule, "yara:") || fi.Engine != yara.Name || fi.Severity == "" || len(fi.SHA256) != 64 {
				t.Fatalf("bad finding %+v", fi)
			}
		}
	})
}
