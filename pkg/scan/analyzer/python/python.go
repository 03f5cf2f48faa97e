// Package python finds Python packages: installed distributions and the
// pins of lockfiles.
//
// Installed distributions (core metadata, RFC 822-style headers; only the
// header block before the first blank line is read, the body can be the
// whole README):
//
//	…/<name>-<version>.dist-info/METADATA   wheels, pip
//	…/<name>-<version>.egg-info/PKG-INFO    setuptools, Debian's python3-*
//	…/<name>-<version>.egg-info             the same, as a single file
//	…/<name>-<version>.egg/EGG-INFO/PKG-INFO  zipped-then-unzipped eggs
//
// Lockfiles (what an application was built with):
//
//	poetry.lock           [[package]] name / version
//	Pipfile.lock          "default" and "develop": {"<name>": {"version": "==x"}}
//	uv.lock               [[package]] name / version from a registry
//	pdm.lock              [[package]] name / version from a registry
//	requirements*.txt     exact pins only: name==x, name[extra]==x ; markers,
//	                      and direct references whose URL names the version
//	                      (name @ git+https://…@v1.2.3, name @ …/name-1.2.3-py3-none-any.whl)
//
// Lockfiles inside site-packages/dist-packages (a library's own
// development files) and anything under usr/share/doc are ignored.
// Development dependencies get Scope "dev": Pipfile.lock's "develop"
// (unless also in "default"), poetry's category "dev" (lock 1.x) or groups
// without "main" (2.x), pdm's groups without "default", uv's packages
// reachable only from a project's dev-dependencies, and the pins of
// requirements files named for development (requirements-dev.txt,
// test-requirements.txt…).
//
// The interpreter's own description (CPython installs a "Python"
// egg-info in lib-dynload, as Debian's libpython3.x-stdlib does) is not
// a PyPI package and is skipped.
//
// Every package gets Ecosystem "PyPI" and purl pkg:pypi/<name>@<version>,
// the name normalized per PEP 503 (lowercase, runs of "-", "_", "."
// become "-"). Name keeps the spelling of the file ("PyYAML").
package python

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"slices"
	"strings"

	"github.com/package-url/packageurl-go"
	"github.com/pelletier/go-toml/v2"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// Ecosystem is the OSV ecosystem of every package.
const Ecosystem = "PyPI"

const (
	// maxField bounds names and versions: longer values are not real
	// package metadata.
	maxField = 256
	// maxHeader bounds how much of a METADATA/PKG-INFO file is read
	// when no blank line ends the headers.
	maxHeader = 1 << 20
)

// Analyzer is the Python analyzer.
type Analyzer struct{}

// New returns the Python analyzer.
func New() *Analyzer { return &Analyzer{} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "python" }

// Version implements analyzer.Analyzer.
func (*Analyzer) Version() int { return 3 }

var _ analyzer.MemoryUser = (*Analyzer)(nil)

// ParseCopies implements analyzer.MemoryUser: the TOML parser holds two
// copies of poetry.lock, the line parser one of a requirements file
// (measured: a 250 MiB file cost 500 and 250 MiB over the buffer).
func (*Analyzer) ParseCopies(path string) int {
	switch kind(path) {
	case kindPoetry, kindUV, kindPDM:
		return 2
	case kindRequirements:
		return 1
	}
	return 0
}

// File kinds.
const (
	kindNone = iota
	kindMetadata
	kindPoetry
	kindPipfile
	kindRequirements
	kindUV
	kindPDM
)

// Match implements analyzer.Analyzer.
func (*Analyzer) Match(path string, _ fs.FileMode, _ int64) bool {
	return kind(path) != kindNone
}

// kind classifies path without allocating.
func kind(path string) int {
	if strings.HasPrefix(path, "usr/share/doc/") || strings.Contains(path, "/usr/share/doc/") {
		return kindNone
	}
	base := path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		base = path[i+1:]
	}
	switch {
	case base == "METADATA":
		if strings.HasSuffix(path, ".dist-info/METADATA") {
			return kindMetadata
		}
		return kindNone
	case base == "PKG-INFO":
		if strings.HasSuffix(path, ".egg-info/PKG-INFO") || strings.HasSuffix(path, ".egg/EGG-INFO/PKG-INFO") {
			return kindMetadata
		}
		return kindNone
	case strings.HasSuffix(base, ".egg-info"):
		return kindMetadata
	}
	var k int
	switch {
	case base == "poetry.lock":
		k = kindPoetry
	case base == "Pipfile.lock":
		k = kindPipfile
	case base == "uv.lock":
		k = kindUV
	case base == "pdm.lock":
		k = kindPDM
	case strings.HasPrefix(base, "requirements") && strings.HasSuffix(base, ".txt"):
		k = kindRequirements
	default:
		return kindNone
	}
	if strings.Contains(path, "site-packages/") || strings.Contains(path, "dist-packages/") {
		return kindNone
	}
	return k
}

