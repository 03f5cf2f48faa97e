// Package gobinary reads the build information that the Go toolchain
// embeds in executables (debug/buildinfo): the main module, every
// dependency module (the replacement when one is set) and the Go standard
// library, as package "stdlib".
//
// Any regular file with an executable bit whose first bytes are an ELF,
// Mach-O (thin or fat) or PE magic number is read; everything else is
// skipped after at most analyzer.SniffLen bytes.
//
// Versions follow OSV's Go ecosystem (no "v" prefix): module v1.2.3 is
// reported as Version "1.2.3", go1.22.3 as stdlib "1.22.3". The purl keeps
// Go's canonical form: pkg:golang/github.com/foo/bar@v1.2.3,
// pkg:golang/stdlib@v1.22.3. A main module built from a checkout has the
// version "(devel)" and a purl without version.
//
// Every package also carries the binary's GOOS/GOARCH (build settings)
// and, when the binary has a symbol table, a fingerprint of the functions
// of that module it contains (pkg/gosyms), from which matching decides
// platform restrictions and reachability of Go advisories.
package gobinary

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"io/fs"
	"runtime/debug"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/customs-scan/customs/pkg/gosyms"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

const (
	// Ecosystem is the OSV ecosystem of every package reported here.
	Ecosystem = "Go"
	devel     = "(devel)"
	// minSize is below the size of any Go executable.
	minSize = 1024
)

// Analyzer is the Go binary analyzer.
type Analyzer struct{}

// New returns the Go binary analyzer.
func New() *Analyzer { return &Analyzer{} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "gobinary" }

// Version implements analyzer.Analyzer (2: GOOS/GOARCH and symbol
// fingerprints).
func (*Analyzer) Version() int { return 2 }

// Match implements analyzer.Analyzer: executables only.
func (*Analyzer) Match(_ string, mode fs.FileMode, size int64) bool {
	return mode&0o111 != 0 && size >= minSize
}

// Sniff implements analyzer.Sniffer: executable formats only.
func (*Analyzer) Sniff(_ string, head []byte) bool { return IsExecutable(head) }

// IsExecutable reports whether head starts with an ELF, Mach-O or PE magic.
func IsExecutable(head []byte) bool {
	if len(head) < 4 {
		return false
	}
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return true
	case bytes.HasPrefix(head, []byte("MZ")):
		return true
	}
	switch string(head[:4]) {
	case "\xfe\xed\xfa\xce", "\xfe\xed\xfa\xcf", // Mach-O 32/64, big endian
		"\xce\xfa\xed\xfe", "\xcf\xfa\xed\xfe", // Mach-O 32/64, little endian
		"\xca\xfe\xba\xbe": // Mach-O universal (also Java class files; buildinfo rejects them)
		return true
	}
	return false
}

// ReadsAt implements analyzer.ReaderAtUser: every file is read through
// File.ReaderAt (buildinfo and symbol table sections only).
func (*Analyzer) ReadsAt(string, []byte) bool { return true }

// Analyze implements analyzer.Analyzer. A file that is not a Go binary
// yields nothing and no error.
func (*Analyzer) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	bi, err := buildinfo.Read(f.ReaderAt())
	if err != nil {
		return nil, nil // not a Go executable (or no build info): not an error
	}
	pkgs, mods := packages(bi)
	if len(pkgs) == 0 {
		return nil, nil
	}
	// A binary without a symbol table (or an older Go) still has its
	// modules: matching then says reachability is unknown.
	read := func() ([]gosyms.Symbol, error) { return gosyms.Read(f.At, f.Size) }
	if f.At == nil {
		read = func() ([]gosyms.Symbol, error) { return gosyms.ReadBytes(f.Data) }
	}
	if syms, err := read(); err == nil {
		attachSymbols(bi, pkgs, mods, syms)
	}
	return &analyzer.Result{Packages: pkgs}, nil
}

