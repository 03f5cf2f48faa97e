package gobinary_test

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/gosyms"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/gobinary"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// run mimics the walker: Match, Sniff, Analyze.
func run(t *testing.T, path string, mode os.FileMode, data []byte) []report.Package {
	t.Helper()
	a := gobinary.New()
	if !a.Match(path, mode, int64(len(data))) {
		return nil
	}
	if !a.Sniff(path, data[:min(len(data), analyzer.SniffLen)]) {
		return nil
	}
	res, err := a.Analyze(context.Background(), &analyzer.File{Path: path, Mode: mode, Size: int64(len(data)), Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if res == nil {
		return nil
	}
	return res.Packages
}

func TestRealGoBinary(t *testing.T) {
	bin := scantest.GoBinary(t)
	got := run(t, "usr/local/bin/app", 0o755, bin)
	goVer := strings.TrimPrefix(strings.Fields(runtime.Version())[0], "go")
	want := []report.Package{
		{Name: scantest.GoBinaryModule, Version: "(devel)", Ecosystem: "Go", PURL: "pkg:golang/example.com/customs/scantest/app", GOOS: "linux", GOARCH: runtime.GOARCH},
		{Name: "stdlib", Version: goVer, Ecosystem: "Go", PURL: "pkg:golang/stdlib@v" + goVer, GOOS: "linux", GOARCH: runtime.GOARCH},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d packages %+v, want %+v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("package %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// GoBinary is stripped (-s -w): no symbol fingerprint.
	// Not executable: not even matched.
	if pkgs := run(t, "usr/local/bin/app", 0o644, bin); pkgs != nil {
		t.Errorf("non-executable file analyzed: %+v", pkgs)
	}
}

func TestNotGo(t *testing.T) {
	elf, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skipf("no /bin/true: %v", err)
	}
	if !gobinary.IsExecutable(elf[:4]) {
		t.Fatalf("/bin/true magic %q not recognised", elf[:4])
	}
	if pkgs := run(t, "bin/true", 0o755, elf); pkgs != nil {
		t.Errorf("non-Go ELF gave packages: %+v", pkgs)
	}
	script := []byte("#!/bin/sh\n" + strings.Repeat("echo hello\n", 200))
	if gobinary.New().Sniff("usr/bin/hello", script) {
		t.Error("shell script sniffed as executable")
	}
	// Truncated / garbage "ELF": no panic, no packages.
	garbage := append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 4096)...)
	if pkgs := run(t, "bin/x", 0o755, garbage); pkgs != nil {
		t.Errorf("garbage ELF gave packages: %+v", pkgs)
	}
}

func TestPackagesFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.22.3 X:boringcrypto",
		Main:      debug.Module{Path: "github.com/acme/app", Version: "v1.4.0"},
		Deps: []*debug.Module{
			{Path: "github.com/pkg/errors", Version: "v0.9.1"},
			{Path: "golang.org/x/net", Version: "v0.17.0", Replace: &debug.Module{Path: "github.com/fork/net", Version: "v0.17.1-fork"}},
			{Path: "example.com/local", Version: "v1.0.0", Replace: &debug.Module{Path: "../local"}},
			{Path: "golang.org/x/sys", Version: "v0.0.0-20231011000000-abcdefabcdef"},
			nil,
		},
	}
	got := gobinary.Packages(bi)
	want := []report.Package{
		{Name: "github.com/acme/app", Version: "1.4.0", Ecosystem: "Go", PURL: "pkg:golang/github.com/acme/app@v1.4.0"},
		{Name: "github.com/pkg/errors", Version: "0.9.1", Ecosystem: "Go", PURL: "pkg:golang/github.com/pkg/errors@v0.9.1"},
		{Name: "github.com/fork/net", Version: "0.17.1-fork", Ecosystem: "Go", PURL: "pkg:golang/github.com/fork/net@v0.17.1-fork"},
		{Name: "example.com/local", Version: "(devel)", Ecosystem: "Go", PURL: "pkg:golang/example.com/local"},
		{Name: "golang.org/x/sys", Version: "0.0.0-20231011000000-abcdefabcdef", Ecosystem: "Go", PURL: "pkg:golang/golang.org/x/sys@v0.0.0-20231011000000-abcdefabcdef"},
		{Name: "stdlib", Version: "1.22.3", Ecosystem: "Go", PURL: "pkg:golang/stdlib@v1.22.3"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("package %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// A development toolchain has no release version: no stdlib package.
	for _, p := range gobinary.Packages(&debug.BuildInfo{GoVersion: "devel go1.23-abcdef"}) {
		if p.Name == "stdlib" {
			t.Errorf("stdlib reported for a devel toolchain: %+v", p)
		}
	}
}

// An unstripped binary: each module carries the fingerprint of its own
// functions (main's under the main package path, the standard library's
// under stdlib).
func TestSymbolFingerprints(t *testing.T) {
	bin := scantest.BuildGo(t, scantest.GoProgram{
		Module: "example.com/fp",
		Main:   "package main\n\nimport \"net/url\"\n\nfunc main() { _, _ = url.Parse(\"x\") }\n",
		GOOS:   "windows", GOARCH: "arm64",
	})
	pkgs := run(t, "app.exe", 0o755, bin)
	if len(pkgs) != 2 {
		t.Fatalf("packages %+v", pkgs)
	}
	for _, p := range pkgs {
		if p.GOOS != "windows" || p.GOARCH != "arm64" || p.GoSymbols == "" {
			t.Fatalf("package %+v", p)
		}
	}
	main, err := gosyms.ParseFingerprint(pkgs[0].GoSymbols)
	if err != nil {
		t.Fatal(err)
	}
	std, err := gosyms.ParseFingerprint(pkgs[1].GoSymbols)
	if err != nil {
		t.Fatal(err)
	}
	if !main.Has(gosyms.SymbolKey("example.com/fp", "main")) || main.Has(gosyms.PackageKey("net/url")) {
		t.Error("main module fingerprint")
	}
	if !std.Has(gosyms.PackageKey("net/url")) || !std.Has(gosyms.SymbolKey("net/url", "Parse")) || std.Has(gosyms.SymbolKey("net/url", "NoSuchFunc")) {
		t.Error("stdlib fingerprint")
	}
}