// Analyze implements analyzer.Analyzer.
func (*Analyzer) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	var pkgs []report.Package
	switch kind(f.Path) {
	case kindMetadata:
		if p, ok := ParseMetadata(f.Data); ok {
			pkgs = []report.Package{p}
		}
	case kindPoetry:
		pkgs = ParsePoetryLock(f.Data)
	case kindPipfile:
		pkgs = ParsePipfileLock(f.Data)
	case kindRequirements:
		pkgs = ParseRequirements(f.Data)
		if devRequirements(f.Path) {
			for i := range pkgs {
				pkgs[i].Scope = report.ScopeDev
			}
		}
	case kindUV:
		pkgs = ParseUVLock(f.Data)
	case kindPDM:
		pkgs = ParsePDMLock(f.Data)
	}
	if len(pkgs) == 0 {
		return nil, nil
	}
	return &analyzer.Result{Packages: pkgs}, nil
}

// NormalizeName returns the PEP 503 normalized form of a project name.
func NormalizeName(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	sep := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-' || c == '_' || c == '.':
			sep = true
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		b.WriteByte(c)
	}
	return b.String()
}

// validName accepts PEP 508 project names (letters, digits, "-", "_",
// ".", starting and ending with a letter or digit).
func validName(s string) bool {
	if s == "" || len(s) > maxField {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (c != '-' && c != '_' && c != '.' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// validVersion accepts the characters of PEP 440 versions (and of the
// legacy versions pip still installs): letters, digits, ".", "+", "!",
// "-", "_". Ranges, wildcards and URLs fail.
func validVersion(s string) bool {
	if s == "" || len(s) > maxField {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && c != '.' && c != '+' && c != '!' && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func newPackage(name, version string) (report.Package, bool) {
	if !validName(name) || !validVersion(version) {
		return report.Package{}, false
	}
	return report.Package{
		Name:      name,
		Version:   version,
		Ecosystem: Ecosystem,
		PURL:      packageurl.NewPackageURL(packageurl.TypePyPi, "", NormalizeName(name), version, nil, "").ToString(),
	}, true
}

// ParseMetadata reads Name and Version from core metadata headers
// (METADATA, PKG-INFO), stopping at the first blank line.
func ParseMetadata(b []byte) (report.Package, bool) {
	if len(b) > maxHeader {
		b = b[:maxHeader]
	}
	var name, version string
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a folded header
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch {
		case name == "" && bytes.EqualFold(bytes.TrimSpace(k), []byte("Name")):
			name = string(bytes.TrimSpace(v))
		case version == "" && bytes.EqualFold(bytes.TrimSpace(k), []byte("Version")):
			version = string(bytes.TrimSpace(v))
		}
		if name != "" && version != "" {
			break
		}
	}
	if NormalizeName(name) == "python" {
		// The interpreter describing itself (Python-3.11.2.egg-info in
		// lib-dynload): not a PyPI package (PyPI has no project "python").
		return report.Package{}, false
	}
	return newPackage(name, version)
}

// collector gathers packages once per normalized name and version: a
// development dependency unless one of its entries is not.
type collector struct {
	seen map[[2]string]int // index in pkgs
	pkgs []report.Package
}

func (c *collector) add(name, version string) { c.addScoped(name, version, false) }

func (c *collector) addScoped(name, version string, dev bool) {
	p, ok := newPackage(name, version)
	if !ok {
		return
	}
	key := [2]string{NormalizeName(name), version}
	if i, ok := c.seen[key]; ok {
		if !dev {
			c.pkgs[i].Scope = ""
		}
		return
	}
	if c.seen == nil {
		c.seen = map[[2]string]int{}
	}
	if dev {
		p.Scope = report.ScopeDev
	}
	c.seen[key] = len(c.pkgs)
	c.pkgs = append(c.pkgs, p)
}

// devRequirements reports whether a requirements file is named for
// development: a word dev, test, lint, docs… in its name
// (requirements-dev.txt, test-requirements.txt).
func devRequirements(path string) bool {
	base := path[strings.LastIndexByte(path, '/')+1:]
	stem := strings.TrimSuffix(base, ".txt")
	for _, w := range strings.FieldsFunc(strings.ToLower(stem), func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
		switch w {
		case "dev", "devel", "develop", "development", "test", "tests", "testing", "lint", "docs", "ci", "typing":
			return true
		}
	}
	return false
}

// ParsePoetryLock reads the [[package]] tables of a poetry.lock. A file
// that is not valid TOML is read line by line instead.
//
// Development dependencies: category "dev" (lock-version 1.x) or groups
// without "main" (Poetry 2's lock-version 2.1).
func ParsePoetryLock(b []byte) []report.Package {
	var lock struct {
		Package []struct {
			Name     string   `toml:"name"`
			Version  string   `toml:"version"`
			Category string   `toml:"category"`
			Groups   []string `toml:"groups"`
		} `toml:"package"`
	}
	var c collector
	if err := toml.Unmarshal(b, &lock); err == nil {
		for _, p := range lock.Package {
			dev := p.Category == "dev" || len(p.Groups) > 0 && !slices.Contains(p.Groups, "main")
			c.addScoped(p.Name, p.Version, dev)
		}
		return c.pkgs
	}
	return parsePoetryLines(b)
}

// parsePoetryLines is the lenient fallback: name = "…" and version = "…"
// lines directly inside a [[package]] table.
func parsePoetryLines(b []byte) []report.Package {
	var (
		c             collector
		in            bool
		name, version string
	)
	flush := func() {
		if in && name != "" && version != "" {
			c.add(name, version)
		}
		name, version = "", ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			flush()
			in = line == "[[package]]"
			continue
		}
		if !in {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			continue
		}
		v = v[1 : len(v)-1]
		switch strings.TrimSpace(k) {
		case "name":
			name = v
		case "version":
			version = v
		}
	}
	flush()
	return c.pkgs
}

// ParsePipfileLock reads the "default" and "develop" sections of a
// Pipfile.lock. Entries without an exact "==" version (VCS, paths) are
// skipped.
func ParsePipfileLock(b []byte) []report.Package {
	type entry struct {
		Version string `json:"version"`
	}
	var lock struct {
		Default map[string]entry `json:"default"`
		Develop map[string]entry `json:"develop"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return nil
	}
	var c collector
	for k, m := range []map[string]entry{lock.Default, lock.Develop} {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			v := strings.TrimSpace(m[n].Version)
			if !strings.HasPrefix(v, "==") {
				continue
			}
			v = strings.TrimPrefix(strings.TrimPrefix(v, "=="), "=")
			c.addScoped(n, strings.TrimSpace(v), k == 1)
		}
	}
	return c.pkgs
}

// ParseRequirements reads the exact pins of a pip requirements file:
// "name==version", "name[extra]==version", "name === version", with
// environment markers after ";" and options such as --hash after the
// requirement ignored. Option lines (-r, -c, -e, --index-url …), URL and
// path requirements and ranges are skipped.
func ParseRequirements(b []byte) []report.Package {
	var c collector
	// Join "\"-continued lines first (pip does this before parsing).
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	text = strings.ReplaceAll(text, "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = stripComment(line)
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '-' {
			continue
		}
		if i := strings.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		// Per-requirement options: "pkg==1.0 --hash=sha256:…".
		if i := strings.Index(line, " -"); i >= 0 {
			line = line[:i]
		}
		if i := strings.Index(line, "\t-"); i >= 0 {
			line = line[:i]
		}
		if name, version, ok := parsePin(line); ok {
			c.add(name, version)
		} else if name, version, ok := parseDirectReference(line); ok {
			c.add(name, version)
		}
	}
	return c.pkgs
}

// parseDirectReference reads a PEP 508 direct reference whose URL names
// the version: "name @ git+https://host/repo.git@v1.2.3#egg=name" (a
// tag that is a version), "name @ https://…/name-1.2.3-py3-none-any.whl"
// or an sdist "…/name-1.2.3.tar.gz". A branch or commit says no version.
func parseDirectReference(s string) (name, version string, ok bool) {
	name, url, found := strings.Cut(s, " @ ")
	if !found {
		name, url, found = strings.Cut(s, "@")
	}
	name, url = strings.TrimSpace(name), strings.TrimSpace(url)
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = strings.TrimSpace(name[:i])
	}
	if !found || !validName(name) || !strings.Contains(url, "://") {
		return "", "", false
	}
	url, _, _ = strings.Cut(url, "#")
	url, _, _ = strings.Cut(url, "?")
	var v string
	switch {
	case strings.HasPrefix(url, "git+") || strings.HasPrefix(url, "hg+"):
		rest := url[strings.Index(url, "://")+3:]
		if i := strings.LastIndexByte(rest, '@'); i >= 0 && strings.IndexByte(rest[i:], '/') < 0 {
			v = strings.TrimPrefix(strings.TrimPrefix(rest[i+1:], "v"), "V")
		}
	default:
		file := url[strings.LastIndexByte(url, '/')+1:]
		stem, ok := strings.CutSuffix(file, ".whl")
		if !ok {
			for _, ext := range []string{".tar.gz", ".zip", ".tar.bz2"} {
				if stem, ok = strings.CutSuffix(file, ext); ok {
					break
				}
			}
		}
		if !ok {
			return "", "", false
		}
		// name-version[-build]-python-abi-platform.whl; name-version.tar.gz
		dist, rest, _ := strings.Cut(stem, "-")
		if NormalizeName(dist) != NormalizeName(name) {
			return "", "", false
		}
		v, _, _ = strings.Cut(rest, "-")
	}
	if v == "" || v[0] < '0' || v[0] > '9' || !validVersion(v) {
		return "", "", false
	}
	return name, v, true
}

// ParseUVLock reads uv.lock: [[package]] entries from a registry (the
// project itself — editable, virtual — and git, path and URL sources are
// skipped). A package is a development dependency when it is reachable
// from a local project's dev-dependencies (any group) and not from its
// dependencies or optional dependencies.
func ParseUVLock(b []byte) []report.Package {
	type dep struct {
		Name    string `toml:"name"`
		Version string `toml:"version"`
	}
	var lock struct {
		Package []struct {
			Name                 string           `toml:"name"`
			Version              string           `toml:"version"`
			Source               map[string]any   `toml:"source"`
			Dependencies         []dep            `toml:"dependencies"`
			OptionalDependencies map[string][]dep `toml:"optional-dependencies"`
			DevDependencies      map[string][]dep `toml:"dev-dependencies"`
		} `toml:"package"`
	}
	if err := toml.Unmarshal(b, &lock); err != nil {
		return nil
	}
	// Packages by normalized name (a name may be locked at several
	// versions, for different markers).
	byName := map[string][]int{}
	for i, p := range lock.Package {
		n := NormalizeName(p.Name)
		byName[n] = append(byName[n], i)
	}
	local := func(i int) bool {
		src := lock.Package[i].Source
		for _, k := range []string{"editable", "virtual", "directory", "path"} {
			if _, ok := src[k]; ok {
				return true
			}
		}
		return false
	}
	reach := func(dev bool) map[int]bool {
		seen := map[int]bool{}
		var stack []dep
		for i, p := range lock.Package {
			if !local(i) {
				continue
			}
			if dev {
				for _, g := range p.DevDependencies {
					stack = append(stack, g...)
				}
				continue
			}
			stack = append(stack, p.Dependencies...)
			for _, g := range p.OptionalDependencies {
				stack = append(stack, g...)
			}
		}
		for len(stack) > 0 {
			d := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, i := range byName[NormalizeName(d.Name)] {
				p := lock.Package[i]
				if seen[i] || d.Version != "" && d.Version != p.Version {
					continue
				}
				seen[i] = true
				stack = append(stack, p.Dependencies...)
				for _, g := range p.OptionalDependencies {
					stack = append(stack, g...)
				}
			}
		}
		return seen
	}
	prod, dev := reach(false), reach(true)
	var c collector
	for i, p := range lock.Package {
		if _, ok := p.Source["registry"]; !ok {
			continue
		}
		c.addScoped(p.Name, p.Version, dev[i] && !prod[i])
	}
	return c.pkgs
}

// ParsePDMLock reads pdm.lock: [[package]] entries, except those from
// git, a path or a URL. A package whose groups (lock_version 4.4 and
// later) do not include "default" is a development dependency.
func ParsePDMLock(b []byte) []report.Package {
	var lock struct {
		Package []struct {
			Name     string   `toml:"name"`
			Version  string   `toml:"version"`
			Groups   []string `toml:"groups"`
			Git      string   `toml:"git"`
			Path     string   `toml:"path"`
			URL      string   `toml:"url"`
			Editable bool     `toml:"editable"`
		} `toml:"package"`
	}
	if err := toml.Unmarshal(b, &lock); err != nil {
		return nil
	}
	var c collector
	for _, p := range lock.Package {
		if p.Git != "" || p.Path != "" || p.URL != "" || p.Editable {
			continue
		}
		c.addScoped(p.Name, p.Version, len(p.Groups) > 0 && !slices.Contains(p.Groups, "default"))
	}
	return c.pkgs
}

// stripComment cuts line at a "#" that starts it or follows whitespace.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

// parsePin splits "name[extras] == version" (optionally followed by
// "@ url", the pinned version's source).
func parsePin(s string) (name, version string, ok bool) {
	i := strings.Index(s, "==")
	if i <= 0 {
		return "", "", false
	}
	name, version = strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+2:])
	version = strings.TrimSpace(strings.TrimPrefix(version, "=")) // "==="
	if v, ref, ok := strings.Cut(version, " @ "); ok && strings.Contains(ref, "://") {
		version = strings.TrimSpace(v) // "name == 1.2.3 @ git+https://…": the pin says it
	}
	if j := strings.IndexByte(name, '['); j >= 0 {
		if !strings.HasSuffix(name, "]") {
			return "", "", false
		}
		name = strings.TrimSpace(name[:j])
	}
	if !validName(name) || !validVersion(version) {
		return "", "", false
	}
	return name, version, true
}
