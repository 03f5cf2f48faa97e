package vulndb

import (
	"slices"
	"strings"

	"github.com/customs-scan/customs/pkg/gosyms"
	"github.com/customs-scan/customs/pkg/report"
)

// importsFor returns the entry's vulnerable Go packages that apply to
// goos/goarch (an empty value matches every platform, as in govulncheck).
// ok is false when the entry names packages and none applies: the
// advisory cannot affect a binary for that platform.
func (e *Entry) importsFor(goos, goarch string) (imports []Import, ok bool) {
	if len(e.Imports) == 0 {
		return nil, true
	}
	for _, imp := range e.Imports {
		if platformMatches(goos, imp.GOOS) && platformMatches(goarch, imp.GOARCH) {
			imports = append(imports, imp)
		}
	}
	return imports, len(imports) > 0
}

func platformMatches(v string, allowed []string) bool {
	return v == "" || len(allowed) == 0 || slices.Contains(allowed, v)
}

// symbolSets caches decoded fingerprints during one match.
type symbolSets map[string]gosyms.Set

// reachability decides, the way govulncheck's binary mode does, whether
// a binary whose module fingerprint is fp contains a vulnerable function
// of this entry: "true" when it contains one of the listed symbols (or
// any function of a package listed without symbols, or the advisory names
// no package: the whole module), "false" when it contains none,
// "unknown" when that cannot be told (stripped binary, or a record from
// another database than Go's, whose records carry no symbols).
func (e *Entry) reachability(imports []Import, fp string, sets symbolSets) string {
	if !strings.HasPrefix(e.ID, "GO-") || fp == "" {
		return report.ReachableUnknown
	}
	set, ok := sets[fp]
	if !ok {
		var err error
		if set, err = gosyms.ParseFingerprint(fp); err != nil {
			set = nil
		}
		sets[fp] = set
	}
	if set == nil {
		return report.ReachableUnknown
	}
	if len(imports) == 0 {
		return report.ReachableTrue
	}
	for _, imp := range imports {
		if !set.Has(gosyms.PackageKey(imp.Path)) {
			continue
		}
		if len(imp.Symbols) == 0 {
			return report.ReachableTrue
		}
		for _, s := range imp.Symbols {
			if set.Has(gosyms.SymbolKey(imp.Path, s)) {
				return report.ReachableTrue
			}
		}
	}
	return report.ReachableFalse
}

// combineReach merges the reachability of two installs of one package
// version: reachable if either is, unknown before not reachable.
func combineReach(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case a == report.ReachableTrue || b == report.ReachableTrue:
		return report.ReachableTrue
	case a == report.ReachableUnknown || b == report.ReachableUnknown:
		return report.ReachableUnknown
	}
	return report.ReachableFalse
}

// borrowSeverity gives a Go vulnerability without a severity of its own
// (the Go database rates none) the severity of a record that names the
// same vulnerability: one of its aliases or a record aliasing it or one
// of its aliases (a GHSA- record naming the same CVE). GitHub's review
// comes first, then the highest other rating; the CVSS vector comes
// along when the vulnerability has none.
func (db *DB) borrowSeverity(v *report.Vulnerability) {
	if rank(v.Severity) > 0 {
		return
	}
	seen := map[string]bool{v.ID: true}
	var best *Advisory
	consider := func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		a := db.advisories[id]
		if a == nil || rank(a.Severity) == 0 {
			return
		}
		ghsa, bestGHSA := strings.HasPrefix(a.ID, "GHSA-"), best != nil && strings.HasPrefix(best.ID, "GHSA-")
		switch {
		case best == nil, ghsa && !bestGHSA:
			best = a
		case ghsa == bestGHSA && (rank(a.Severity) > rank(best.Severity) || (rank(a.Severity) == rank(best.Severity) && a.ID < best.ID)):
			best = a
		}
	}
	for _, id := range append([]string{v.ID}, v.Aliases...) {
		consider(id)
		for _, other := range db.aliasedBy[id] {
			consider(other)
		}
	}
	if best == nil {
		return
	}
	v.Severity = best.Severity
	if v.CVSS == nil && best.CVSS != nil {
		c := *best.CVSS
		if c.Score != nil {
			score := *c.Score
			c.Score = &score
		}
		v.CVSS = &c
	}
}
