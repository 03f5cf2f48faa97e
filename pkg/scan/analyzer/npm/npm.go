// Package npm finds JavaScript packages: installed ones from the
// package.json of every package directory under node_modules, and locked
// ones from an application's lockfiles.
//
//	…/node_modules/<name>/package.json          one installed package
//	…/node_modules/@<scope>/<name>/package.json one installed package
//	usr/share/nodejs/<name>/package.json        one installed package (Debian's
//	                                            node-* packages; also usr/lib/nodejs
//	                                            and usr/lib/<triplet>/nodejs)
//	package-lock.json, npm-shrinkwrap.json      v1 "dependencies" tree, v2/v3 "packages" map
//	yarn.lock                                   classic (v1) and berry (v2+)
//	pnpm-lock.yaml                              v5, v6 and v9 "packages" keys, and the
//	                                            importers' (or v5's top-level) dependencies
//	bun.lock                                    bun's text lockfile (JSON with trailing commas)
//
// Lockfiles inside node_modules (libraries' own lockfiles, npm's hidden
// node_modules/.package-lock.json) are ignored: they do not describe what
// is installed. So are lockfiles inside another ecosystem's installed
// libraries, where they are that library's development files too (the
// VS Code extension under Ruby's bundled typeprof gem locks ~160 dev
// tools): anywhere below an installed gem (…/gems/<gem>/…, the rule the
// gem analyzer applies to Gemfile.lock), below Python's site-packages or
// dist-packages, and under usr/share/doc. An application directory with
// both a lockfile and a node_modules tree reports each package twice,
// with different Paths.
// Local (file:, link:, workspace:) and non-registry (git, tarball URL)
// dependencies without a usable version are skipped. Development
// dependencies are reported with Scope "dev" where the lockfile tells:
// package-lock's "dev" flags, pnpm's "dev" flags (v5, v6) or, for pnpm v9
// and bun, packages reachable only from devDependencies; yarn.lock does
// not say.
//
// Ecosystem "npm", purl pkg:npm/%40scope/name@version.
package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/package-url/packageurl-go"
	"github.com/tailscale/hujson"
	"go.yaml.in/yaml/v3"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

const (
	// Ecosystem is the OSV ecosystem name.
	Ecosystem = "npm"

	maxPackageJSON = 4 << 20
	maxLockfile    = 64 << 20
	// pnpm-lock.yaml is decoded into a YAML tree, which costs far more
	// memory per byte than JSON: keep the cap lower.
	maxPnpmLock = 32 << 20

	maxNameLen    = 214 // npm's own limit
	maxVersionLen = 256
)

// Analyzer is the npm analyzer.
type Analyzer struct{}

// New returns the npm analyzer.
func New() *Analyzer { return &Analyzer{} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "npm" }

// Version implements analyzer.Analyzer.
func (*Analyzer) Version() int { return 3 }

type kind int

const (
	kindNone kind = iota
	kindPackageJSON
	kindPackageLock
	kindYarnLock
	kindPnpmLock
	kindBunLock
)

// classify returns what the file at path is, without allocating.
func classify(path string) kind {
	base := path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		base = path[i+1:]
	}
	switch base {
	case "package.json":
		if isInstalledPackageJSON(path) {
			return kindPackageJSON
		}
		return kindNone
	case "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock":
	default:
		return kindNone
	}
	if strings.HasPrefix(path, "node_modules/") || strings.Contains(path, "/node_modules/") || inLibrary(path) {
		return kindNone
	}
	switch base {
	case "yarn.lock":
		return kindYarnLock
	case "pnpm-lock.yaml":
		return kindPnpmLock
	case "bun.lock":
		return kindBunLock
	default:
		return kindPackageLock
	}
}

// inLibrary reports whether path lies inside the installed files of a
// library of another ecosystem (or in documentation), where a lockfile
// is the library's own development file: …/gems/<gem>/…,
// …site-packages/…, …dist-packages/…, usr/share/doc/….
func inLibrary(path string) bool {
	if strings.HasPrefix(path, "usr/share/doc/") || strings.Contains(path, "/usr/share/doc/") ||
		strings.Contains(path, "site-packages/") || strings.Contains(path, "dist-packages/") {
		return true
	}
	rest := ""
	if strings.HasPrefix(path, "gems/") {
		rest = path[len("gems/"):]
	} else if i := strings.Index(path, "/gems/"); i >= 0 {
		rest = path[i+len("/gems/"):]
	}
	return strings.IndexByte(rest, '/') >= 0
}

