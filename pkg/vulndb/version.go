package vulndb

import (
	"errors"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
	gem "github.com/aquasecurity/go-gem-version"
	pep440 "github.com/aquasecurity/go-pep440-version"
	hcversion "github.com/hashicorp/go-version"
	apk "github.com/knqyf263/go-apk-version"
	rpmversion "github.com/knqyf263/go-rpm-version"
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

	// RPM distributions (https://ossf.github.io/osv-schema/, "affected
	// package" ecosystems): all ordered by rpmvercmp over [epoch:]version-
	// release, see cmpRPM. Fedora, CentOS (Stream), Amazon Linux and Oracle
	// Linux have no OSV ecosystem, so their packages (ecosystem "RPM" from
	// the rpm analyzer) never match.
	ecoAlmaLinux  = "AlmaLinux"   // "AlmaLinux:9" (ALSA records)
	ecoRocky      = "Rocky Linux" // "Rocky Linux:9" (RLSA records)
	ecoRedHat     = "Red Hat"     // "Red Hat:enterprise_linux:9::appstream" (RHSA records)
	ecoSUSE       = "SUSE"        // "SUSE:Linux Enterprise Module for Basesystem 15 SP5" (SUSE-SU records)
	ecoOpenSUSE   = "openSUSE"    // "openSUSE:Leap 15.5", "openSUSE:Tumbleweed"
	ecoMageia     = "Mageia"      // "Mageia:9" (MGASA records)
	ecoOpenEuler  = "openEuler"   // "openEuler:22.03-LTS-SP1" (OESA records)
	ecoAzureLinux = "Azure Linux" // "Azure Linux:3" (AZL records; CBL-Mariner 2.0 is "Azure Linux:2")
	ecoPhotonOS   = "Photon OS"   // "Photon OS:5.0" (PHSA records)
)

// rpmEcosystems are the OSV ecosystems whose versions are RPM EVRs.
var rpmEcosystems = []string{ecoAlmaLinux, ecoRocky, ecoRedHat, ecoSUSE, ecoOpenSUSE,
	ecoMageia, ecoOpenEuler, ecoAzureLinux, ecoPhotonOS}

var canonicalEcosystems = func() map[string]string {
	m := map[string]string{}
	for _, e := range append([]string{ecoGo, ecoNPM, ecoPyPI, ecoMaven, ecoRubyGems, ecoCrates,
		ecoPackagist, ecoNuGet, ecoDebian, ecoUbuntu, ecoAlpine}, rpmEcosystems...) {
		m[strings.ToLower(e)] = e
	}
	return m
}()

// isDistro reports whether an ecosystem's advisories name source packages,
// so that Match compares the installed package's SourceName/SourceVersion
// rather than its Name/Version. Checked against the publishers' records and
// the OSV schema's ecosystem list:
//
//   - source: Debian, Ubuntu, Alpine; Rocky Linux (apollo publishes one
//     affected entry per source RPM, "openssl" for openssl-libs); SUSE and
//     openSUSE (the source RPM, its binaries in ecosystem_specific.binaries);
//     Mageia, openEuler and Azure Linux (the schema: "name of the source
//     package").
//   - binary: AlmaLinux (one entry per binary RPM: openssl, openssl-libs,
//     openssl-devel, ... in ALSA records, despite the schema's wording); Red
//     Hat (one entry per binary RPM of each product stream: mod_ssl, not
//     httpd, with mod_ssl's own epoch); Photon OS ("name of the RPM
//     package").
//
// The rpm analyzer sets SourceName/SourceVersion from SOURCERPM, with the
// binary's epoch (an RPM header does not carry the source's epoch).
func isDistro(base string) bool {
	switch base {
	case ecoDebian, ecoUbuntu, ecoAlpine,
		ecoRocky, ecoSUSE, ecoOpenSUSE, ecoMageia, ecoOpenEuler, ecoAzureLinux:
		return true
	}
	return false
}

