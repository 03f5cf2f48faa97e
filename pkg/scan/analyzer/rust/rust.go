// Package rust finds Rust crates in Cargo.lock files and in ELF
// executables built with cargo-auditable.
//
// Cargo.lock (format versions 1 to 4): every [[package]] whose source is
// crates.io ("registry+https://github.com/rust-lang/crates.io-index" or
// "sparse+https://index.crates.io/") is reported with Ecosystem
// "crates.io" and purl pkg:cargo/name@version. Crates from git or from
// another registry are reported without Ecosystem (OSV's crates.io
// advisories do not apply to them) and with a purl carrying
// vcs_url/repository_url. Workspace members and path dependencies (no
// source) are the project itself and are not reported.
//
// Executables: cargo-auditable stores the dependency tree as
// zlib-compressed JSON in the ELF section ".dep-v0" (".rust-deps-v0"
// before 0.5). Runtime dependencies with source "crates.io" are reported
// like the lock file's; "git" and "registry" ones without Ecosystem;
// "local" ones and build-time dependencies (kind "build": build scripts
// and proc macros, not linked in) are not. Any regular file with an
// executable bit whose first bytes are the ELF magic is read. PE and
// Mach-O executables are not.
package rust

import (
	"bytes"
	"compress/zlib"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/package-url/packageurl-go"
	"github.com/pelletier/go-toml/v2"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// Ecosystem is the OSV ecosystem of crates from crates.io.
const Ecosystem = "crates.io"

const (
	lockName = "Cargo.lock"
	// minExec is below the size of any ELF file with a section (an ELF64
	// header and one section header).
	minExec = 128
	// MaxDepInfo bounds the decompressed .dep-v0 JSON.
	MaxDepInfo = 8 << 20
	// maxSection bounds the compressed section read from the file.
	maxSection = 8 << 20
)

// Analyzer is the Rust analyzer.
type Analyzer struct{}

// New returns the Rust analyzer.
func New() *Analyzer { return &Analyzer{} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "rust" }

// Version implements analyzer.Analyzer.
func (*Analyzer) Version() int { return 2 }

var _ analyzer.MemoryUser = (*Analyzer)(nil)

// ParseCopies implements analyzer.MemoryUser: the TOML parser holds a
// copy of Cargo.lock (measured: 250 MiB over the buffer for a 250 MiB file).
func (*Analyzer) ParseCopies(path string) int {
	if isLock(path) {
		return 1
	}
	return 0
}

// Match implements analyzer.Analyzer: files named Cargo.lock, and
// executables.
func (*Analyzer) Match(p string, mode fs.FileMode, size int64) bool {
	return isLock(p) || (mode&0o111 != 0 && size >= minExec)
}

func isLock(p string) bool {
	return strings.HasSuffix(p, lockName) && (len(p) == len(lockName) || p[len(p)-len(lockName)-1] == '/')
}

// Sniff implements analyzer.Sniffer: Cargo.lock, or ELF executables.
func (*Analyzer) Sniff(p string, head []byte) bool {
	return isLock(p) || bytes.HasPrefix(head, []byte("\x7fELF"))
}

// ReadsAt implements analyzer.ReaderAtUser: executables are read through
// File.ReaderAt (their section headers, then one section).
func (*Analyzer) ReadsAt(_ string, head []byte) bool { return bytes.HasPrefix(head, []byte("\x7fELF")) }

func isELF(r io.ReaderAt) bool {
	var magic [4]byte
	_, err := r.ReadAt(magic[:], 0)
	return err == nil && string(magic[:]) == "\x7fELF"
}

// Analyze implements analyzer.Analyzer. Malformed content yields what
// could be parsed and no error.
func (*Analyzer) Analyze(_ context.Context, f *analyzer.File) (res *analyzer.Result, err error) {
	var pkgs []report.Package
	switch {
	case isELF(f.ReaderAt()):
		pkgs = Binary(f.ReaderAt())
	case isLock(f.Path):
		pkgs = Lock(f.Data)
	}
	if len(pkgs) == 0 {
		return nil, nil
	}
	return &analyzer.Result{Packages: pkgs}, nil
}

// lockFile is the part of Cargo.lock read here.
type lockFile struct {
	Package []struct {
		Name    string `toml:"name"`
		Version string `toml:"version"`
		Source  string `toml:"source"`
	} `toml:"package"`
}

// Lock returns the crates of a Cargo.lock (Path left empty).
func Lock(data []byte) []report.Package {
	var lf lockFile
	if err := toml.Unmarshal(data, &lf); err != nil {
		return nil
	}
	var pkgs []report.Package
	seen := map[string]bool{}
	for _, p := range lf.Package {
		pk, ok := crate(p.Name, p.Version, lockSource(p.Source))
		if !ok || seen[pk.PURL] {
			continue
		}
		seen[pk.PURL] = true
		pkgs = append(pkgs, pk)
	}
	return pkgs
}

// source is where a crate comes from.
type source struct {
	kind string // "crates.io", "git", "registry", "" (local: not reported)
	url  string // git or registry URL
}

// lockSource interprets a Cargo.lock source:
// "registry+https://github.com/rust-lang/crates.io-index",
// "sparse+https://index.crates.io/", "git+https://host/repo.git?branch=x#rev".
func lockSource(s string) source {
	kind, url, _ := strings.Cut(s, "+")
	switch kind {
	case "registry", "sparse":
		u := strings.TrimSuffix(url, "/")
		if u == "https://github.com/rust-lang/crates.io-index" || u == "https://index.crates.io" {
			return source{kind: Ecosystem}
		}
		return source{kind: "registry", url: s}
	case "git":
		return source{kind: "git", url: url}
	}
	return source{}
}

// crate builds a package; ok is false for local crates and for names or
// versions that are not crate names or versions.
func crate(name, version string, src source) (report.Package, bool) {
	if src.kind == "" || !validName(name) || !validVersion(version) {
		return report.Package{}, false
	}
	p := report.Package{Name: name, Version: version}
	var q packageurl.Qualifiers
	switch src.kind {
	case Ecosystem:
		p.Ecosystem = Ecosystem
	case "git":
		if src.url != "" {
			q = packageurl.QualifiersFromMap(map[string]string{"vcs_url": "git+" + src.url})
		}
	case "registry":
		if src.url != "" {
			q = packageurl.QualifiersFromMap(map[string]string{"repository_url": src.url})
		}
	}
	p.PURL = packageurl.NewPackageURL(packageurl.TypeCargo, "", name, version, q, "").ToString()
	return p, true
}

// validName accepts crate names: ASCII alphanumerics, '-' and '_', at
// most 64 characters.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validVersion accepts semver-like versions: printable ASCII without
// spaces, at most 128 characters.
func validVersion(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// depInfo is cargo-auditable's JSON (auditable-serde VersionInfo).
type depInfo struct {
	Packages []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Source  string `json:"source"`
		Kind    string `json:"kind"` // "runtime" (default, omitted) or "build"
		Root    bool   `json:"root"`
	} `json:"packages"`
}

// Binary returns the crates recorded by cargo-auditable in an ELF file
// (Path left empty); nil when there is no such section.
func Binary(r io.ReaderAt) (pkgs []report.Package) {
	defer func() {
		if recover() != nil { // debug/elf on hostile input
			pkgs = nil
		}
	}()
	data, err := depSection(r)
	if err != nil {
		return nil
	}
	var di depInfo
	if err := json.Unmarshal(data, &di); err != nil {
		return nil
	}
	seen := map[string]bool{}
	for _, p := range di.Packages {
		if p.Kind == "build" {
			continue
		}
		var src source
		switch p.Source {
		case "crates.io":
			src = source{kind: Ecosystem}
		case "git", "registry":
			src = source{kind: p.Source}
		default: // "local", or unknown
			continue
		}
		pk, ok := crate(p.Name, p.Version, src)
		if !ok || seen[pk.PURL] {
			continue
		}
		seen[pk.PURL] = true
		pkgs = append(pkgs, pk)
	}
	return pkgs
}

// depSection returns the decompressed .dep-v0 (or .rust-deps-v0) section.
func depSection(r io.ReaderAt) ([]byte, error) {
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	s := ef.Section(".dep-v0")
	if s == nil {
		s = ef.Section(".rust-deps-v0")
	}
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil, fmt.Errorf("no dependency section")
	}
	if s.Size > maxSection {
		return nil, fmt.Errorf("dependency section too large (%d bytes)", s.Size)
	}
	zr, err := zlib.NewReader(io.LimitReader(s.Open(), maxSection))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	data, err := io.ReadAll(io.LimitReader(zr, MaxDepInfo+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxDepInfo {
		return nil, fmt.Errorf("dependency info over %d bytes", MaxDepInfo)
	}
	return data, nil
}