// Packages converts build information into packages (Path left empty).
func Packages(bi *debug.BuildInfo) []report.Package {
	pkgs, _ := packages(bi)
	return pkgs
}

// packages is Packages, also returning for each package the module path
// its code was compiled under (the required path, also when replaced):
// symbols name packages by that path. stdlib's is "".
func packages(bi *debug.BuildInfo) (pkgs []report.Package, mods []string) {
	if bi.Main.Path != "" {
		pkgs = append(pkgs, module(bi.Main.Path, bi.Main.Version))
		mods = append(mods, bi.Main.Path)
	}
	for _, d := range bi.Deps {
		if d == nil {
			continue
		}
		path, ver := d.Path, d.Version
		if r := d.Replace; r != nil {
			if r.Version != "" {
				path, ver = r.Path, r.Version
			} else {
				// Replaced by a local directory: the code is not the
				// required version, and the replacement path is a
				// directory, not a module.
				ver = devel
			}
		}
		if path == "" {
			continue
		}
		pkgs = append(pkgs, module(path, ver))
		mods = append(mods, d.Path)
	}
	if v := goVersion(bi.GoVersion); v != "" {
		pkgs = append(pkgs, report.Package{
			Name:      "stdlib",
			Version:   v,
			Ecosystem: Ecosystem,
			PURL:      purl("stdlib", "v"+v),
		})
		mods = append(mods, "")
	}
	var goos, goarch string
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	for i := range pkgs {
		pkgs[i].GOOS, pkgs[i].GOARCH = goos, goarch
	}
	return pkgs, mods
}

// attachSymbols gives each package the fingerprint of the functions of
// its module: a symbol's package belongs to the module with the longest
// path prefix, else to the standard library when its first path element
// has no dot ("net/http", "vendor/golang.org/x/net/http2"); package main
// is the binary's main package path, as govulncheck reads it.
func attachSymbols(bi *debug.BuildInfo, pkgs []report.Package, mods []string, syms []gosyms.Symbol) {
	groups := make([][]gosyms.Symbol, len(pkgs))
	std := -1
	for i, m := range mods {
		if m == "" {
			std = i
		}
	}
	for _, s := range syms {
		if s.Pkg == "main" && bi.Path != "" {
			s.Pkg = bi.Path
		}
		if s.Pkg == "" {
			continue
		}
		best := -1
		for i, m := range mods {
			if m != "" && (s.Pkg == m || strings.HasPrefix(s.Pkg, m+"/")) && (best < 0 || len(m) > len(mods[best])) {
				best = i
			}
		}
		if best < 0 {
			first, _, _ := strings.Cut(s.Pkg, "/")
			if std < 0 || strings.Contains(first, ".") {
				continue
			}
			best = std
		}
		groups[best] = append(groups[best], s)
	}
	for i, g := range groups {
		if len(g) > 0 {
			pkgs[i].GoSymbols = gosyms.Fingerprint(g)
		}
	}
}

func module(path, version string) report.Package {
	if version == "" {
		version = devel
	}
	p := report.Package{
		Name:      path,
		Version:   strings.TrimPrefix(version, "v"),
		Ecosystem: Ecosystem,
	}
	if version == devel {
		p.PURL = purl(path, "")
	} else {
		p.PURL = purl(path, version)
	}
	return p
}

func purl(path, version string) string {
	ns, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		ns, name = path[:i], path[i+1:]
	}
	return packageurl.NewPackageURL(packageurl.TypeGolang, ns, name, version, nil, "").ToString()
}

// goVersion turns "go1.22.3" (or "go1.22.3 X:boringcrypto") into
// "1.22.3"; "" when it is not a release ("devel +abcdef").
func goVersion(v string) string {
	v, _, _ = strings.Cut(strings.TrimSpace(v), " ")
	if !strings.HasPrefix(v, "go") || len(v) < 3 || v[2] < '0' || v[2] > '9' {
		return ""
	}
	return v[2:]
}
