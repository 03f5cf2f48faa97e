// Package java finds Maven artifacts in Java archives: *.jar, *.war,
// *.ear and Jenkins plugins (*.hpi, *.jpi).
//
// For every archive, each META-INF/maven/<group>/<artifact>/pom.properties
// is one package (a shaded or fat jar thus reports what it bundles). An
// archive without any pom.properties falls back to its
// META-INF/MANIFEST.MF main section, then to its file name
// ("artifact-1.2.3.jar"); an archive where neither yields a version
// reports nothing.
//
// Archives nested inside an archive (WEB-INF/lib/*.jar of a war,
// BOOT-INF/lib/*.jar of a Spring Boot jar, lib/*.jar and modules of an
// ear, ...: any entry with one of the extensions above) are opened in
// memory by pkg/archive's WalkZip, down to MaxDepth levels, within byte
// and count limits: an entry whose declared size does not fit is not
// read, and archive/zip stops one that holds more than it declares, so a
// zip bomb costs nothing. An archive that is not opened (a limit, or
// unreadable) is still reported from its file name. Packages of nested
// archives carry the path "outer.war!/WEB-INF/lib/x.jar".
//
// Every archive is reported, including the ones of a JDK or JRE (those
// rarely carry Maven metadata). Nothing is written to disk.
//
// Name is "group:artifact" (OSV's Maven naming), Ecosystem "Maven", purl
// pkg:maven/group/artifact@version. An archive known only by its
// manifest or file name gets its group from the manifest (vendor id, OSGi
// name, module name) or a table of well-known artifacts (groups.go); when
// none says, the group is empty: Name is then the bare artifact id, which
// OSV cannot match.
package java

