package rust_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/rust"
)

var gen = flag.Bool("gen", false, "regenerate the generated executables under testdata (then run -update)")

func TestCases(t *testing.T) {
	analyzertest.Run(t, rust.New(), "testdata")
}

// ripgrepDeps is modeled on cargo-auditable's JSON for `cargo auditable
// install ripgrep` (a reduced dependency tree, with a git and a local
// crate added): auditable-serde's serialization (packages sorted, "kind"
// omitted for runtime dependencies, dependencies as indexes).
const ripgrepDeps = `{"packages":[` +
	`{"name":"aho-corasick","version":"1.1.2","source":"crates.io","dependencies":[16]},` +
	`{"name":"anyhow","version":"1.0.79","source":"crates.io"},` +
	`{"name":"bstr","version":"1.9.0","source":"crates.io","dependencies":[16,18]},` +
	`{"name":"cc","version":"1.0.83","source":"crates.io","kind":"build","dependencies":[13,14]},` +
	`{"name":"cfg-if","version":"1.0.0","source":"crates.io"},` +
	`{"name":"crossbeam-deque","version":"0.8.5","source":"crates.io","dependencies":[6,7]},` +
	`{"name":"crossbeam-epoch","version":"0.9.18","source":"crates.io","dependencies":[7]},` +
	`{"name":"crossbeam-utils","version":"0.8.19","source":"crates.io"},` +
	`{"name":"encoding_rs","version":"0.8.33","source":"crates.io","dependencies":[4]},` +
	`{"name":"globset","version":"0.4.14","source":"crates.io","dependencies":[0,2,15,18,19]},` +
	`{"name":"grep","version":"0.3.1","source":"crates.io","dependencies":[11,12]},` +
	`{"name":"grep-pcre2","version":"0.1.7","source":"git","dependencies":[16,17]},` +
	`{"name":"grep-searcher","version":"0.1.13","source":"crates.io","dependencies":[2,8,15,16]},` +
	`{"name":"jobserver","version":"0.1.27","source":"crates.io","kind":"build","dependencies":[14]},` +
	`{"name":"libc","version":"0.2.152","source":"crates.io"},` +
	`{"name":"log","version":"0.4.20","source":"crates.io"},` +
	`{"name":"memchr","version":"2.7.1","source":"crates.io"},` +
	`{"name":"pcre2-sys","version":"0.2.8","source":"crates.io","dependencies":[14]},` +
	`{"name":"regex-automata","version":"0.4.4","source":"crates.io","dependencies":[0,16,19]},` +
	`{"name":"regex-syntax","version":"0.8.2","source":"crates.io"},` +
	`{"name":"rg-vendored-helpers","version":"0.1.0","source":"local"},` +
	`{"name":"ripgrep","version":"14.1.0","source":"crates.io","dependencies":[1,5,9,10,20],"root":true}` +
	`]}`

// trivyDeps is the real .dep-v0 section of aquasecurity/trivy's
// pkg/dependency/parser/rust/binary/testdata/test.elf (two local crates).
const trivyDeps = "789c8d8d410ec2300c04ffe27354b5d77c055591710d4484b8721c10aaf277420f3df7baa39dd960457ae29d0bf8cb06195f0c1e48d1387ca23dc28dd1aa76ece0cd5aa2e4cec7611ac6be14a94aff4312c2d4878557ce0b678abb709a1da8888137addcdc1148f1aaa8dfb087cea8dbdc7e728f3919"

