package yara_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/yara"
)

// benchRules is realWorldRules plus rules shaped like public rule sets:
// webshells, miners, ransom notes, packers, with text (nocase, wide,
// fullword) and hex strings (wildcards, jumps, alternatives).
func benchRules() string {
	var b strings.Builder
	b.WriteString(realWorldRules)
	families := []struct{ name, s1, s2, s3 string }{
		{"Webshell_China_Chopper", "eval(Request.Item[", "Response.Write", "<%@ Page Language="},
		{"Webshell_PHP_Generic", "eval(base64_decode(", "$_POST[", "passthru("},
		{"Webshell_JSP_Cmd", "Runtime.getRuntime().exec(", "request.getParameter", "<%@ page import="},
		{"Miner_Config_Generic", "\"donate-level\"", "\"nicehash\"", "\"coin\": \"monero\""},
		{"Miner_Pools", "pool.minexmr.com", "xmrpool.eu", "supportxmr.com"},
		{"Ransom_Note_Generic", "YOUR FILES HAVE BEEN ENCRYPTED", "bitcoin", "decrypt"},
		{"Kinsing_Loader", "kdevtmpfsi", "kinsing", "/tmp/.ICE-unix"},
		{"TeamTNT_Scripts", "teamtnt", "clean_aws_credentials", "docker.sock"},
		{"Mirai_Strings", "/bin/busybox MIRAI", "POST /cdn-cgi/", "LCOGQGPTGP"},
		{"Tsunami_IRC", "NOTICE %s :", "PRIVMSG %s :", "KILLATTK"},
		{"Cobalt_Strike_Strings", "beacon.dll", "%s as %s\\%s: %d", "ReflectiveLoader"},
		{"Sliver_Implant", "sliverpb", "bishopfox/sliver", "implant/sliver"},
		{"Metasploit_Payload", "metasploit", "meterpreter", "stdapi_sys_process_execute"},
		{"SSH_Backdoor", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC", "authorized_keys", "PermitRootLogin yes"},
		{"Credential_Stealer", "/.aws/credentials", "/.docker/config.json", "/.kube/config"},
		{"Rootkit_Diamorphine", "diamorphine", "hacked_getdents", "module_hide"},
		{"Log4Shell_Exploit", "${jndi:ldap://", "${jndi:rmi://", "${${lower:j}ndi"},
		{"Reverse_Shell_Scripts", "bash -i >& /dev/tcp/", "nc -e /bin/sh", "socket.socket(socket.AF_INET"},
		{"Packer_UPX", "UPX!", "$Info: This file is packed with the UPX", "UPX0"},
		{"Dropper_Curl_Pipe", "curl -fsSL", "| sh", "wget -q -O -"},
	}
	for i, f := range families {
		fmt.Fprintf(&b, `
rule %s {
    meta:
        description = "benchmark rule %d"
        severity = "high"
    strings:
        $s1 = "%s" ascii
        $s2 = "%s" ascii nocase
        $s3 = "%s" ascii wide
        $h1 = { %02X %02X ?? %02X [2-8] %02X %02X }
    condition:
        filesize < 50MB and (2 of ($s*) or ($h1 and #s1 > 2))
}
`, f.name, i, escape(f.s1), escape(f.s2), escape(f.s3), 0x10+i, 0x20+i, 0x30+i, 0x40+i, 0x50+i)
	}
	b.WriteString(`
rule PE_Packed_Section {
    strings:
        $mz = { 4D 5A }
        $upx = { 55 50 58 30 00 00 00 00 }
        $aspack = { 2E 61 73 70 61 63 6B 00 }
    condition:
        $mz at 0 and uint32(uint32(0x3C)) == 0x00004550 and any of ($upx, $aspack)
}
rule ELF_Static_Go_Miner {
    strings:
        $go = "Go build ID:"
        $rx = "randomx" nocase
    condition:
        uint32(0) == 0x464C457F and $go and $rx
}
`)
	return b.String()
}

func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// benchCorpus is ~50 MB of mixed files, deterministic: random binaries,
// ELF-like executables with embedded strings, scripts and text, and
// zero-heavy data files.
func benchCorpus() [][]byte {
	r := rand.New(rand.NewChaCha8([32]byte{'c', 'u', 's', 't', 'o', 'm', 's'}))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := 0; i < n; i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		return b
	}
	words := strings.Fields(`if then else fi for do done echo export PATH usr bin local share lib
		import def return class self print os sys path join open read write curl wget http https
		install apt-get update pip npm node python3 bash sh config json yaml true false null
		error warning info debug user group root home var tmp etc opt service start stop`)
	text := func(n int) []byte {
		var b bytes.Buffer
		for b.Len() < n {
			for i := 0; i < 8+r.IntN(8); i++ {
				b.WriteString(words[r.IntN(len(words))])
				b.WriteByte(' ')
			}
			b.WriteByte('\n')
		}
		return b.Bytes()[:n]
	}
	var files [][]byte
	for range 10 { // 20 MB of compressed-looking data
		files = append(files, random(2<<20))
	}
	for i := range 10 { // 10 MB of ELF-like executables
		body := random(1 << 20)
		copy(body, elf())
		copy(body[4096:], text(64<<10))
		copy(body[300000:], "Go build ID: \"abc\"\x00GLIBC_2.34\x00/lib64/ld-linux-x86-64.so.2\x00")
		if i == 3 {
			copy(body[500000:], "xmrig\x00stratum+tcp://pool\x00donate-level")
		}
		files = append(files, body)
	}
	for range 200 { // 10 MB of scripts and text
		files = append(files, text(50<<10))
	}
	for range 5 { // 10 MB of zero-heavy data
		b := make([]byte, 2<<20)
		for j := 0; j < len(b); j += 4096 {
			copy(b[j:], random(64))
		}
		files = append(files, b)
	}
	return files
}

func BenchmarkScan(b *testing.B) {
	rs, err := yara.Compile(benchRules())
	if err != nil {
		b.Fatal(err)
	}
	files := benchCorpus()
	var total int64
	for _, f := range files {
		total += int64(len(f))
	}
	if dir := os.Getenv("YARA_BENCH_DUMP"); dir != "" {
		// For comparing with libyara: YARA_BENCH_DUMP=/tmp/corpus go test -run XXX -bench Scan
		// then: yara -r -C or yara -r /tmp/corpus/rules.yar /tmp/corpus/files
		if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
			b.Fatal(err)
		}
		for i, f := range files {
			if err := os.WriteFile(filepath.Join(dir, "files", fmt.Sprintf("f%03d", i)), f, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "rules.yar"), []byte(benchRules()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(total)
	b.ReportAllocs()
	matched := 0
	for b.Loop() {
		matched = 0
		for _, f := range files {
			matched += len(rs.Scan(f))
		}
	}
	b.ReportMetric(float64(matched), "matches")
	b.ReportMetric(float64(len(files)), "files")
}

func BenchmarkCompile(b *testing.B) {
	src := benchRules()
	for b.Loop() {
		if _, err := yara.Compile(src); err != nil {
			b.Fatal(err)
		}
	}
}
