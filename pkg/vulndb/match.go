package vulndb

import (
	"sort"
	"strings"

	"github.com/customs-scan/customs/pkg/report"
)

// Match returns the vulnerabilities affecting pkgs, sorted by package,
// version and id, one per (vulnerability, package, version): records
// that name each other as aliases are merged (see mergeAliases).
//
// Distribution packages (Debian, Ubuntu, Alpine) are matched on their
// source package (SourceName/SourceVersion, falling back to Name/Version)
// because distribution advisories name source packages; the result still
// names the installed binary package. The package's ecosystem must equal
// the advisory's after normalization ("Ubuntu:22.04" matches
// "Ubuntu:22.04:LTS", "Alpine:3.19" matches "Alpine:v3.19").
//
// FixedVersion is the smallest "fixed" event above the installed version
// across every matching range of the advisory, "" when there is none.
func (db *DB) Match(pkgs []report.Package) []report.Vulnerability {
	return db.MatchPlatform(pkgs, "")
}

// MatchPlatform is Match for the packages of an image of the given
// platform ("linux/amd64", "" when unknown). Go advisories whose every
// vulnerable package is restricted to other platforms (GOOS/GOARCH) are
// dropped: a Go package's own GOOS/GOARCH (the binary's build settings)
// decide, else the image platform's. Go vulnerabilities also say whether
// the binary contains a vulnerable function (report.Vulnerability
// Reachable, see reachability).
func (db *DB) MatchPlatform(pkgs []report.Package, platform string) []report.Vulnerability {
	type key struct{ id, pkg, version string }
	found := map[key]*report.Vulnerability{}
	imgOS, imgArch, _ := strings.Cut(platform, "/")
	imgArch, _, _ = strings.Cut(imgArch, "/")
	sets := symbolSets{}
	for _, p := range pkgs {
		base, release := normalizeEcosystem(p.Ecosystem)
		eco := base
		if release != "" {
			eco += ":" + release
		}
		name, version := p.Name, p.Version
		if isDistro(base) {
			if p.SourceName != "" {
				name = p.SourceName
			}
			if p.SourceVersion != "" {
				version = p.SourceVersion
			}
		}
		if version == "" {
			continue
		}
		for _, e := range db.index[indexKey(base, normalizeName(base, name))] {
			if e.Ecosystem != eco {
				continue
			}
			hit, fixed := e.affects(base, version)
			if !hit {
				continue
			}
			var reach string
			if base == ecoGo {
				goos, goarch := p.GOOS, p.GOARCH
				if goos == "" && goarch == "" {
					goos, goarch = imgOS, imgArch
				}
				imports, ok := e.importsFor(goos, goarch)
				if !ok {
					continue
				}
				reach = e.reachability(imports, p.GoSymbols, sets)
			}
			k := key{e.ID, p.Name, p.Version}
			v := found[k]
			if v == nil {
				v = &report.Vulnerability{
					ID:        e.ID,
					Aliases:   append([]string{}, e.Aliases...),
					Package:   p.Name,
					Version:   p.Version,
					Severity:  e.Severity,
					Ecosystem: p.Ecosystem,
					PURL:      p.PURL,
					Path:      p.Path,
					Layer:     p.Layer,
				}
				if name != p.Name || version != p.Version {
					v.SourceName, v.SourceVersion = name, version
				}
				db.describe(v, e)
				found[k] = v
			} else if rank(e.Severity) > rank(v.Severity) {
				v.Severity = e.Severity
			}
			v.Reachable = combineReach(v.Reachable, reach)
			if fixed != "" {
				if v.FixedVersion == "" {
					v.FixedVersion = fixed
				} else if c, err := e.cmp(base, fixed, v.FixedVersion); err == nil && c < 0 {
					v.FixedVersion = fixed
				}
			}
		}
	}
	out := make([]report.Vulnerability, 0, len(found))
	for _, v := range found {
		out = append(out, *v)
	}
	out = mergeAliases(out)
	for i := range out {
		if out[i].Ecosystem == ecoGo {
			db.borrowSeverity(&out[i])
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.ID < b.ID
	})
	return out
}

// describe copies what the database keeps about e's advisory into v (the
// entry's own CVSS vector before the advisory's). Slices are copied: a
// report must not alias the database.
func (db *DB) describe(v *report.Vulnerability, e *Entry) {
	a := db.advisories[e.ID]
	cvss := e.CVSS
	if a != nil {
		v.Summary = a.Summary
		if cvss == nil {
			cvss = a.CVSS
		}
		v.References = append([]string{}, a.References...)
		v.CWEs = append([]string{}, a.CWEs...)
		if !a.Published.IsZero() {
			t := a.Published
			v.Published = &t
		}
		if !a.Modified.IsZero() {
			t := a.Modified
			v.Modified = &t
		}
	}
	if cvss != nil {
		c := *cvss
		if c.Score != nil {
			score := *c.Score
			c.Score = &score
		}
		v.CVSS = &c
	}
}

// fillFrom completes v's advisory details from another record of the same
// vulnerability (a GO- record has no CVSS, its GHSA- twin does).
func fillFrom(v *report.Vulnerability, o report.Vulnerability) {
	if v.Summary == "" {
		v.Summary = o.Summary
	}
	if v.CVSS == nil {
		v.CVSS = o.CVSS
	}
	if len(v.References) == 0 {
		v.References = o.References
	}
	if v.Published == nil {
		v.Published = o.Published
	}
	if v.Modified == nil {
		v.Modified = o.Modified
	}
	if len(v.CWEs) == 0 {
		v.CWEs = o.CWEs
	}
}