// isInstalledPackageJSON reports whether path is
// …node_modules/<name>/package.json or …node_modules/@scope/<name>/package.json,
// or the same below one of Debian's global module directories.
func isInstalledPackageJSON(path string) bool {
	dir, ok := strings.CutSuffix(path, "/package.json")
	if !ok {
		return false
	}
	i := strings.LastIndexByte(dir, '/')
	if i < 0 {
		return false
	}
	name, parent := dir[i+1:], dir[:i]
	if name == "" || name[0] == '@' || name[0] == '.' {
		return false
	}
	if isNodeModules(parent) {
		return true
	}
	j := strings.LastIndexByte(parent, '/')
	if j < 0 {
		return false
	}
	scope := parent[j+1:]
	if len(scope) < 2 || scope[0] != '@' {
		return false
	}
	return isNodeModules(parent[:j])
}

// isNodeModules reports whether packages are installed directly in dir:
// a node_modules directory, or a global module directory of Debian's
// nodejs, where its node-* packages install (usr/share/nodejs,
// usr/lib/nodejs, usr/lib/<triplet>/nodejs).
func isNodeModules(dir string) bool {
	if dir == "node_modules" || strings.HasSuffix(dir, "/node_modules") {
		return true
	}
	switch dir {
	case "usr/share/nodejs", "usr/lib/nodejs":
		return true
	}
	if rest, ok := strings.CutPrefix(dir, "usr/lib/"); ok {
		triplet, ok := strings.CutSuffix(rest, "/nodejs")
		return ok && triplet != "" && strings.IndexByte(triplet, '/') < 0
	}
	return false
}

// Match implements analyzer.Analyzer.
func (*Analyzer) Match(path string, _ fs.FileMode, size int64) bool {
	switch classify(path) {
	case kindPackageJSON:
		return size <= maxPackageJSON
	case kindPackageLock, kindYarnLock, kindBunLock:
		return size <= maxLockfile
	case kindPnpmLock:
		return size <= maxPnpmLock
	}
	return false
}