func compress(t testing.TB, s string) []byte {
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

// buildELF writes a minimal ELF64 x86-64 executable with one section
// (name, data) and the section name string table.
func buildELF(name string, data []byte) []byte {
	const ehsize, shentsize = 64, 64
	shstr := append([]byte("\x00"+name+"\x00.shstrtab\x00"), 0)
	dataOff := uint64(ehsize)
	strOff := dataOff + uint64(len(data))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), byte(elf.ELFOSABI_NONE)})
	b.Write(make([]byte, 8))
	binary.Write(&b, le, struct {
		Type, Machine                       uint16
		Version                             uint32
		Entry, Phoff, Shoff                 uint64
		Flags                               uint32
		Ehsize, Phentsize, Phnum, Shentsize uint16
		Shnum, Shstrndx                     uint16
	}{uint16(elf.ET_EXEC), uint16(elf.EM_X86_64), 1, 0x401000, 0, shOff, 0, ehsize, 56, 0, shentsize, 3, 2})
	b.Write(data)
	b.Write(shstr)
	b.Write(make([]byte, int(shOff)-b.Len()))
	type shdr struct {
		Name, Type             uint32
		Flags, Addr, Off, Size uint64
		Link, Info             uint32
		Addralign, Entsize     uint64
	}
	binary.Write(&b, le, shdr{})
	binary.Write(&b, le, shdr{Name: 1, Type: uint32(elf.SHT_PROGBITS), Off: dataOff, Size: uint64(len(data)), Addralign: 1})
	binary.Write(&b, le, shdr{Name: uint32(2 + len(name)), Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstr)), Addralign: 1})
	return b.Bytes()
}

// TestGenerate writes testdata/auditable's executable (go test -run
// TestGenerate -gen).
func TestGenerate(t *testing.T) {
	if !*gen {
		t.Skip("run with -gen")
	}
	p := "testdata/auditable/rootfs/usr/local/cargo/bin/rg"
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buildELF(".dep-v0", compress(t, ripgrepDeps)), 0o755); err != nil {
		t.Fatal(err)
	}
}

