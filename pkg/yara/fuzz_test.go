package yara_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/VirusTotal/gyp"

	"github.com/customs-scan/customs/pkg/yara"
)

// FuzzCompile compiles arbitrary rule text (strict, or skipping
// unsupported rules) and scans a file with what compiled. It checks that
// nothing panics; that every error is a "yara: " error, and that a panic
// Compile turned into an error came from the gyp parser, not from this
// package's compiler; that compiled rules are not empty, scan the same
// way twice (pooled scan state is reset) and report string offsets
// inside the data. A scan that
// takes more than fuzzScanTimeout crashes the run (a hang is a finding
// too: the fuzzing engine then keeps the input).
func FuzzCompile(f *testing.F) {
	var datas [][]byte
	for _, tc := range realWorldCases() {
		datas = append(datas, tc.data)
	}
	for _, d := range conditionCases() {
		datas = append(datas, d)
	}
	srcs := []string{
		realWorldRules,
		conditionRules,
		benchRules(),
		`rule not01 { strings: $h = { 50 45 ~01 ~?2 } condition: $h }`,
		"global rule small { condition: filesize < 10 }\nrule any_a { strings: $a = \"a\" condition: $a }",
		"import \"pe\"\nrule dll { condition: pe.is_dll() }\nrule re { strings: $a = /evil[0-9]+/ condition: $a }\nrule uses_re { condition: re }\nrule fine { strings: $a = \"fine\" condition: $a }",
		`rule r { strings: $a = { 01 ( 02 [1-] | 03 ) } condition: $a }`,
		`rule r { condition: true } rule r { condition: false }`,
		`rule r { condition: `,
		`rule r { meta: d = "\q" condition: true }`,
		`rule loop { strings: $a = "a" condition: for any i in (0..#a) : ( @a[i] < 10 ) and for all i in (1..3) : ( i > 0 ) }`,
		`rule wide { strings: $a = "k" wide ascii nocase fullword private $b = { 4D 5A [0-4] ?? 5? } condition: any of them and uint32be(0) != 0 and int8(filesize - 1) >= -128 }`,
	}
	for i, src := range srcs {
		f.Add(src, i%2 == 0, datas[i%len(datas)])
	}
	f.Fuzz(func(t *testing.T, src string, skip bool, data []byte) {
		if len(src) > 64<<10 || len(data) > 1<<20 {
			return
		}
		rs, err := yara.CompileWith(yara.CompileOptions{SkipUnsupported: skip}, src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "yara: ") {
				t.Fatalf("error %q does not start with \"yara: \"", err)
			}
			if strings.HasPrefix(err.Error(), "yara: invalid rules: ") && !gypPanics(src) {
				t.Fatalf("Compile panicked although gyp parses the rules: %v", err)
			}
			return
		}
		if rs.Len() == 0 {
			t.Fatal("compiled rules are empty")
		}
		watchdog := time.AfterFunc(fuzzScanTimeout, func() {
			panic(fmt.Sprintf("yara: scanning %d bytes took more than %v with rules %q", len(data), fuzzScanTimeout, src))
		})
		defer watchdog.Stop()
		ms := rs.Scan(data)
		for _, m := range ms {
			if m.Rule == "" {
				t.Fatalf("match without a rule name: %+v", m)
			}
			for _, s := range m.Strings {
				if s.Offset < 0 || s.Offset >= max(len(data), 1) || s.Count < 1 {
					t.Fatalf("string match %+v outside %d bytes of data", s, len(data))
				}
			}
		}
		if again := rs.Scan(data); !slices.EqualFunc(ms, again, sameMatch) {
			t.Fatalf("two scans differ: %+v, then %+v", ms, again)
		}
	})
}

// fuzzScanTimeout bounds one input's scans (milliseconds for the seeds).
const fuzzScanTimeout = 10 * time.Second

func sameMatch(a, b yara.Match) bool {
	return a.Rule == b.Rule && slices.Equal(a.Strings, b.Strings) && len(a.Meta) == len(b.Meta)
}

// gypPanics reports whether the gyp parser itself panics on src.
func gypPanics(src string) (panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	_, _ = gyp.ParseString(src)
	return false
}