// Analyze implements analyzer.Analyzer.
func (*Analyzer) Analyze(ctx context.Context, f *analyzer.File) (*analyzer.Result, error) {
	var pkgs []report.Package
	switch classify(f.Path) {
	case kindPackageJSON:
		if p, ok := ParsePackageJSON(f.Data); ok {
			pkgs = []report.Package{p}
		}
	case kindPackageLock:
		pkgs = ParsePackageLock(f.Data)
	case kindYarnLock:
		pkgs = ParseYarnLock(f.Data)
	case kindPnpmLock:
		pkgs = ParsePnpmLock(f.Data)
	case kindBunLock:
		pkgs = ParseBunLock(f.Data)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(pkgs) == 0 {
		return nil, nil
	}
	return &analyzer.Result{Packages: pkgs}, nil
}

// newPackage returns the package name@version, or false when either is
// unusable.
func newPackage(name, version string) (report.Package, bool) {
	if !validName(name) || !validVersion(version) {
		return report.Package{}, false
	}
	ns, n := "", name
	if name[0] == '@' {
		i := strings.IndexByte(name, '/')
		ns, n = name[:i], name[i+1:]
	}
	return report.Package{
		Name:      name,
		Version:   version,
		Ecosystem: Ecosystem,
		PURL:      packageurl.NewPackageURL(packageurl.TypeNPM, ns, n, version, nil, "").ToString(),
	}, true
}

// validName accepts "name" and "@scope/name" without spaces or control
// characters.
func validName(s string) bool {
	if s == "" || len(s) > maxNameLen || !clean(s) {
		return false
	}
	if s[0] == '@' {
		i := strings.IndexByte(s, '/')
		return i > 1 && i < len(s)-1 && strings.IndexByte(s[i+1:], '/') < 0
	}
	return strings.IndexByte(s, '/') < 0
}

// validVersion rejects empty, oversized and non-registry versions (URLs,
// file: and git references).
func validVersion(s string) bool {
	return s != "" && len(s) <= maxVersionLen && clean(s) && strings.IndexByte(s, ':') < 0 && strings.IndexByte(s, '/') < 0
}

func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// partial reports whether a JSON decoding error still left usable
// values (a field of the wrong type is skipped, the rest decoded).
func partial(err error) bool {
	var te *json.UnmarshalTypeError
	return err == nil || errors.As(err, &te)
}

// ParsePackageJSON reads the name and version of an installed package.
func ParsePackageJSON(b []byte) (report.Package, bool) {
	var m struct {
		Name    any `json:"name"`
		Version any `json:"version"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return report.Package{}, false
	}
	name, _ := m.Name.(string)
	version, _ := m.Version.(string)
	return newPackage(strings.TrimSpace(name), strings.TrimSpace(version))
}

// dedup collects packages once per name@version: a development
// dependency unless one of its entries is not.
type dedup struct {
	seen map[[2]string]int // index in pkgs
	pkgs []report.Package
}

func (d *dedup) add(name, version string) { d.addScoped(name, version, false) }

func (d *dedup) addScoped(name, version string, dev bool) {
	k := [2]string{name, version}
	if i, ok := d.seen[k]; ok {
		if !dev {
			d.pkgs[i].Scope = ""
		}
		return
	}
	p, ok := newPackage(name, version)
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

type lockV1Dep struct {
	Version      string                `json:"version"`
	Dev          bool                  `json:"dev"`
	Dependencies map[string]*lockV1Dep `json:"dependencies"`
}

type lockPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Link    bool   `json:"link"`
	// Dev: only needed by devDependencies ("devOptional" packages are
	// needed by an optional runtime dependency too: not dev).
	Dev bool `json:"dev"`
}

// ParsePackageLock reads package-lock.json and npm-shrinkwrap.json: the
// "packages" map (lockfileVersion 2 and 3) when present, else the v1
// "dependencies" tree.
func ParsePackageLock(b []byte) []report.Package {
	var lock struct {
		Packages     map[string]*lockPackage `json:"packages"`
		Dependencies map[string]*lockV1Dep   `json:"dependencies"`
	}
	if err := json.Unmarshal(b, &lock); !partial(err) {
		return nil
	}
	var d dedup
	if len(lock.Packages) > 0 {
		for key, p := range lock.Packages {
			// "" is the root project; keys without node_modules/ are
			// workspace members (the application's own code).
			i := strings.LastIndex(key, "node_modules/")
			if p == nil || p.Link || i < 0 {
				continue
			}
			name := p.Name // set for aliases ("npm:real@1.0.0")
			if name == "" {
				name = key[i+len("node_modules/"):]
			}
			d.addScoped(name, p.Version, p.Dev)
		}
		return d.pkgs
	}
	// v1: explicit stack, the tree may be deep.
	type item struct {
		name string
		dep  *lockV1Dep
	}
	var stack []item
	push := func(m map[string]*lockV1Dep) {
		for name, dep := range m {
			if dep != nil {
				stack = append(stack, item{name, dep})
			}
		}
	}
	push(lock.Dependencies)
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		name, version := it.name, it.dep.Version
		if alias, ok := strings.CutPrefix(version, "npm:"); ok {
			// "string-width-cjs": {"version": "npm:string-width@4.2.3"}
			name, version = splitNameVersion(alias)
		}
		d.addScoped(name, version, it.dep.Dev)
		push(it.dep.Dependencies)
	}
	return d.pkgs
}

// splitNameVersion splits "name@version" and "@scope/name@version".
func splitNameVersion(s string) (name, version string) {
	if len(s) < 2 {
		return "", ""
	}
	i := strings.IndexByte(s[1:], '@')
	if i < 0 {
		return s, ""
	}
	return s[:i+1], s[i+2:]
}

// ParseYarnLock reads yarn.lock, classic (v1) or berry (v2+, recognized by
// its __metadata entry).
//
// Classic entries look like
//
//	"@babel/code-frame@^7.0.0", "@babel/code-frame@^7.10.4":
//	  version "7.12.13"
//
// berry ones like
//
//	"@babel/code-frame@npm:^7.0.0, @babel/code-frame@npm:^7.10.4":
//	  version: 7.12.13
//	  resolution: "@babel/code-frame@npm:7.12.13"
//
// For berry only npm-resolved entries (resolution "name@npm:version") are
// kept: workspaces, patches, git and file dependencies are skipped.
func ParseYarnLock(b []byte) []report.Package {
	berry := bytes.HasPrefix(b, []byte("__metadata:")) || bytes.Contains(b, []byte("\n__metadata:"))
	var (
		d                        dedup
		key, version, resolution string
		inEntry                  bool
	)
	flush := func() {
		if inEntry {
			if berry {
				if i := strings.Index(resolution, "@npm:"); i > 0 {
					d.add(resolution[:i], resolution[i+len("@npm:"):])
				}
			} else if name, ok := yarnClassicName(key); ok {
				d.add(name, version)
			}
		}
		key, version, resolution, inEntry = "", "", "", false
	}
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			flush()
			if k, ok := bytes.CutSuffix(bytes.TrimSpace(line), []byte(":")); ok {
				key, inEntry = string(k), true
			}
			continue
		}
		// Only the entry's own fields (two-space indent), not those of
		// its nested dependencies map.
		if !inEntry || len(line) < 3 || line[0] != ' ' || line[1] != ' ' || line[2] == ' ' {
			continue
		}
		field := line[2:]
		if v, ok := yarnField(field, "version"); ok {
			version = v
		} else if v, ok := yarnField(field, "resolution"); ok {
			resolution = v
		}
	}
	flush()
	return d.pkgs
}

// yarnField returns the value of `name "value"` (classic) or
// `name: value` (berry).
func yarnField(line []byte, name string) (string, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(name))
	if !ok || len(rest) == 0 || (rest[0] != ' ' && rest[0] != ':') {
		return "", false
	}
	rest = bytes.TrimPrefix(rest, []byte(":"))
	return unquote(string(bytes.TrimSpace(rest))), true
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// yarnClassicName returns the package name of a classic entry key
// (`"@babel/core@^7.0.0", "@babel/core@^7.1.0"` or `lodash@^4.17.21`).
func yarnClassicName(key string) (string, bool) {
	spec, _, _ := strings.Cut(key, ",")
	spec = unquote(strings.TrimSpace(spec))
	name, rng := splitNameVersion(spec)
	if real, ok := strings.CutPrefix(rng, "npm:"); ok {
		// alias: "string-width-cjs@npm:string-width@^4.2.0"
		if n, _ := splitNameVersion(real); n != "" {
			name = n
		} else {
			name = real
		}
		return name, true
	}
	for _, p := range []string{"file:", "link:", "portal:", "workspace:", "patch:", "exec:"} {
		if strings.HasPrefix(rng, p) {
			return "", false
		}
	}
	return name, name != ""
}

type pnpmPackage struct {
	Name                 string            `yaml:"name"`
	Version              string            `yaml:"version"`
	Dev                  *bool             `yaml:"dev"`
	Dependencies         map[string]string `yaml:"dependencies"`
	OptionalDependencies map[string]string `yaml:"optionalDependencies"`
}

// pnpmDeps are an importer's dependencies: name → version (v5) or
// name → {specifier, version} (v6, v9).
type pnpmDeps map[string]string

func (d *pnpmDeps) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	*d = pnpmDeps{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch v.Kind {
		case yaml.ScalarNode:
			(*d)[k.Value] = v.Value
		case yaml.MappingNode:
			for j := 0; j+1 < len(v.Content); j += 2 {
				if v.Content[j].Value == "version" {
					(*d)[k.Value] = v.Content[j+1].Value
				}
			}
		}
	}
	return nil
}

type pnpmImporter struct {
	Dependencies         pnpmDeps `yaml:"dependencies"`
	DevDependencies      pnpmDeps `yaml:"devDependencies"`
	OptionalDependencies pnpmDeps `yaml:"optionalDependencies"`
}

// ParsePnpmLock reads pnpm-lock.yaml: the "packages" map, whose keys are
// "/name/version[_peers]" (v5), "/name@version[(peers)]" (v6) or
// "name@version" (v9) — entries for non-registry dependencies carry
// explicit name and version fields, which win — and the dependencies of
// the importers (workspace projects; v5 and v6 single projects list them
// at the top level), which some lockfiles hold alone.
//
// Development dependencies: v5 and v6 mark packages "dev: true"; for v9
// (and where the flag is missing) a package is dev when it is reachable
// from importers' devDependencies and not from their dependencies or
// optionalDependencies (through "snapshots" in v9, "packages" before).
func ParsePnpmLock(b []byte) []report.Package {
	var lock struct {
		LockfileVersion any                      `yaml:"lockfileVersion"`
		Importers       map[string]*pnpmImporter `yaml:"importers"`
		pnpmImporter    `yaml:",inline"`
		Packages        map[string]*pnpmPackage `yaml:"packages"`
		Snapshots       map[string]*pnpmPackage `yaml:"snapshots"`
	}
	if err := yaml.Unmarshal(b, &lock); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil
		}
	}
	v5 := strings.HasPrefix(strings.Trim(fmt.Sprint(lock.LockfileVersion), "'\""), "5")
	// keyOf is the "packages" (v5, v6) or "snapshots" (v9) key of a
	// dependency as an importer or a package lists it.
	keyOf := func(name, version string) string {
		switch {
		case strings.HasPrefix(version, "/"):
			return version // v5/v6 alias: the full key
		case version != "" && (version[0] < '0' || version[0] > '9') && strings.Contains(version[1:], "@"):
			return version // v9 alias: "real@1.2.3"
		case lock.Snapshots != nil:
			return name + "@" + version
		case v5:
			return "/" + name + "/" + version
		}
		return "/" + name + "@" + version
	}
	graph := lock.Packages
	if lock.Snapshots != nil {
		graph = lock.Snapshots
	}
	importers := lock.Importers
	if len(importers) == 0 {
		importers = map[string]*pnpmImporter{".": &lock.pnpmImporter}
	}
	reach := func(dev bool) map[string]bool {
		seen := map[string]bool{}
		var roots []string
		for _, imp := range importers {
			if imp == nil {
				continue
			}
			ms := []pnpmDeps{imp.Dependencies, imp.OptionalDependencies}
			if dev {
				ms = []pnpmDeps{imp.DevDependencies}
			}
			for _, m := range ms {
				for name, v := range m {
					roots = append(roots, keyOf(name, v))
				}
			}
		}
		walkReachable(seen, roots, func(k string, push func(string)) {
			if p := graph[k]; p != nil {
				for _, m := range []map[string]string{p.Dependencies, p.OptionalDependencies} {
					for name, v := range m {
						push(keyOf(name, v))
					}
				}
			}
		})
		// v9 "packages" keys have no peer suffix; snapshot keys do.
		out := map[string]bool{}
		for k := range seen {
			out[k] = true
			if i := strings.IndexByte(k[1:], '('); i >= 0 {
				out[k[:i+1]] = true
			}
		}
		return out
	}
	prod, dev := reach(false), reach(true)
	isDev := func(key string, flag *bool) bool {
		if flag != nil {
			return *flag
		}
		return dev[key] && !prod[key]
	}
	var d dedup
	keys := make([]string, 0, len(lock.Packages))
	for k := range lock.Packages {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		p := lock.Packages[key]
		if p != nil && p.Name != "" && p.Version != "" {
			d.addScoped(p.Name, p.Version, isDev(key, p.Dev))
			continue
		}
		if name, version, ok := pnpmKey(key); ok {
			var flag *bool
			if p != nil {
				flag = p.Dev
			}
			d.addScoped(name, version, isDev(key, flag))
		}
	}
	// Dependencies only the importers name.
	for _, imp := range importers {
		if imp == nil {
			continue
		}
		for _, m := range []pnpmDeps{imp.Dependencies, imp.OptionalDependencies, imp.DevDependencies} {
			for name, v := range m {
				key := keyOf(name, v)
				if n, version, ok := pnpmKey(key); ok {
					d.addScoped(n, version, dev[key] && !prod[key])
				}
			}
		}
	}
	return d.pkgs
}

// pnpmKey parses a pnpm package key into name and version.
func pnpmKey(key string) (name, version string, ok bool) {
	s := strings.TrimPrefix(key, "/")
	if s == "" {
		return "", "", false
	}
	// The name ends at the first '/' (v5) or '@' (v6, v9) after the
	// scope.
	start := 0
	if s[0] == '@' {
		i := strings.IndexByte(s, '/')
		if i < 0 {
			return "", "", false
		}
		start = i + 1
	}
	i := strings.IndexAny(s[start:], "/@")
	if i <= 0 {
		return "", "", false
	}
	i += start
	name, version = s[:i], s[i+1:]
	if s[i] == '/' {
		version, _, _ = strings.Cut(version, "_") // v5 peer suffix
	} else {
		version, _, _ = strings.Cut(version, "(") // v6/v9 peer suffix
	}
	// Registry versions are semver: reject what parsed out of a URL or
	// a path ("github.com/user/repo/sha", "file:…").
	if version == "" || version[0] < '0' || version[0] > '9' {
		return "", "", false
	}
	return name, version, true
}

// bunWorkspace is one workspace of a bun.lock ("" is the root project).
type bunWorkspace struct {
	Dependencies         map[string]string `json:"dependencies"`
	DevDependencies      map[string]string `json:"devDependencies"`
	OptionalDependencies map[string]string `json:"optionalDependencies"`
	PeerDependencies     map[string]string `json:"peerDependencies"`
}

// bunInfo is the metadata element of a bun.lock package entry.
type bunInfo struct {
	Dependencies         map[string]string `json:"dependencies"`
	OptionalDependencies map[string]string `json:"optionalDependencies"`
	PeerDependencies     map[string]string `json:"peerDependencies"`
}

// ParseBunLock reads bun's text lockfile (bun.lock, bun 1.1.39 and
// later; JSON with trailing commas). Each entry of "packages" is
// [ident, …] with ident "name@version" for registry packages
// ("@types/react@18.3.3"; aliases name the real package); workspace,
// git, GitHub, tarball and file entries carry no registry version and
// are skipped. Keys nest like node_modules ("debug/ms" is the ms debug
// gets, "ms" the hoisted one), which is how dependencies are resolved to
// tell development dependencies: reachable from a workspace's
// devDependencies and not from its dependencies, optional or peer
// dependencies. The binary bun.lockb is not read.
func ParseBunLock(b []byte) []report.Package {
	std, err := hujson.Standardize(slices.Clone(b)) // it rewrites in place
	if err != nil {
		return nil
	}
	var lock struct {
		Workspaces map[string]*bunWorkspace     `json:"workspaces"`
		Packages   map[string][]json.RawMessage `json:"packages"`
	}
	if err := json.Unmarshal(std, &lock); !partial(err) {
		return nil
	}
	type entry struct {
		name, version string
		info          bunInfo
	}
	entries := make(map[string]*entry, len(lock.Packages))
	for key, raw := range lock.Packages {
		if len(raw) == 0 {
			continue
		}
		var ident string
		if json.Unmarshal(raw[0], &ident) != nil {
			continue
		}
		e := &entry{}
		e.name, e.version = splitNameVersion(ident)
		for _, r := range raw[1:] {
			if len(r) > 0 && r[0] == '{' {
				_ = json.Unmarshal(r, &e.info)
				break
			}
		}
		entries[key] = e
	}
	// resolve finds the entry a package at key (or a workspace, key "")
	// gets for dependency name: the most nested one, as node does.
	resolve := func(key, name string) string {
		for k := key; ; {
			if _, ok := entries[k+"/"+name]; ok && k != "" {
				return k + "/" + name
			}
			i := strings.LastIndexByte(k, '/')
			if i < 0 {
				break
			}
			k = k[:i]
		}
		return name
	}
	reach := func(dev bool) map[string]bool {
		seen := map[string]bool{}
		var roots []string
		for path, w := range lock.Workspaces {
			if w == nil {
				continue
			}
			ms := []map[string]string{w.Dependencies, w.OptionalDependencies, w.PeerDependencies}
			if dev {
				ms = []map[string]string{w.DevDependencies}
			}
			for _, m := range ms {
				for name := range m {
					roots = append(roots, resolve(path, name))
				}
			}
		}
		walkReachable(seen, roots, func(k string, push func(string)) {
			if e := entries[k]; e != nil {
				for _, m := range []map[string]string{e.info.Dependencies, e.info.OptionalDependencies, e.info.PeerDependencies} {
					for name := range m {
						push(resolve(k, name))
					}
				}
			}
		})
		return seen
	}
	prod, dev := reach(false), reach(true)
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var d dedup
	for _, k := range keys {
		e := entries[k]
		d.addScoped(e.name, e.version, dev[k] && !prod[k])
	}
	return d.pkgs
}

// walkReachable marks in seen every key reachable from roots, following
// next's edges; an explicit stack, as lockfile graphs may be deep.
func walkReachable(seen map[string]bool, roots []string, next func(k string, push func(string))) {
	stack := roots
	push := func(k string) { stack = append(stack, k) }
	for len(stack) > 0 {
		k := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[k] {
			continue
		}
		seen[k] = true
		next(k, push)
	}
}
