// Package apk reads the Alpine package database, /lib/apk/db/installed
// (P: name, V: version, A: arch, o: origin — the source package).
//
// Ecosystem and purl depend on the OS and are set in PostProcess:
//
//	ID=alpine VERSION_ID=3.19.1 → Alpine:v3.19   pkg:apk/alpine/<name>@<version>?arch=<arch>&distro=alpine-3.19.1
//	ID=wolfi                    → Wolfi          pkg:apk/wolfi/…
//	ID=chainguard               → Chainguard     pkg:apk/chainguard/…
//	anything else / no OS       → Alpine         pkg:apk/alpine/<name>@<version>?arch=<arch>
package apk

import (
	"bytes"
	"context"
	"io/fs"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

const dbPath = "lib/apk/db/installed"

// Analyzer is the apk analyzer.
type Analyzer struct{}

// New returns the apk analyzer.
func New() *Analyzer { return &Analyzer{} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "apk" }

// Version implements analyzer.Analyzer.
func (*Analyzer) Version() int { return 1 }

// Anchors implements analyzer.Anchored: the database is read through
// symlinks, as apk reads it.
func (*Analyzer) Anchors() []string { return []string{"lib/apk/db"} }

// Match implements analyzer.Analyzer.
func (*Analyzer) Match(path string, _ fs.FileMode, _ int64) bool { return path == dbPath }

// Analyze implements analyzer.Analyzer.
func (*Analyzer) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	pkgs := Parse(f.Data)
	if len(pkgs) == 0 {
		return nil, nil
	}
	return &analyzer.Result{Packages: pkgs}, nil
}

// Parse reads installed-database records ("K:value" lines, records
// separated by blank lines). Records without P or V are skipped.
func Parse(b []byte) []report.Package {
	var (
		pkgs                  []report.Package
		name, ver, arch, orig string
	)
	flush := func() {
		if name != "" && ver != "" {
			src := orig
			if src == "" {
				src = name
			}
			pkgs = append(pkgs, report.Package{
				Name: name, Version: ver, Arch: arch,
				SourceName: src, SourceVersion: ver,
			})
		}
		name, ver, arch, orig = "", "", "", ""
	}
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			flush()
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			continue
		}
		// Only the four keys below are copied; F:/R:/Z: file lists (most
		// of the database) are skipped without allocating.
		switch line[0] {
		case 'P':
			name = string(bytes.TrimSpace(line[2:]))
		case 'V':
			ver = string(bytes.TrimSpace(line[2:]))
		case 'A':
			arch = string(bytes.TrimSpace(line[2:]))
		case 'o':
			orig = string(bytes.TrimSpace(line[2:]))
		}
	}
	flush()
	return pkgs
}

// PostProcess implements analyzer.PostProcessor.
func (*Analyzer) PostProcess(_ context.Context, img *analyzer.Image, res *analyzer.Result) error {
	eco, ns, distro := Ecosystem(img.OS)
	for i := range res.Packages {
		p := &res.Packages[i]
		p.Ecosystem = eco
		var q packageurl.Qualifiers
		if p.Arch != "" {
			q = append(q, packageurl.Qualifier{Key: "arch", Value: p.Arch})
		}
		if distro != "" {
			q = append(q, packageurl.Qualifier{Key: "distro", Value: distro})
		}
		p.PURL = packageurl.NewPackageURL(packageurl.TypeApk, ns, p.Name, p.Version, q, "").ToString()
	}
	return nil
}

// Ecosystem maps an OS to the OSV ecosystem, the purl namespace and the
// purl distro qualifier ("" when unknown).
func Ecosystem(os report.OS) (ecosystem, namespace, distro string) {
	if os.ID != "" && os.Version != "" {
		distro = os.ID + "-" + os.Version
	}
	switch os.ID {
	case "alpine":
		// VERSION_ID is "3.19.1" (or "3.20.0_alpha20240315" on edge):
		// OSV wants the branch, "v3.19".
		parts := strings.SplitN(os.Version, ".", 3)
		if len(parts) >= 2 && isDigits(parts[0]) && isDigits(leadingDigits(parts[1])) {
			return "Alpine:v" + parts[0] + "." + leadingDigits(parts[1]), "alpine", distro
		}
		return "Alpine", "alpine", distro
	case "wolfi":
		return "Wolfi", "wolfi", distro
	case "chainguard":
		return "Chainguard", "chainguard", distro
	default:
		return "Alpine", "alpine", distro
	}
}

func leadingDigits(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return s[:i]
		}
	}
	return s
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
