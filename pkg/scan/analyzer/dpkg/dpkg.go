// Package dpkg reads the Debian package database: /var/lib/dpkg/status
// (status-old and other backups are ignored) and the per-package files of
// distroless images, /var/lib/dpkg/status.d/<name> (their *.md5sums
// siblings are skipped).
//
// Only installed packages are reported: in status, the third word of the
// Status field must be "installed" ("install ok installed", and also
// "hold ok installed"); status.d files carry no Status field and count as
// installed. Ecosystem and purl depend on the OS and are set in
// PostProcess:
//
//	ID=debian VERSION_ID=12    → Debian:12      pkg:deb/debian/<name>@<version>?arch=<arch>&distro=debian-12
//	ID=ubuntu VERSION_ID=22.04 → Ubuntu:22.04   pkg:deb/ubuntu/<name>@<version>?arch=<arch>&distro=ubuntu-22.04
//	anything else / no OS      → Debian         pkg:deb/debian/<name>@<version>?arch=<arch>
//
// OSV files Ubuntu LTS releases as "Ubuntu:22.04:LTS"; the report keeps
// the plain "Ubuntu:<VERSION_ID>" and leaves the LTS suffix to the
// vulnerability matcher.
package dpkg

import (
	"bytes"
	"context"
	"io/fs"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

const (
	statusPath = "var/lib/dpkg/status"
	statusDir  = "var/lib/dpkg/status.d/"
)

// Analyzer is the dpkg analyzer.
type Analyzer struct{}

// New returns the dpkg analyzer.
func New() *Analyzer { return &Analyzer{} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "dpkg" }

// Version implements analyzer.Analyzer.
func (*Analyzer) Version() int { return 1 }

// Anchors implements analyzer.Anchored: the database is read through
// symlinks, as dpkg reads it.
func (*Analyzer) Anchors() []string { return []string{"var/lib/dpkg", "var/lib/dpkg/status.d"} }

// Match implements analyzer.Analyzer.
func (*Analyzer) Match(path string, _ fs.FileMode, _ int64) bool {
	if path == statusPath {
		return true
	}
	if !strings.HasPrefix(path, statusDir) {
		return false
	}
	name := path[len(statusDir):]
	return name != "" && name[0] != '.' && strings.IndexByte(name, '/') < 0 && !strings.HasSuffix(name, ".md5sums")
}

// Analyze implements analyzer.Analyzer.
func (*Analyzer) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	pkgs := Parse(f.Data, f.Path != statusPath)
	if len(pkgs) == 0 {
		return nil, nil
	}
	return &analyzer.Result{Packages: pkgs}, nil
}

// Parse reads dpkg control stanzas. With noStatus (status.d files) a
// stanza without a Status field counts as installed; otherwise it must be
// installed according to its Status field. Stanzas without Package or
// Version are skipped.
func Parse(b []byte, noStatus bool) []report.Package {
	var (
		pkgs []report.Package
		cur  stanza
	)
	flush := func() {
		if p, ok := cur.pkg(noStatus); ok {
			pkgs = append(pkgs, p)
		}
		cur = stanza{}
	}
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' || line[0] == '#' {
			continue // continuation of a multi-line field (Description, Conffiles…)
		}
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch string(key) { // no allocation: the compiler special-cases string(b) in switch
		case "Package":
			cur.name = string(val)
		case "Version":
			cur.version = string(val)
		case "Architecture":
			cur.arch = string(val)
		case "Source":
			cur.source = string(val)
		case "Status":
			cur.hasStatus = true
			cur.installed = installed(val)
		}
	}
	flush()
	return pkgs
}

type stanza struct {
	name, version, arch, source string
	hasStatus, installed        bool
}

func (s *stanza) pkg(noStatus bool) (report.Package, bool) {
	if s.name == "" || s.version == "" {
		return report.Package{}, false
	}
	if s.hasStatus {
		if !s.installed {
			return report.Package{}, false
		}
	} else if !noStatus {
		return report.Package{}, false
	}
	p := report.Package{
		Name:          s.name,
		Version:       s.version,
		Arch:          s.arch,
		SourceName:    s.name,
		SourceVersion: s.version,
	}
	if s.source != "" {
		// "Source: glibc (2.36-9+deb12u4)" or "Source: openssl".
		name, ver, hasVer := strings.Cut(s.source, " ")
		p.SourceName = name
		if hasVer {
			ver = strings.TrimSpace(ver)
			if strings.HasPrefix(ver, "(") && strings.HasSuffix(ver, ")") {
				p.SourceVersion = strings.TrimSpace(ver[1 : len(ver)-1])
			}
		}
	}
	return p, true
}

// installed reads "want flag status" and reports whether status is
// "installed".
func installed(v []byte) bool {
	f := bytes.Fields(v)
	return len(f) == 3 && string(f[2]) == "installed"
}

// PostProcess implements analyzer.PostProcessor: it sets the OSV
// ecosystem and the purl of every package from the image's OS.
func (*Analyzer) PostProcess(_ context.Context, img *analyzer.Image, res *analyzer.Result) error {
	eco, ns, distro := Ecosystem(img.OS)
	for i := range res.Packages {
		p := &res.Packages[i]
		p.Ecosystem = eco
		p.PURL = PURL(ns, distro, p)
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
	case "debian":
		if os.Version == "" {
			return "Debian", "debian", distro
		}
		major, _, _ := strings.Cut(os.Version, ".")
		return "Debian:" + major, "debian", distro
	case "ubuntu":
		if os.Version == "" {
			return "Ubuntu", "ubuntu", distro
		}
		return "Ubuntu:" + os.Version, "ubuntu", distro
	default:
		return "Debian", "debian", distro
	}
}

// PURL returns pkg:deb/<namespace>/<name>@<version>?arch=<arch>&distro=<distro>.
func PURL(namespace, distro string, p *report.Package) string {
	var q packageurl.Qualifiers
	if p.Arch != "" {
		q = append(q, packageurl.Qualifier{Key: "arch", Value: p.Arch})
	}
	if distro != "" {
		q = append(q, packageurl.Qualifier{Key: "distro", Value: distro})
	}
	return packageurl.NewPackageURL(packageurl.TypeDebian, namespace, p.Name, p.Version, q, "").ToString()
}