// normalizeEcosystem splits an ecosystem string into its canonical base
// and a normalized release suffix, so that both sides of a match compare
// equal: "Ubuntu:22.04:LTS" and "Ubuntu:22.04" → ("Ubuntu", "22.04");
// "Alpine:3.19" and "Alpine:v3.19" → ("Alpine", "v3.19"). Ubuntu "Pro:"
// ecosystems keep their prefix so they only match Pro packages.
//
// RPM distributions:
//
//   - AlmaLinux, Rocky Linux, Azure Linux: the major release ("Rocky
//     Linux:8.9" → "8"), which is all OSV records carry.
//   - Red Hat: OSV scopes each record to a product stream, the CPE of the
//     repository the RPM ships in ("enterprise_linux:9::baseos",
//     "enterprise_linux:9::appstream", "enterprise_linux:8::crb",
//     "enterprise_linux:7::server", "enterprise_linux:10.0"), which an
//     image's os-release does not tell. Every main enterprise_linux stream
//     of a major release is reduced to "enterprise_linux:<major>", which is
//     what the rpm analyzer writes for a RHEL image, so a RHEL 9 package is
//     matched against the records of all RHEL 9 repositories (a package name
//     lives in one of them) and of every 9.x minor release. This is an
//     approximation: a package built for one layered repository (SAP, NFV,
//     RT) is checked against another's record of the same name, and module
//     streams (nodejs:18 and nodejs:22 in one appstream) are not told
//     apart. Other products (rhel_eus:9.2::appstream, rhel_aus, rhel_e4s,
//     rhel_tus, rhel_els, openshift, ...) keep their full stream and so
//     never match an image: os-release does not say an image is on an
//     extended-support stream.
//   - SUSE: SUSE files a fix against every product that ships the source
//     RPM, and for SLE 15 the base packages ship in modules ("SUSE:Linux
//     Enterprise Module for Basesystem 15 SP5"), not in "SUSE:Linux
//     Enterprise Server 15 SP5" that an image's PRETTY_NAME names. All SUSE
//     Linux Enterprise products (Server, Desktop, Server for SAP
//     Applications, High Performance Computing, modules, extensions) of one
//     release and service pack, including their -LTSS/-ESPOS variants, are
//     reduced to "Linux Enterprise <release>" ("Linux Enterprise 15 SP5",
//     "Linux Enterprise 12 SP5", "Linux Enterprise 16.0"): a package name
//     and version of one service pack is the same RPM whichever product
//     delivers it. SLE Micro ("Linux Enterprise Micro 5.5") and other
//     products (SUSE Manager, Enterprise Storage, ...) keep their name.
//   - openSUSE: as written ("openSUSE:Leap 15.5", "openSUSE:Tumbleweed"),
//     "Leap 15.5 NonFree" folded into "Leap 15.5".
//   - Mageia, openEuler, Photon OS: as written ("Mageia:9",
//     "openEuler:22.03-LTS-SP1", "Photon OS:5.0").
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
	case ecoAlmaLinux, ecoRocky, ecoAzureLinux:
		release, _, _ = strings.Cut(release, ".")
	case ecoRedHat:
		release = redHatRelease(release)
	case ecoSUSE:
		release = suseRelease(release)
	case ecoOpenSUSE:
		// Leap's non-free repository has its own ecosystem
		// ("openSUSE:Leap 15.5 NonFree"); an image is on both.
		release = strings.TrimSuffix(release, " NonFree")
	}
	return base, release
}

// redHatRelease reduces a main RHEL stream ("enterprise_linux:9::baseos",
// "enterprise_linux:10.1") to "enterprise_linux:<major>"; other streams are
// returned as they are.
func redHatRelease(release string) string {
	f := strings.Split(release, ":")
	if len(f) < 2 || f[0] != "enterprise_linux" {
		return release
	}
	major, _, _ := strings.Cut(f[1], ".")
	if !allDigits(major) {
		return release
	}
	return "enterprise_linux:" + major
}

