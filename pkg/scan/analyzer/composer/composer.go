// Package composer finds PHP packages in Composer files:
//
//	composer.lock                   "packages" and "packages-dev" of an application
//	vendor/composer/installed.json  what Composer installed (v1: a JSON array,
//	                                v2: {"packages": [...]})
//
// composer.lock files inside a vendor/ directory (libraries' own
// lockfiles) are ignored. An application shipping both its composer.lock
// and its vendor/ reports each package twice, with different Paths.
// Versions are kept as Composer wrote them ("v5.4.21", "2.9.1",
// "dev-main"), which is also what OSV's Packagist ecosystem uses.
// Development dependencies ("packages-dev", installed.json's
// "dev-package-names") get Scope "dev".
//
// Ecosystem "Packagist", purl pkg:composer/vendor/name@version.
package composer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

const (
	// Ecosystem is the OSV ecosystem name.
	Ecosystem = "Packagist"

	maxFileSize   = 64 << 20
	maxNameLen    = 256
	maxVersionLen = 256
)

// Analyzer is the composer analyzer.
type Analyzer struct{}

// New returns the composer analyzer.
func New() *Analyzer { return &Analyzer{} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "composer" }

// Version implements analyzer.Analyzer.
func (*Analyzer) Version() int { return 2 }

const installedSuffix = "vendor/composer/installed.json"

// Match implements analyzer.Analyzer.
func (*Analyzer) Match(path string, _ fs.FileMode, size int64) bool {
	if size > maxFileSize {
		return false
	}
	if path == "composer.lock" {
		return true
	}
	if strings.HasSuffix(path, "/composer.lock") {
		return !strings.HasPrefix(path, "vendor/") && !strings.Contains(path, "/vendor/")
	}
	return path == installedSuffix || strings.HasSuffix(path, "/"+installedSuffix)
}

// Analyze implements analyzer.Analyzer.
func (*Analyzer) Analyze(ctx context.Context, f *analyzer.File) (*analyzer.Result, error) {
	var pkgs []report.Package
	if strings.HasSuffix(f.Path, "composer.lock") {
		pkgs = ParseLock(f.Data)
	} else {
		pkgs = ParseInstalled(f.Data)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(pkgs) == 0 {
		return nil, nil
	}
	return &analyzer.Result{Packages: pkgs}, nil
}

type entry struct {
	Name    any `json:"name"`
	Version any `json:"version"`
}

// partial reports whether a JSON decoding error still left usable values
// (a field of the wrong type is skipped, the rest decoded).
func partial(err error) bool {
	var te *json.UnmarshalTypeError
	return err == nil || errors.As(err, &te)
}

// ParseLock reads composer.lock.
func ParseLock(b []byte) []report.Package {
	var lock struct {
		Packages    []entry `json:"packages"`
		PackagesDev []entry `json:"packages-dev"`
	}
	if err := json.Unmarshal(b, &lock); !partial(err) {
		return nil
	}
	var d dedup
	d.addAll(lock.Packages, nil)
	d.addAll(lock.PackagesDev, func(string) bool { return true })
	return d.pkgs
}

// ParseInstalled reads vendor/composer/installed.json, Composer 1 (an
// array of packages) or Composer 2 ({"packages": [...]}).
func ParseInstalled(b []byte) []report.Package {
	var d dedup
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '[' {
		var v1 []entry
		if err := json.Unmarshal(b, &v1); !partial(err) {
			return nil
		}
		d.addAll(v1, nil)
		return d.pkgs
	}
	var v2 struct {
		Packages []entry `json:"packages"`
		// DevPackageNames lists the packages installed for require-dev
		// only (Composer 2).
		DevPackageNames []string `json:"dev-package-names"`
	}
	if err := json.Unmarshal(b, &v2); !partial(err) {
		return nil
	}
	d.addAll(v2.Packages, func(name string) bool { return slices.Contains(v2.DevPackageNames, name) })
	return d.pkgs
}

// dedup collects packages once per name@version: a development
// dependency unless one of its entries is not.
type dedup struct {
	seen map[[2]string]int // index in pkgs
	pkgs []report.Package
}

// addAll adds es; dev (nil: none) tells development dependencies by name.
func (d *dedup) addAll(es []entry, dev func(name string) bool) {
	for _, e := range es {
		name, _ := e.Name.(string)
		version, _ := e.Version.(string)
		name = strings.TrimSpace(name)
		d.add(name, strings.TrimSpace(version), dev != nil && dev(name))
	}
}

func (d *dedup) add(name, version string, dev bool) {
	k := [2]string{name, version}
	if i, ok := d.seen[k]; ok {
		if !dev {
			d.pkgs[i].Scope = ""
		}
		return
	}
	p, ok := NewPackage(name, version)
	if !ok {
		return
	}
	if dev {
		p.Scope = report.ScopeDev
	}
	if d.seen == nil {
		d.seen = make(map[[2]string]int)
	}
	d.seen[k] = len(d.pkgs)
	d.pkgs = append(d.pkgs, p)
}

// NewPackage returns the Packagist package "vendor/name" at version, or
// false when either is unusable.
func NewPackage(name, version string) (report.Package, bool) {
	if name == "" || len(name) > maxNameLen || !clean(name) ||
		version == "" || len(version) > maxVersionLen || !clean(version) {
		return report.Package{}, false
	}
	ns, n, ok := strings.Cut(name, "/")
	if !ok {
		ns, n = "", name
	}
	if n == "" || strings.IndexByte(n, '/') >= 0 {
		return report.Package{}, false
	}
	return report.Package{
		Name:      name,
		Version:   version,
		Ecosystem: Ecosystem,
		PURL:      packageurl.NewPackageURL(packageurl.TypeComposer, ns, n, version, nil, "").ToString(),
	}, true
}

func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}
