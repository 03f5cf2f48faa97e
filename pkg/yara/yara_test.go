package yara_test

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/yara"
)

// Rules in the style of public rule sets (signature-base, Elastic,
// ReversingLabs): what operators bring.
const realWorldRules = `
rule XMRig_Miner : miner linux {
    meta:
        description = "XMRig Monero miner (binary or config)"
        author = "customs tests"
        reference = "https://github.com/xmrig/xmrig"
        severity = "critical"
    strings:
        $pool1 = "stratum+tcp://" ascii
        $pool2 = "stratum+ssl://" ascii
        $name  = "xmrig" ascii nocase
        $opt1  = "donate-level" ascii
        $opt2  = "--cpu-priority" ascii
        $algo  = "randomx" ascii nocase wide
    condition:
        filesize < 20MB and $name and any of ($pool*) and 1 of ($opt*, $algo)
}

rule ELF_Reverse_Shell {
    meta:
        description = "ELF with an interactive shell string and x86-64 socket shellcode"
    strings:
        $elf   = { 7F 45 4C 46 ( 01 | 02 ) 01 }
        $sh    = "/bin/sh -i" fullword
        $sock  = { 6A 29 58 99 6A 02 5F 6A 01 5E 0F 05 }
        $conn  = { 48 97 48 B9 02 00 ?? ?? [4] 51 48 89 E6 6A 10 5A 6A 2A 58 0F 05 }
    condition:
        $elf at 0 and uint16(0x12) == 0x3E and $sh and ($sock or $conn)
}

rule EICAR_Test_File {
    meta:
        description = "EICAR anti-virus test file"
        severity = "low"
    strings:
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    condition:
        $eicar at 0 and filesize < 128
}
`

var eicar = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)

// elf builds a minimal x86-64 ELF header followed by body.
func elf(body ...[]byte) []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF\x02\x01\x01")
	h[0x10] = 2    // ET_EXEC
	h[0x12] = 0x3E // EM_X86_64
	for _, b := range body {
		h = append(h, b...)
	}
	return h
}

func names(ms []yara.Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Rule)
	}
	return out
}