// suseEnterprise matches a SUSE Linux Enterprise product name and captures
// its release: "Linux Enterprise Module for Basesystem 15 SP5" → "15 SP5",
// "Linux Enterprise Server 12 SP5-LTSS-EXTENDED-SECURITY" → "12 SP5",
// "Linux Enterprise Server 11 SP4 LTSS" → "11 SP4", "Linux Enterprise
// Server 16.0" → "16.0". Product words may hold digits ("Module for Python
// 3 15 SP5"); the release is the last SLE release number (10 to 19, with
// its service pack, also spelt "15-SP5" as in SUSE's patch names) before
// the upper-case variant suffixes, so "Module for SUSE Manager Server 4.3"
// is left alone.
var suseEnterprise = regexp.MustCompile(`^Linux Enterprise (?:\S+ )*?(1\d(?:\.\d+)?)(?:[ -](SP\d+))?(?:[- ][A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)*$`)

// suseRelease reduces a SUSE Linux Enterprise product to "Linux Enterprise
// <release>" (see normalizeEcosystem); SLE Micro and other products are
// returned as they are.
func suseRelease(release string) string {
	if strings.HasPrefix(release, "Linux Enterprise Micro") {
		return release
	}
	m := suseEnterprise.FindStringSubmatch(release)
	if m == nil {
		return release
	}
	if m[2] != "" {
		return "Linux Enterprise " + m[1] + " " + m[2]
	}
	return "Linux Enterprise " + m[1]
}

func allDigits(s string) bool {
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
	case ecoAlmaLinux, ecoRocky, ecoRedHat, ecoSUSE, ecoOpenSUSE, ecoMageia,
		ecoOpenEuler, ecoAzureLinux, ecoPhotonOS:
		return cmpRPM
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

var errRPMVersion = errors.New("vulndb: invalid RPM version")

// parseRPM checks an RPM "[epoch:]version[-release]" and parses it with
// go-rpm-version, which accepts anything (it never fails, and reads an
// unparseable epoch as 0). Accepted: an optional all-digit epoch followed
// by ':' ("1:3.0.7-27.el9", also "0:5.2.5-8.el9_0" as Rocky and Red Hat
// write epoch 0), a non-empty version and, after the first '-', a non-empty
// release, made of the characters rpm allows in them (letters, digits and
// "._+~^"; '-' only between version and release, so at most one in
// practice, but go-rpm-version splits at the first one). A missing epoch
// is epoch 0, as in rpm and osv.dev: a record that leaves out the epoch of
// an epoch-1 package ("3.0.7-27.el9" for openssl) is older than every
// installed 1:... build, which is the record's error. Versions such as
// "virt-devel:rhel" (seen in Red Hat records for module RPMs) are
// rejected, so their events are dropped at build time.
func parseRPM(v string) (rpmversion.Version, error) {
	evr := v
	if e, rest, ok := strings.Cut(v, ":"); ok {
		if !allDigits(e) || len(e) > 9 {
			return rpmversion.Version{}, errRPMVersion
		}
		if _, err := strconv.Atoi(e); err != nil {
			return rpmversion.Version{}, errRPMVersion
		}
		evr = rest
	}
	ver, rel, hasRel := strings.Cut(evr, "-")
	if ver == "" || (hasRel && rel == "") || !rpmChars(ver) || !rpmChars(strings.ReplaceAll(rel, "-", ".")) {
		return rpmversion.Version{}, errRPMVersion
	}
	if !hasAlnum(ver) {
		return rpmversion.Version{}, errRPMVersion
	}
	return rpmversion.NewVersion(v), nil
}

func rpmChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c == '.', c == '_', c == '+', c == '~', c == '^':
		default:
			return false
		}
	}
	return true
}

func hasAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

// cmpRPM orders RPM EVRs as rpm does: epoch numerically, then version and
// release with rpmvercmp (alternating numeric and alphabetic segments, '~'
// sorting before and '^' after the version it follows).
func cmpRPM(a, b string) (int, error) {
	va, err := parseRPM(a)
	if err != nil {
		return 0, err
	}
	vb, err := parseRPM(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

// Ecosystems are the OSV ecosystems Customs matches, by the names osv.dev
// publishes its per-ecosystem dumps under (<name>/all.zip), sorted.
func Ecosystems() []string {
	out := make([]string, 0, len(canonicalEcosystems))
	for _, e := range canonicalEcosystems {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}
