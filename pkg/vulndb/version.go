package vulndb

import (
	"errors"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
	gem "github.com/aquasecurity/go-gem-version"
	pep440 "github.com/aquasecurity/go-pep440-version"
	hcversion "github.com/hashicorp/go-version"
	apk "github.com/knqyf263/go-apk-version"
	deb "github.com/knqyf263/go-deb-version"
	mvn "github.com/masahiro331/go-mvn-version"
	gosemver "golang.org/x/mod/semver"
)

// Canonical OSV ecosystem names Customs knows how to compare versions for.
const (
	ecoGo        = "Go"
	ecoNPM       = "npm"
	ecoPyPI      = "PyPI"
	ecoMaven     = "Maven"
	ecoRubyGems  = "RubyGems"
	ecoCrates    = "crates.io"
	ecoPackagist = "Packagist"
	ecoNuGet     = "NuGet"
	ecoDebian    = "Debian"
	ecoUbuntu    = "Ubuntu"
	ecoAlpine    = "Alpine"
)

var canonicalEcosystems = func() map[string]string {
	m := map[string]string{}
	for _, e := range []string{ecoGo, ecoNPM, ecoPyPI, ecoMaven, ecoRubyGems, ecoCrates,
		ecoPackagist, ecoNuGet, ecoDebian, ecoUbuntu, ecoAlpine} {
		m[strings.ToLower(e)] = e
	}
	return m
}()

// isDistro reports whether an ecosystem's advisories name source packages.
func isDistro(base string) bool {
	return base == ecoDebian || base == ecoUbuntu || base == ecoAlpine
}

// normalizeEcosystem splits an ecosystem string into its canonical base
// and a normalized release suffix, so that both sides of a match compare
// equal: "Ubuntu:22.04:LTS" and "Ubuntu:22.04" → ("Ubuntu", "22.04");
// "Alpine:3.19" and "Alpine:v3.19" → ("Alpine", "v3.19"). Ubuntu "Pro:"
// ecosystems keep their prefix so they only match Pro packages.
func normalizeEcosystem(eco string) (base, release string) {
	eco = strings.TrimSpace(eco)
	base, release, _ = strings.Cut(eco, ":")
	if c, ok := canonicalEcosystems[strings.ToLower(base)]; ok {
		base = c
	}
	switch base {
	case ecoUbuntu:
		release = strings.TrimSuffix(release, ":LTS")
	case ecoAlpine:
		if release != "" && !strings.HasPrefix(release, "v") {
			release = "v" + release
		}
	}
	return base, release
}

var pypiSep = regexp.MustCompile(`[-_.]+`)

// normalizeName applies the ecosystem's package-name equivalence: PyPI
// names per PEP 503, case-insensitive registries lowercased.
func normalizeName(base, name string) string {
	name = strings.TrimSpace(name)
	switch base {
	case ecoPyPI:
		return pypiSep.ReplaceAllString(strings.ToLower(name), "-")
	case ecoPackagist, ecoNuGet:
		return strings.ToLower(name)
	}
	return name
}

// comparator compares two versions of one ecosystem; an error means one of
// them does not parse in that ecosystem's scheme.
type comparator func(a, b string) (int, error)

var errUnknownScheme = errors.New("vulndb: no version ordering for ecosystem")

// comparatorFor returns the ordering for a range type in an ecosystem.
// SEMVER ranges use SemVer 2.0 regardless of the ecosystem (Go's
// golang.org/x/mod/semver for Go, Masterminds otherwise); ECOSYSTEM ranges
// use the ecosystem's own ordering. nil means the ecosystem is unknown:
// only explicit versions lists can match.
func comparatorFor(base, rangeType string) comparator {
	if base == ecoGo {
		return cmpGo
	}
	if rangeType == "SEMVER" {
		return cmpSemver
	}
	switch base {
	case ecoDebian, ecoUbuntu:
		return cmpDeb
	case ecoAlpine:
		return cmpAPK
	case ecoNPM, ecoCrates:
		return cmpSemver
	case ecoNuGet, ecoPackagist:
		// NuGet has four-part versions ("4.3.0.1") and Composer allows
		// them too, which strict SemVer parsers reject; hashicorp's
		// go-version orders any number of numeric segments plus a
		// SemVer-style pre-release.
		return cmpMultipart
	case ecoPyPI:
		return cmpPEP440
	case ecoMaven:
		return cmpMaven
	case ecoRubyGems:
		return cmpGem
	}
	return nil
}

// goSemver turns a Go version as written by OSV ("1.19.1"), by the Go
// toolchain ("go1.19.1") or by modules ("v1.2.3") into x/mod/semver form.
func goSemver(v string) string {
	v = strings.TrimPrefix(v, "go")
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	return v
}

func cmpGo(a, b string) (int, error) {
	a, b = goSemver(a), goSemver(b)
	if !gosemver.IsValid(a) || !gosemver.IsValid(b) {
		return 0, errors.New("vulndb: invalid Go version")
	}
	return gosemver.Compare(a, b), nil
}

func cmpSemver(a, b string) (int, error) {
	va, err := semver.NewVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := semver.NewVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

func cmpMultipart(a, b string) (int, error) {
	va, err := hcversion.NewVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := hcversion.NewVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

func cmpDeb(a, b string) (int, error) {
	va, err := deb.NewVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := deb.NewVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

func cmpAPK(a, b string) (int, error) {
	va, err := apk.NewVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := apk.NewVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

func cmpPEP440(a, b string) (int, error) {
	va, err := pep440.Parse(a)
	if err != nil {
		return 0, err
	}
	vb, err := pep440.Parse(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

func cmpMaven(a, b string) (int, error) {
	va, err := mvn.NewVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := mvn.NewVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

func cmpGem(a, b string) (int, error) {
	va, err := gem.NewVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := gem.NewVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}