func analyze(t testing.TB, path string, mode os.FileMode, data []byte) []string {
	t.Helper()
	a := rust.New()
	if !a.Match(path, mode, int64(len(data))) || !a.Sniff(path, data[:min(len(data), analyzer.SniffLen)]) {
		return nil
	}
	res, err := a.Analyze(context.Background(), &analyzer.File{Path: path, Mode: mode, Size: int64(len(data)), Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if res == nil {
		return nil
	}
	return pkgNames(res.Packages)
}

func pkgNames(pkgs []report.Package) []string {
	var s []string
	for _, p := range pkgs {
		s = append(s, p.Name+"@"+p.Version+" "+p.Ecosystem)
	}
	slices.Sort(s)
	return s
}

func TestMatch(t *testing.T) {
	a := rust.New()
	for _, c := range []struct {
		path string
		mode os.FileMode
		want bool
	}{
		{"Cargo.lock", 0o644, true},
		{"src/app/Cargo.lock", 0o644, true},
		{"src/app/NotCargo.lock", 0o644, false},
		{"usr/bin/rg", 0o755, true},
		{"usr/share/doc/x", 0o644, false},
	} {
		if got := a.Match(c.path, c.mode, 4096); got != c.want {
			t.Errorf("Match(%q, %v) = %v", c.path, c.mode, got)
		}
	}
	if a.Sniff("usr/bin/script", []byte("#!/bin/sh\n")) || !a.Sniff("usr/bin/rg", []byte("\x7fELF\x02")) {
		t.Error("Sniff")
	}
}

func TestRealSection(t *testing.T) {
	data, _ := hex.DecodeString(trivyDeps)
	if got := analyze(t, "usr/bin/app", 0o755, buildELF(".dep-v0", data)); len(got) != 0 {
		t.Errorf("local crates reported: %q", got)
	}
	// The legacy section name.
	got := analyze(t, "usr/bin/app", 0o755, buildELF(".rust-deps-v0", compress(t,
		`{"packages":[{"name":"app","version":"0.1.0","source":"local","root":true},{"name":"libc","version":"0.2.152","source":"crates.io"}]}`)))
	if want := []string{"libc@0.2.152 crates.io"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestObjcopy adds the section to a real executable with binutils.
func TestObjcopy(t *testing.T) {
	objcopy, err := exec.LookPath("objcopy")
	if err != nil {
		t.Skip("objcopy not installed")
	}
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1)")
	}
	dir := t.TempDir()
	sec := filepath.Join(dir, "dep")
	if err := os.WriteFile(sec, compress(t, ripgrepDeps), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "rg")
	cmd := exec.Command(objcopy, "--add-section", ".dep-v0="+sec, "--set-section-flags", ".dep-v0=noload,readonly", bin, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("objcopy: %v: %s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := analyze(t, "usr/local/bin/rg", 0o755, data)
	if len(got) != 19 || !slices.Contains(got, "ripgrep@14.1.0 crates.io") || !slices.Contains(got, "grep-pcre2@0.1.7 ") {
		t.Errorf("got %d: %q", len(got), got)
	}
	// The unmodified executable has nothing.
	orig, _ := os.ReadFile(bin)
	if got := analyze(t, "usr/bin/true", 0o755, orig); len(got) != 0 {
		t.Errorf("plain executable: %q", got)
	}
}

func TestBomb(t *testing.T) {
	// 64 MiB of JSON whitespace, compressed: over MaxDepInfo.
	var b bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&b, zlib.BestCompression)
	zw.Write([]byte(`{"packages":[{"name":"libc","version":"0.2.152","source":"crates.io"}`))
	chunk := bytes.Repeat([]byte(" "), 1<<20)
	for range 64 {
		zw.Write(chunk)
	}
	zw.Write([]byte("]}"))
	zw.Close()
	if got := analyze(t, "usr/bin/app", 0o755, buildELF(".dep-v0", b.Bytes())); len(got) != 0 {
		t.Errorf("got %q", got)
	}
}

func TestMalformed(t *testing.T) {
	good := buildELF(".dep-v0", compress(t, ripgrepDeps))
	for name, data := range map[string][]byte{
		"truncated":  good[:200],
		"notzlib":    buildELF(".dep-v0", []byte(ripgrepDeps)),
		"badjson":    buildELF(".dep-v0", compress(t, `{"packages":[{"name":1}`)),
		"badsection": append(append([]byte{}, good[:len(good)-100]...), bytes.Repeat([]byte{0xff}, 100)...),
	} {
		if got := analyze(t, "usr/bin/app", 0o755, data); len(got) != 0 {
			t.Errorf("%s: %q", name, got)
		}
	}
	for name, lock := range map[string]string{
		"nottoml":  "[[package]\nname = ",
		"badname":  "[[package]]\nname = \"a b\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
		"nosource": "[[package]]\nname = \"app\"\nversion = \"1.0.0\"\n",
		"types":    "[[package]]\nname = 1\nversion = [\"1\"]\n",
	} {
		if got := analyze(t, "Cargo.lock", 0o644, []byte(lock)); len(got) != 0 {
			t.Errorf("%s: %q", name, got)
		}
	}
	// Sparse index and a private registry.
	got := analyze(t, "Cargo.lock", 0o644, []byte("version = 4\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\nsource = \"sparse+https://index.crates.io/\"\n\n"+
		"[[package]]\nname = \"corp-utils\"\nversion = \"2.0.0\"\nsource = \"sparse+https://cargo.corp.example/index/\"\n"))
	if want := []string{"corp-utils@2.0.0 ", "serde@1.0.200 crates.io"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzAnalyze(f *testing.F) {
	for _, p := range []string{
		"testdata/auditable/rootfs/usr/local/cargo/bin/rg",
		"testdata/gitdeps/rootfs/src/hello_world/Cargo.lock",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.HasSuffix(p, ".lock"), b)
	}
	a := rust.New()
	f.Fuzz(func(t *testing.T, lock bool, data []byte) {
		p := "usr/bin/app"
		if lock {
			p = "Cargo.lock"
		}
		if _, err := a.Analyze(context.Background(), &analyzer.File{Path: p, Mode: 0o755, Size: int64(len(data)), Data: data}); err != nil {
			t.Fatal(err)
		}
	})
}