func mustCompile(t testing.TB, src string) *yara.Rules {
	t.Helper()
	rs, err := yara.Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

type ruleCase struct {
	name string
	data []byte
	want []string
}

func realWorldCases() []ruleCase {
	shellcode, _ := hex.DecodeString("6a2958996a025f6a015e0f05")
	connect, _ := hex.DecodeString("489748b902001f90c0a8010a514889e66a105a6a2a580f05")
	xmrigConfig := `{"autosave": true, "cpu": {"enabled": true}, "donate-level": 1,
 "pools": [{"algo": "rx/0", "url": "stratum+tcp://pool.minexmr.com:4444", "user": "44AFFq5kSiGBoZ"}],
 "user-agent": "XMRig/6.21.0"}`
	return []ruleCase{
		{"xmrig binary", elf([]byte("\x00XMRig 6.21.0\x00stratum+ssl://\x00"), []byte("--cpu-priority\x00R\x00a\x00n\x00d\x00o\x00m\x00X\x00")), []string{"XMRig_Miner"}},
		{"xmrig config", []byte(xmrigConfig), []string{"XMRig_Miner"}},
		{"xmrig name only", []byte("docs about xmrig and stratum+tcp:// without options"), nil},
		{"reverse shell", elf([]byte("junk /bin/sh -i\x00"), shellcode), []string{"ELF_Reverse_Shell"}},
		{"reverse shell connect", elf([]byte("\x00/bin/sh -i\x00"), connect), []string{"ELF_Reverse_Shell"}},
		{"not fullword", elf([]byte("/bin/sh -ix"), shellcode), nil},
		{"not at 0", append([]byte("pad"), elf([]byte("/bin/sh -i "), shellcode)...), nil},
		{"aarch64 elf", func() []byte { b := elf([]byte(" /bin/sh -i "), shellcode); b[0x12] = 0xB7; return b }(), nil},
		{"eicar", eicar, []string{"EICAR_Test_File"}},
		{"eicar with newline", append(slices.Clone(eicar), "\r\n"...), []string{"EICAR_Test_File"}},
		{"eicar not at 0", append([]byte(" "), eicar...), nil},
		{"eicar too large", append(slices.Clone(eicar), bytes.Repeat([]byte{' '}, 100)...), nil},
		{"clean", []byte("#!/bin/sh\necho hello\n"), nil},
		{"empty", nil, nil},
	}
}

func TestRealWorldRules(t *testing.T) {
	rs := mustCompile(t, realWorldRules)
	for _, tc := range realWorldCases() {
		if got := names(rs.Scan(tc.data)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

const conditionRules = `
rule text_modifiers {
    strings:
        $a = "Hello" nocase
        $b = "World" wide
        $c = "exact"
    condition:
        all of them
}
rule count_and_offsets {
    strings:
        $x = "ab"
    condition:
        #x >= 3 and @x[1] == 2 and @x[2] == 4 and !x == 2 and #x in (0..4) == 2
}
rule hex_jumps {
    strings:
        $h = { 4D 5A [2-4] 50 45 ?? 00 ( 02 | 03 ) }
    condition:
        $h in (0..16)
}
rule hex_nibbles {
    strings:
        $h = { C? 0F ( 11 | 22 33 ) }
    condition:
        $h
}
rule arithmetic {
    condition:
        filesize > 10 and filesize % 2 == 0 and (filesize * 2 - 4) \ 2 >= 9 and (filesize & 0xFF) != 0 and 1 << 3 == 8
}
rule readers {
    condition:
        uint32be(0) == 0x4D5A0102 and uint16(0) == 0x5A4D and int8(2) == 1 and uint8(3) == 2 and not defined uint32(1000)
}
rule counting {
    strings:
        $a = "one"
        $b = "two"
        $c = "three"
    condition:
        2 of them and not all of them and 50% of them and none of ($c)
}
rule loops {
    strings:
        $k = "key="
    condition:
        for all i in (1..#k) : (@k[i] >= 4) and for any of ($k) : ($ at 4) and for 1 i in (1, 2, 3) : (i == 2)
}
rule xor_string {
    strings:
        $x = "This program cannot" xor(1-255)
        $w = "kernel32" xor wide
    condition:
        $x and $w
}
private rule has_marker {
    strings:
        $m = "MARKER"
    condition:
        $m
}
rule uses_rule {
    condition:
        has_marker and filesize < 100
}
`

// conditionCases are inputs each rule of conditionRules must match.
func conditionCases() map[string][]byte {
	return map[string][]byte{
		"text_modifiers":    []byte("hELLo W\x00o\x00r\x00l\x00d\x00 exact"),
		"count_and_offsets": []byte("..abab..ab"),
		"hex_jumps":         []byte("\x4D\x5A\x00\x00\x00\x50\x45\x99\x00\x02"),
		"hex_nibbles":       []byte("\xC7\x0F\x22\x33"),
		"arithmetic":        []byte("0123456789AB"),
		"readers":           []byte("\x4D\x5A\x01\x02"),
		"counting":          []byte("one two"),
		"loops":             []byte("....key=1 key=2"),
		"uses_rule":         []byte("a MARKER"),
		"xor_string":        append(xorBytes([]byte("..This program cannot.."), 0x5A), xorBytes([]byte("k\x00e\x00r\x00n\x00e\x00l\x003\x002\x00"), 7)...),
	}
}

func xorBytes(b []byte, k byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[i] = b[i] ^ k
	}
	return out
}

// conditionMisses are inputs the named rule must not match.
func conditionMisses() map[string][]byte {
	return map[string][]byte{
		"text_modifiers":    []byte("hello World exact"), // $b not wide
		"count_and_offsets": []byte("abab"),
		"hex_jumps":         []byte("\x4D\x5A\x00\x00\x00\x50\x45\x99\x00\x01"), // ~01
		"hex_nibbles":       []byte("\xD7\x0F\x22\x33"),
		"readers":           []byte("\x4D\x5A\x01"),
		"counting":          []byte("one two three"),
		"loops":             []byte("key=....key="),
		"uses_rule":         []byte("MARKER" + strings.Repeat(" ", 100)),
		"xor_string":        []byte("This program cannot k\x00e\x00r\x00n\x00e\x00l\x003\x002\x00"), // key 0 excluded for $x
	}
}

func TestConditions(t *testing.T) {
	rs := mustCompile(t, conditionRules)
	for rule, data := range conditionCases() {
		got := names(rs.Scan(data))
		if !slices.Contains(got, rule) {
			t.Errorf("%s: %q matched %v", rule, data, got)
		}
		if slices.Contains(got, "has_marker") {
			t.Errorf("private rule reported")
		}
	}
	for rule, data := range conditionMisses() {
		if got := names(rs.Scan(data)); slices.Contains(got, rule) {
			t.Errorf("%s: %q matched, want no match", rule, data)
		}
	}
}

// "~" (not) in hex strings is YARA 4.3; Debian bookworm's libyara is 4.2,
// so it is tested here rather than in conditionRules.
func TestHexNot(t *testing.T) {
	rs := mustCompile(t, `rule not01 { strings: $h = { 50 45 ~01 ~?2 } condition: $h }`)
	for data, want := range map[string]bool{"PE\x02\x13": true, "PE\x01\x13": false, "PE\x02\x12": false, "PE\x02": false} {
		if got := len(rs.Scan([]byte(data))) == 1; got != want {
			t.Errorf("%q: match %v, want %v", data, got, want)
		}
	}
}

func TestGlobalRule(t *testing.T) {
	rs := mustCompile(t, `
global rule small { condition: filesize < 10 }
rule any_a { strings: $a = "a" condition: $a }
`)
	if got := names(rs.Scan([]byte("a"))); !slices.Equal(got, []string{"small", "any_a"}) {
		t.Errorf("small: %v", got)
	}
	if got := names(rs.Scan([]byte("a long file"))); got != nil {
		t.Errorf("global rule failed but got %v", got)
	}
}

func TestUnsupported(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`import "pe" rule r { condition: pe.is_dll() }`, `import "pe"`},
		{`include "other.yar" rule r { condition: true }`, `include "other.yar"`},
		{`rule r { strings: $a = /evil[0-9]+/ condition: $a }`, `rule r: string $a (line 1): unsupported construct: regular expression /evil[0-9]+/`},
		{`rule r { strings: $a = "x" xor nocase condition: $a }`, "xor"},
		{`rule r { strings: $a = "x" base64 condition: $a }`, "unsupported construct: base64 modifier"},
		{"rule r {\n condition: math_entropy > 7 }", "rule r (line 1): unsupported construct: identifier math_entropy"},
		{`rule r { condition: entrypoint == 0 }`, "unsupported construct: keyword entrypoint"},
		{`rule r { strings: $a = "x" condition: $a and "a" contains "b" }`, "unsupported construct: string literal"},
		{`rule r { strings: $a = { 01 ( 02 [1-] | 03 ) } condition: $a }`, "unbounded jump inside alternation"},
		{`rule r { condition: true } rule r { condition: false }`, `duplicate rule "r"`},
		{`rule r { condition: `, "yara: "},
	} {
		_, err := yara.Compile(tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compile(%q) = %v, want error containing %q", tc.src, err, tc.want)
		}
	}
}

func TestSkipUnsupported(t *testing.T) {
	src := `
import "pe"
rule dll { condition: pe.is_dll() }
rule re { strings: $a = /evil[0-9]+/ condition: $a }
rule uses_re { condition: re }
rule fine { strings: $a = "fine" condition: $a }
`
	if _, err := yara.Compile(src); err == nil {
		t.Fatal("strict: no error")
	}
	rs, err := yara.CompileWith(yara.CompileOptions{SkipUnsupported: true}, src)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Len() != 1 || len(rs.Skipped()) != 3 {
		t.Fatalf("Len %d, Skipped %v", rs.Len(), rs.Skipped())
	}
	for i, want := range []string{"rule dll", "rule re:", "rule uses_re"} {
		if !strings.Contains(rs.Skipped()[i].Error(), want) {
			t.Errorf("Skipped[%d] = %v", i, rs.Skipped()[i])
		}
	}
	if got := names(rs.Scan([]byte("fine evil1"))); !slices.Equal(got, []string{"fine"}) {
		t.Errorf("got %v", got)
	}
	// Syntax errors are never skipped.
	if _, err := yara.CompileWith(yara.CompileOptions{SkipUnsupported: true}, "rule x { condition: "); err == nil {
		t.Error("syntax error skipped")
	}
}

func TestCompileFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yar"), []byte(`rule a { strings: $a = "aaa" condition: $a }`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.yara"), []byte(`rule b { strings: $b = "bbb" condition: $b }`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("not rules"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := yara.CompileFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(rs.Scan([]byte("aaa bbb"))); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("got %v", got)
	}
	bad := filepath.Join(dir, "bad.yar")
	if err := os.WriteFile(bad, []byte(`import "pe" rule c { condition: true }`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := yara.CompileFiles(dir); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("error does not name the file: %v", err)
	}
}

// Hostile data cannot make a rule with jumps quadratic: the work per
// string and file is bounded.
func TestHexBudget(t *testing.T) {
	rs := mustCompile(t, `rule jumps { strings: $h = { 00 00 [-] 01 } condition: $h }
rule brute { strings: $h = { ?? ?? [1-10000] 02 } condition: $h }`)
	data := make([]byte, 8<<20) // zeros: every offset is a candidate
	data[len(data)-1] = 1
	_ = rs.Scan(data) // must return (no assertion on time)
	got := names(rs.Scan([]byte{0, 0, 5, 1, 9, 9, 2}))
	if !slices.Equal(got, []string{"jumps", "brute"}) {
		t.Errorf("got %v", got)
	}
}

// Rule sets in "of" are YARA 4.3 (bookworm's libyara is 4.2): tested
// here, not against libyara.
func TestRuleSets(t *testing.T) {
	rs := mustCompile(t, `
private rule has_a { strings: $a = "aa" condition: $a }
private rule has_b { strings: $b = "bb" condition: $b }
rule one_of { condition: any of (has_*) }
rule both { condition: all of (has_a, has_b) }
rule lengths { strings: $x = { 01 [1-3] 02 } condition: !x == 3 and !x[2] == 5 and @x == 0 and @x[2] == 10 and 1.5 < 2 }
`)
	if got := names(rs.Scan([]byte("aa"))); !slices.Equal(got, []string{"one_of"}) {
		t.Errorf("aa: %v", got)
	}
	if got := names(rs.Scan([]byte("aa bb"))); !slices.Equal(got, []string{"one_of", "both"}) {
		t.Errorf("aa bb: %v", got)
	}
	if got := names(rs.Scan([]byte("\x01x\x02.......\x01xxx\x02"))); !slices.Equal(got, []string{"lengths"}) {
		t.Errorf("lengths: %v", got)
	}
	if _, err := yara.Compile(`rule r { condition: any of (nope*) }`); err == nil {
		t.Error("rule set without a match compiled")
	}
}
