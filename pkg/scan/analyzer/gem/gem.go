// Package gem finds Ruby gems: installed gem specifications and the GEM
// section of Gemfile.lock files.
//
// Installed gems are the specification stubs RubyGems (and Debian's
// rubygems-integration) writes next to every installed gem:
//
//	…/specifications/<name>-<version>[-<platform>].gemspec
//	…/specifications/default/<name>-<version>.gemspec   (default gems)
//
// They are Ruby source: name and version are taken from the literal
// assignments `s.name = "rack".freeze` / `s.version = "2.2.22"` (any
// receiver name, "…", '…', %q{…} literals), then from the
// `# stub: <name> <version> <platform>` header RubyGems writes, and only
// as a last resort from the file name (the first "-<digit>" starts the
// version: a gem named "foo-2x" would be misread there, hence the
// content first). `s.platform` other than "ruby" becomes Arch.
//
// Gemfile.lock: the 4-space indented "name (version)" lines of every GEM
// section's specs (6-space lines are dependencies; GIT and PATH sections
// are not rubygems.org gems and are skipped). A platform suffix, as in
// "nokogiri (1.15.4-x86_64-linux)", is cut from the version and kept as
// Arch; a gem locked for several platforms is reported once, with Arch
// set only when all its entries agree. Gemfile.lock files of installed
// gems' own source trees (…/gems/<gem>/Gemfile.lock) are ignored.
//
// Ecosystem "RubyGems", purl pkg:gem/<name>@<version>[?platform=<arch>].
package gem

import (
	"bytes"
	"context"
	"io/fs"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// Ecosystem is the OSV ecosystem of every package.
const Ecosystem = "RubyGems"

// maxField bounds names, versions and platforms.
const maxField = 256

// Analyzer is the gem analyzer.
type Analyzer struct{}

// New returns the gem analyzer.
func New() *Analyzer { return &Analyzer{} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "gem" }

// Version implements analyzer.Analyzer.
func (*Analyzer) Version() int { return 1 }

// Match implements analyzer.Analyzer.
func (*Analyzer) Match(path string, _ fs.FileMode, _ int64) bool {
	return isGemspec(path) || isLockfile(path)
}

func isGemspec(path string) bool {
	if !strings.HasSuffix(path, ".gemspec") {
		return false
	}
	dir := path[:strings.LastIndexByte(path, '/')+1] // "" or ".../"
	return dir == "specifications/" || strings.HasSuffix(dir, "/specifications/") ||
		dir == "specifications/default/" || strings.HasSuffix(dir, "/specifications/default/")
}

func isLockfile(path string) bool {
	if path != "Gemfile.lock" && !strings.HasSuffix(path, "/Gemfile.lock") {
		return false
	}
	if strings.HasPrefix(path, "usr/share/doc/") || strings.Contains(path, "/usr/share/doc/") {
		return false
	}
	// The lockfile of an installed gem's source tree: …/gems/<gem>/…/Gemfile.lock.
	rest := ""
	if strings.HasPrefix(path, "gems/") {
		rest = path[len("gems/"):]
	} else if i := strings.Index(path, "/gems/"); i >= 0 {
		rest = path[i+len("/gems/"):]
	}
	if strings.IndexByte(rest, '/') >= 0 {
		return false
	}
	return true
}

// Analyze implements analyzer.Analyzer.
func (*Analyzer) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	var pkgs []report.Package
	if isGemspec(f.Path) {
		base := f.Path[strings.LastIndexByte(f.Path, '/')+1:]
		if p, ok := ParseGemspec(f.Data, strings.TrimSuffix(base, ".gemspec")); ok {
			pkgs = []report.Package{p}
		}
	} else {
		pkgs = ParseLockfile(f.Data)
	}
	if len(pkgs) == 0 {
		return nil, nil
	}
	return &analyzer.Result{Packages: pkgs}, nil
}

// newPackage validates and builds one package.
func newPackage(name, version, platform string) (report.Package, bool) {
	if !validName(name) || !validVersion(version) {
		return report.Package{}, false
	}
	if platform == "ruby" || !validName(platform) {
		platform = ""
	}
	var q packageurl.Qualifiers
	if platform != "" {
		q = packageurl.Qualifiers{{Key: "platform", Value: platform}}
	}
	return report.Package{
		Name:      name,
		Version:   version,
		Ecosystem: Ecosystem,
		PURL:      packageurl.NewPackageURL(packageurl.TypeGem, "", name, version, q, "").ToString(),
		Arch:      platform,
	}, true
}

// validName accepts gem names and platforms: letters, digits, "-", "_",
// ".".
func validName(s string) bool {
	if s == "" || len(s) > maxField {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validVersion accepts Gem::Version strings: they start with a digit and
// hold letters, digits and "." (a "-" is turned into ".pre." by RubyGems,
// so only the lockfile's platform suffix has one, cut before).
func validVersion(s string) bool {
	if s == "" || len(s) > maxField || s[0] < '0' || s[0] > '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.') {
			return false
		}
	}
	return true
}

