package vulndb

import (
	"sort"

	"github.com/customs-scan/customs/pkg/report"
)

// Match returns the vulnerabilities affecting pkgs, sorted by package,
// version and id, one per (id, package, version).
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
	type key struct{ id, pkg, version string }
	found := map[key]*report.Vulnerability{}
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
				found[k] = v
			} else if rank(e.Severity) > rank(v.Severity) {
				v.Severity = e.Severity
			}
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