import (
	"archive/zip"
	"context"
	"io/fs"
	"path"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/customs-scan/customs/pkg/archive"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// Ecosystem is the OSV ecosystem of every package reported here.
const Ecosystem = "Maven"

// Limits bound the work done for one top-level archive.
type Limits struct {
	// MaxDepth is how many levels of nested archives are opened (0: the
	// file itself only).
	MaxDepth int
	// MaxEntryBytes is the largest decompressed size of one entry read
	// (a nested archive, a manifest, a pom.properties).
	MaxEntryBytes int64
	// MaxTotalBytes bounds all bytes decompressed for one file.
	MaxTotalBytes int64
	// MaxArchives bounds how many nested archives are opened.
	MaxArchives int
	// MaxEntries bounds how many zip entries are looked at, over all
	// archives of one file.
	MaxEntries int
	// MaxMetaBytes is the largest pom.properties or MANIFEST.MF read.
	MaxMetaBytes int64
}

// DefaultLimits are the limits of New.
var DefaultLimits = Limits{
	MaxDepth:      3,
	MaxEntryBytes: 64 << 20,
	MaxTotalBytes: 256 << 20,
	MaxArchives:   4096,
	MaxEntries:    1 << 20,
	MaxMetaBytes:  1 << 20,
}

// Analyzer is the Java archive analyzer.
type Analyzer struct {
	lim Limits
}

// New returns the Java archive analyzer with DefaultLimits.
func New() *Analyzer { return &Analyzer{lim: DefaultLimits} }

// NewWithLimits returns the Java archive analyzer with the given limits.
func NewWithLimits(l Limits) *Analyzer { return &Analyzer{lim: l} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "java" }

// Version implements analyzer.Analyzer.
func (*Analyzer) Version() int { return 2 }

// minZip is the size of an empty zip (end of central directory record).
const minZip = 22

// Match implements analyzer.Analyzer: Java archive extensions, any case.
// There is no Sniffer: executable jars may start with a shell script,
// which archive/zip reads past.
func (*Analyzer) Match(p string, _ fs.FileMode, size int64) bool {
	return size >= minZip && isArchiveName(p)
}

// isArchiveName reports whether name ends in a Java archive extension
// (case-insensitive, allocation-free).
func isArchiveName(name string) bool {
	if len(name) < 5 || name[len(name)-4] != '.' {
		return false
	}
	ext := name[len(name)-3:]
	for _, e := range [...]string{"jar", "war", "ear", "hpi", "jpi"} {
		if strings.EqualFold(ext, e) {
			return true
		}
	}
	return false
}

// ReadsAt implements analyzer.ReaderAtUser: archives are walked through
// File.ReaderAt (a fat jar need not be held in memory).
func (*Analyzer) ReadsAt(string, []byte) bool { return true }

// Analyze implements analyzer.Analyzer. Malformed archives yield what
// could be read and no error.
func (a *Analyzer) Analyze(ctx context.Context, f *analyzer.File) (*analyzer.Result, error) {
	w := &walker{lim: a.lim, seen: map[report.Package]bool{}}
	lim := a.walkLimits()
	lim.Memory = f.Memory
	if f.At != nil {
		_, _ = archive.WalkZipAt(ctx, f.Path, f.At, f.Size, lim, w.archive)
	} else {
		_, _ = archive.WalkZip(ctx, f.Path, f.Data, lim, w.archive)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(w.pkgs) == 0 {
		return nil, nil
	}
	return &analyzer.Result{Packages: w.pkgs}, nil
}

// walkLimits are a's limits as pkg/archive's. A limit ≤ 0 allows nothing
// here but means "the default" (or "none") there, so it becomes the
// smallest pkg/archive has, with the same result: one byte (nothing java
// reads fits), one archive level (MaxDepth, MaxArchives); the entries of
// a walk with MaxEntries ≤ 0 are ignored by archive.
func (a *Analyzer) walkLimits() archive.Limits {
	l := archive.Limits{
		MaxDepth:      1 + max(a.lim.MaxDepth, 0), // the file itself, then nested levels
		MaxEntryBytes: max(a.lim.MaxEntryBytes, 1),
		MaxTotalBytes: max(a.lim.MaxTotalBytes, 1),
		MaxEntries:    a.lim.MaxEntries,
		MaxArchives:   a.lim.MaxArchives,
	}
	if a.lim.MaxArchives <= 0 {
		l.MaxDepth = 1
	}
	return l
}

type walker struct {
	lim  Limits
	pkgs []report.Package
	seen map[report.Package]bool
}

// archive reads the packages of one zip archive (the file, or one nested
// in it): its pom.properties, else its manifest and name, then the
// archives it holds.
func (w *walker) archive(z *archive.ZipArchive) error {
	var (
		poms     []*zip.File
		manifest *zip.File
		nested   []*zip.File
	)
	files := z.Files
	if w.lim.MaxEntries <= 0 {
		files = nil // see walkLimits
	}
	for _, e := range files {
		n := e.Name
		switch {
		case strings.HasPrefix(n, "META-INF/maven/") && strings.HasSuffix(n, "/pom.properties"):
			poms = append(poms, e)
		case n == "META-INF/MANIFEST.MF":
			if manifest == nil {
				manifest = e
			}
		case !strings.HasSuffix(n, "/") && isArchiveName(n):
			nested = append(nested, e)
		}
	}

	found := false
	for _, e := range poms {
		b, err := z.Read(e, w.lim.MaxMetaBytes)
		if err != nil {
			continue
		}
		props := parseProperties(b)
		if p, ok := pkg(props["groupId"], props["artifactId"], props["version"], z.Path); ok {
			w.add(p)
			found = true
		}
	}
	if !found {
		var m map[string]string
		if manifest != nil {
			if b, err := z.Read(manifest, w.lim.MaxMetaBytes); err == nil {
				m = parseManifest(b)
			}
		}
		if p, ok := fallback(m, z.Path); ok {
			w.add(p)
		}
	}

	for _, e := range nested {
		if e.UncompressedSize64 < minZip {
			continue
		}
		if err := z.Open(e); err != nil {
			// Not opened (a limit, or unreadable): the file name may
			// still tell.
			w.byName(z.Path + "!/" + e.Name)
		}
	}
	return nil
}

// byName reports a nested archive that is not opened from its file name.
func (w *walker) byName(where string) {
	if p, ok := fallback(nil, where); ok {
		w.add(p)
	}
}

func (w *walker) add(p report.Package) {
	if w.seen[p] {
		return
	}
	w.seen[p] = true
	w.pkgs = append(w.pkgs, p)
}

// pkg builds a package; ok is false without artifact or version, or when
// a field is an unresolved Maven property ("${project.version}").
func pkg(group, artifact, version, where string) (report.Package, bool) {
	group, artifact, version = strings.TrimSpace(group), strings.TrimSpace(artifact), strings.TrimSpace(version)
	if artifact == "" || version == "" {
		return report.Package{}, false
	}
	for _, s := range []string{group, artifact, version} {
		if strings.Contains(s, "${") || strings.ContainsAny(s, " \t\r\n/:") || len(s) > 256 {
			return report.Package{}, false
		}
	}
	name := artifact
	if group != "" {
		name = group + ":" + artifact
	}
	return report.Package{
		Name:      name,
		Version:   version,
		Ecosystem: Ecosystem,
		PURL:      packageurl.NewPackageURL(packageurl.TypeMaven, group, artifact, version, nil, "").ToString(),
		Path:      where,
	}, true
}

// fallback names an archive without pom.properties from its manifest
// main section m (may be nil) and its file name.
//
//   - version: Implementation-Version, Bundle-Version, else the file
//     name's version;
//   - artifact: Implementation-Title when it is an identifier (no
//     spaces), else the file name's artifact, else Bundle-SymbolicName;
//   - group: Implementation-Vendor-Id, else the group of a well-known
//     artifact (groups.go: org.springframework for spring-web…), else
//     Bundle-SymbolicName without its last dotted segment (or without
//     ".artifact" when it ends so), else Automatic-Module-Name of three
//     or more segments without its last one (org.apache.commons.text →
//     org.apache.commons).
func fallback(m map[string]string, where string) (report.Package, bool) {
	fileArtifact, fileVersion := splitFileName(path.Base(where[strings.LastIndex(where, "!/")+1:]))
	bsn := m["Bundle-SymbolicName"]
	if i := strings.IndexByte(bsn, ';'); i >= 0 { // "x.y;singleton:=true"
		bsn = bsn[:i]
	}
	bsn = strings.TrimSpace(bsn)

	version := first(m["Implementation-Version"], m["Bundle-Version"], fileVersion)
	artifact := ""
	if t := strings.TrimSpace(m["Implementation-Title"]); t != "" && !strings.ContainsAny(t, " \t") {
		artifact = t
	}
	artifact = first(artifact, fileArtifact, bsn)

	group := strings.TrimSpace(m["Implementation-Vendor-Id"])
	if group == "" {
		group = knownGroup(artifact)
	}
	if group == "" && bsn != "" {
		switch {
		case strings.HasSuffix(bsn, "."+artifact):
			group = strings.TrimSuffix(bsn, "."+artifact)
		case bsn != artifact && strings.LastIndexByte(bsn, '.') > 0:
			group = bsn[:strings.LastIndexByte(bsn, '.')]
		}
	}
	if amn := strings.TrimSpace(m["Automatic-Module-Name"]); group == "" && strings.Count(amn, ".") >= 2 {
		group = amn[:strings.LastIndexByte(amn, '.')]
	}
	return pkg(group, artifact, version, where)
}

func first(s ...string) string {
	for _, v := range s {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// splitFileName splits "artifact-1.2.3.jar" at the last "-" followed by a
// digit: ("artifact", "1.2.3"); "log4j-1.2-api-2.17.1.jar" gives
// ("log4j-1.2-api", "2.17.1"). Without such a dash the version is empty.
func splitFileName(base string) (artifact, version string) {
	if len(base) < 5 {
		return "", ""
	}
	stem := base[:len(base)-4]
	for i := len(stem) - 2; i > 0; i-- {
		if stem[i] == '-' && stem[i+1] >= '0' && stem[i+1] <= '9' {
			return stem[:i], stem[i+1:]
		}
	}
	return stem, ""
}

// parseProperties reads a Java .properties file: "key=value",
// "key: value" or "key value", "#" and "!" comments, backslash line
// continuations and escapes (\uXXXX is kept as is).
func parseProperties(b []byte) map[string]string {
	m := map[string]string{}
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimLeft(lines[i], " \t\f")
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		// Logical line: join continuations (odd number of trailing '\').
		for continued(line) && i+1 < len(lines) {
			i++
			line = line[:len(line)-1] + strings.TrimLeft(lines[i], " \t\f")
		}
		key, val := splitProperty(line)
		if _, dup := m[key]; !dup {
			m[key] = val
		}
	}
	return m
}

func continued(s string) bool {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// splitProperty splits a logical line at the first unescaped '=', ':' or
// whitespace and unescapes both sides.
func splitProperty(line string) (string, string) {
	var key strings.Builder
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		if c == '\\' && i+1 < len(line) {
			i++
			key.WriteByte(unescape(line[i]))
			continue
		}
		if c == '=' || c == ':' || c == ' ' || c == '\t' || c == '\f' {
			break
		}
		key.WriteByte(c)
	}
	rest := strings.TrimLeft(line[i:], " \t\f")
	if rest != "" && (rest[0] == '=' || rest[0] == ':') {
		rest = strings.TrimLeft(rest[1:], " \t\f")
	}
	var val strings.Builder
	for j := 0; j < len(rest); j++ {
		if rest[j] == '\\' && j+1 < len(rest) {
			j++
			val.WriteByte(unescape(rest[j]))
			continue
		}
		val.WriteByte(rest[j])
	}
	return key.String(), strings.TrimRight(val.String(), " \t\f\r")
}

func unescape(c byte) byte {
	switch c {
	case 't':
		return '\t'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 'f':
		return '\f'
	}
	return c
}

// parseManifest reads the main section of a JAR manifest: "Name: value"
// lines up to the first blank line, continuation lines starting with one
// space.
func parseManifest(b []byte) map[string]string {
	m := map[string]string{}
	var key string
	for _, line := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			break // end of the main section
		}
		if line[0] == ' ' {
			if key != "" {
				m[key] += line[1:]
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			key = ""
			continue
		}
		key = strings.TrimSpace(k)
		if _, dup := m[key]; dup {
			key = "" // keep the first value
			continue
		}
		m[key] = strings.TrimLeft(v, " ")
	}
	return m
}