// ParseGemspec reads a specification stub. stem is the file name without
// ".gemspec", the last-resort source of name and version.
func ParseGemspec(b []byte, stem string) (report.Package, bool) {
	var name, version, platform, stubName, stubVersion, stubPlatform string
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if rest, ok := bytes.CutPrefix(line, []byte("# stub:")); ok && stubName == "" {
			f := strings.Fields(string(rest))
			if len(f) >= 2 {
				stubName, stubVersion = f[0], f[1]
			}
			if len(f) >= 3 {
				stubPlatform = f[2]
			}
			continue
		}
		if line[0] == '#' {
			continue
		}
		attr, val, ok := assignment(line)
		if !ok {
			continue
		}
		switch attr {
		case "name":
			if name == "" {
				name = val
			}
		case "version":
			if version == "" {
				version = val
			}
		case "platform":
			if platform == "" {
				platform = val
			}
		}
		if name != "" && version != "" && platform != "" {
			break
		}
	}
	// The stub header, then the file name, fill what the assignments
	// did not give (e.g. `s.version = Foo::VERSION`).
	if name == "" {
		name = stubName
	}
	if version == "" && name != "" && name == stubName {
		version = stubVersion
		if platform == "" {
			platform = stubPlatform
		}
	}
	if name == "" {
		if n, v, p, ok := splitStem(stem); ok {
			name, version, platform = n, v, p
		}
	} else if rest, ok := strings.CutPrefix(stem, name+"-"); ok && version == "" {
		version, platform, _ = strings.Cut(rest, "-")
	}
	return newPackage(name, version, platform)
}

// assignment parses `<recv>.<attr> = <string literal>[.freeze]` and
// returns attr and the literal's value.
func assignment(line []byte) (attr, val string, ok bool) {
	dot := bytes.IndexByte(line, '.')
	if dot <= 0 || !isIdent(line[:dot]) {
		return "", "", false
	}
	rest := line[dot+1:]
	eq := bytes.IndexByte(rest, '=')
	if eq <= 0 {
		return "", "", false
	}
	a := bytes.TrimSpace(rest[:eq])
	if !isIdent(a) {
		return "", "", false
	}
	rhs := rest[eq+1:]
	if len(rhs) > 0 && (rhs[0] == '=' || rhs[0] == '~') { // ==, =~
		return "", "", false
	}
	v, ok := stringLiteral(bytes.TrimSpace(rhs))
	if !ok {
		return "", "", false
	}
	return string(a), v, true
}

func isIdent(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// stringLiteral reads a leading Ruby string literal without
// interpolation or escapes: "x", 'x', %q{x} %q<x> %q(x) %q[x] %{x}.
func stringLiteral(b []byte) (string, bool) {
	if len(b) < 2 {
		return "", false
	}
	var end byte
	switch b[0] {
	case '"', '\'':
		end, b = b[0], b[1:]
	case '%':
		b = b[1:]
		if len(b) > 0 && (b[0] == 'q' || b[0] == 'Q') {
			b = b[1:]
		}
		if len(b) == 0 {
			return "", false
		}
		switch b[0] {
		case '{':
			end = '}'
		case '<':
			end = '>'
		case '(':
			end = ')'
		case '[':
			end = ']'
		default:
			return "", false
		}
		b = b[1:]
	default:
		return "", false
	}
	i := bytes.IndexByte(b, end)
	if i < 0 {
		return "", false
	}
	s := b[:i]
	if bytes.ContainsAny(s, "\\#") {
		return "", false
	}
	return string(s), true
}

// splitStem splits "<name>-<version>[-<platform>]" at the first "-"
// followed by a digit.
func splitStem(stem string) (name, version, platform string, ok bool) {
	for i := 1; i+1 < len(stem); i++ {
		if stem[i] == '-' && stem[i+1] >= '0' && stem[i+1] <= '9' {
			name, version = stem[:i], stem[i+1:]
			if j := strings.IndexByte(version, '-'); j >= 0 {
				version, platform = version[:j], version[j+1:]
			}
			return name, version, platform, true
		}
	}
	return "", "", "", false
}

// ParseLockfile reads the specs of the GEM sections of a Gemfile.lock.
func ParseLockfile(b []byte) []report.Package {
	type entry struct {
		name, version, platform string
		mixed                   bool
	}
	var (
		entries []entry
		index   = map[[2]string]int{}
		inGem   bool
		inSpecs bool
	)
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimRight(line, "\r \t")
		if len(line) == 0 {
			continue
		}
		if line[0] != ' ' {
			inGem, inSpecs = string(line) == "GEM", false
			continue
		}
		if !inGem {
			continue
		}
		indent := len(line) - len(bytes.TrimLeft(line, " "))
		switch indent {
		case 2:
			inSpecs = string(line[2:]) == "specs:"
			continue
		case 4:
		default:
			continue
		}
		if !inSpecs {
			continue
		}
		name, version, platform, ok := specLine(line[4:])
		if !ok {
			continue
		}
		key := [2]string{name, version}
		if i, seen := index[key]; seen {
			if entries[i].platform != platform {
				entries[i].mixed = true
			}
			continue
		}
		index[key] = len(entries)
		entries = append(entries, entry{name: name, version: version, platform: platform})
	}
	var pkgs []report.Package
	for _, e := range entries {
		platform := e.platform
		if e.mixed {
			platform = ""
		}
		if p, ok := newPackage(e.name, e.version, platform); ok {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs
}

// specLine parses "name (version[-platform])".
func specLine(s []byte) (name, version, platform string, ok bool) {
	sp := bytes.IndexByte(s, ' ')
	if sp <= 0 || len(s) < sp+3 || s[sp+1] != '(' || s[len(s)-1] != ')' {
		return "", "", "", false
	}
	name = string(s[:sp])
	v := s[sp+2 : len(s)-1]
	if i := bytes.IndexByte(v, '-'); i >= 0 {
		platform = string(v[i+1:])
		v = v[:i]
	}
	version = string(v)
	if !validName(name) || !validVersion(version) || platform != "" && !validName(platform) {
		return "", "", "", false
	}
	return name, version, platform, true
}