// mergeAliases folds the records of one vulnerability from several
// databases into one entry per installed package: osv.dev's dumps carry
// both GO-… and GHSA-… for Go modules, PYSEC-… and GHSA-… for PyPI, and
// each names the other in its aliases. Only direct references merge
// (sharing an alias does not: a DSA relates to several CVEs). The entry
// keeps the ecosystem's own id over a GHSA id, every other id as an
// alias, the highest severity, and its own fixed version (the other's
// when it has none).
func mergeAliases(vs []report.Vulnerability) []report.Vulnerability {
	type pv struct{ pkg, version string }
	groups := map[pv][]int{}
	for i, v := range vs {
		k := pv{v.Package, v.Version}
		groups[k] = append(groups[k], i)
	}
	parent := make([]int, len(vs))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	merged := false
	for _, idx := range groups {
		if len(idx) < 2 {
			continue
		}
		byID := make(map[string]int, len(idx))
		for _, i := range idx {
			byID[vs[i].ID] = i
		}
		for _, i := range idx {
			for _, a := range vs[i].Aliases {
				if j, ok := byID[a]; ok && find(i) != find(j) {
					parent[find(j)] = find(i)
					merged = true
				}
			}
		}
	}
	if !merged {
		return vs
	}
	members := map[int][]int{}
	for i := range vs {
		members[find(i)] = append(members[find(i)], i)
	}
	out := make([]report.Vulnerability, 0, len(members))
	for _, m := range members {
		// Preferred id first, so what is taken from the others does not
		// depend on map order.
		sort.Slice(m, func(a, b int) bool { return preferID(vs[m[a]].ID, vs[m[b]].ID) })
		best := m[0]
		v := vs[best]
		ids := map[string]bool{}
		for _, i := range m {
			ids[vs[i].ID] = true
			for _, a := range vs[i].Aliases {
				ids[a] = true
			}
			if rank(vs[i].Severity) > rank(v.Severity) {
				v.Severity = vs[i].Severity
			}
			if v.FixedVersion == "" {
				v.FixedVersion = vs[i].FixedVersion
			}
			if i != best {
				fillFrom(&v, vs[i])
			}
		}
		delete(ids, v.ID)
		v.Aliases = make([]string, 0, len(ids))
		for id := range ids {
			v.Aliases = append(v.Aliases, id)
		}
		sort.Strings(v.Aliases)
		out = append(out, v)
	}
	return out
}

// preferID reports whether a should name a merged vulnerability rather
// than b: an ecosystem's own id (GO-, PYSEC-, RUSTSEC-, DSA-, …) before
// a GitHub advisory id, then the smaller id.
func preferID(a, b string) bool {
	ga, gb := strings.HasPrefix(a, "GHSA-"), strings.HasPrefix(b, "GHSA-")
	if ga != gb {
		return gb
	}
	return a < b
}

func rank(sev string) int {
	switch sev {
	case SeverityNone:
		return 1
	case SeverityLow:
		return 2
	case SeverityMedium:
		return 3
	case SeverityHigh:
		return 4
	case SeverityCritical:
		return 5
	}
	return 0
}

// cmp compares two versions of an entry's ecosystem, using the ordering
// of its first range (fixed versions always come from ranges).
func (e *Entry) cmp(base, a, b string) (int, error) {
	typ := "ECOSYSTEM"
	if len(e.Ranges) > 0 {
		typ = e.Ranges[0].Type
	}
	c := comparatorFor(base, typ)
	if c == nil {
		return 0, errUnknownScheme
	}
	return c(a, b)
}

// affects evaluates the OSV algorithm for one installed version: it is
// affected if listed in versions or inside any range. fixed is the
// smallest fixed event greater than the installed version over all ranges
// that contain it ("" if none).
func (e *Entry) affects(base, version string) (hit bool, fixed string) {
	for _, v := range e.Versions {
		if v == version || (base == ecoGo && goSemver(v) == goSemver(version)) {
			hit = true
			break
		}
	}
	for _, r := range e.Ranges {
		cmp := comparatorFor(base, r.Type)
		if cmp == nil {
			continue
		}
		if _, err := cmp(version, version); err != nil {
			continue // the installed version does not parse here
		}
		if !inRange(cmp, r.Events, version) {
			continue
		}
		hit = true
		for _, ev := range r.Events {
			if ev.Fixed == "" {
				continue
			}
			if c, _ := cmp(ev.Fixed, version); c <= 0 {
				continue
			}
			if fixed == "" {
				fixed = ev.Fixed
			} else if c, _ := cmp(ev.Fixed, fixed); c < 0 {
				fixed = ev.Fixed
			}
		}
	}
	return hit, fixed
}

// inRange is the OSV evaluation over events sorted by version:
// introduced (or "0") opens the range, fixed closes it at that version
// (exclusive), last_affected closes it after that version (inclusive).
func inRange(cmp comparator, events []Event, version string) bool {
	affected := false
	for _, ev := range events {
		switch {
		case ev.Introduced != "":
			if ev.Introduced == "0" {
				affected = true
			} else if c, _ := cmp(version, ev.Introduced); c >= 0 {
				affected = true
			}
		case ev.Fixed != "":
			if c, _ := cmp(version, ev.Fixed); c >= 0 {
				affected = false
			}
		case ev.LastAffected != "":
			if c, _ := cmp(version, ev.LastAffected); c > 0 {
				affected = false
			}
		}
	}
	return affected
}
