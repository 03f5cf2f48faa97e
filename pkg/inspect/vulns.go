package inspect

import (
	"time"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/vulndb"
)

// Ignorer marks matched vulnerabilities as not affecting an image (VEX
// statements, ignore files); *ignore.Rules is one.
type Ignorer interface {
	Apply(art report.Artifact, vulns []report.Vulnerability, now time.Time) (kept []report.Vulnerability, ignored []report.IgnoredVulnerability)
}

// Notes written into report.VulnerabilityDB when nothing was checked.
const (
	NoteNoDatabase  = "no vulnerability database: run `customs db update` (or publish one to the cluster); packages are listed but were not checked"
	NotePackagesOff = "package scanning is off (--scanners): nothing to match"
)

// MatchVulnerabilities sets r's vulnerabilities, ignored vulnerabilities
// and database status from its packages. A nil db records that nothing
// was checked, so an empty list is never mistaken for a clean image.
func MatchVulnerabilities(r *report.Report, db *vulndb.DB, ign Ignorer, now time.Time) {
	r.Vulnerabilities = []report.Vulnerability{}
	r.IgnoredVulnerabilities = []report.IgnoredVulnerability{}
	if db == nil {
		r.VulnerabilityDB = report.VulnerabilityDB{Status: report.VulnDBNotChecked, Note: NoteNoDatabase}
		return
	}
	h := db.Header()
	built, matched := h.Built.UTC(), now.UTC()
	r.VulnerabilityDB = report.VulnerabilityDB{
		Status: report.VulnDBChecked, Version: db.Version(), BuiltAt: &built, MatchedAt: &matched,
	}
	vulns := db.Match(r.Packages)
	if ign != nil && len(vulns) > 0 {
		kept, ignored := ign.Apply(r.Artifact, vulns, now)
		vulns = kept
		r.IgnoredVulnerabilities = append(r.IgnoredVulnerabilities, ignored...)
	}
	r.Vulnerabilities = append(r.Vulnerabilities, vulns...)
	r.Normalize()
}

// match applies o's database to a freshly scanned report.
func (o Options) match(r *report.Report) {
	if o.PackagesOff {
		r.VulnerabilityDB = report.VulnerabilityDB{Status: report.VulnDBNotChecked, Note: NotePackagesOff}
		return
	}
	var db *vulndb.DB
	if o.VulnDB != nil {
		db = o.VulnDB()
	}
	MatchVulnerabilities(r, db, o.Ignore, o.now())
}

// Rematch matches a stored report's packages against db again (no image
// is pulled), re-applies the ignore rules and the verdict policy, and
// returns the vulnerabilities the report did not list before. Failed
// scans and index reports have no packages and are left as they are
// (changed false).
func Rematch(r *report.Report, db *vulndb.DB, opts Options) (gained []report.Vulnerability, changed bool) {
	if r.Status != report.StatusComplete || len(r.Manifests) > 0 || db == nil {
		return nil, false
	}
	if r.VulnerabilityDB.Note == NotePackagesOff {
		return nil, false
	}
	// Known before: every id and alias per installed package, so a
	// vulnerability that is merely renamed (a GO- record joining its
	// GHSA- record) is not announced again.
	before := map[string]bool{}
	for _, v := range r.Vulnerabilities {
		for _, id := range append([]string{v.ID}, v.Aliases...) {
			before[report.Vulnerability{ID: id, Package: v.Package, Version: v.Version}.Key()] = true
		}
	}
	// A vulnerability that moved from ignored to reported is news too,
	// but one that was only ignored before and is still ignored is not.
	MatchVulnerabilities(r, db, opts.Ignore, opts.now())
	for _, v := range r.Vulnerabilities {
		known := false
		for _, id := range append([]string{v.ID}, v.Aliases...) {
			known = known || before[report.Vulnerability{ID: id, Package: v.Package, Version: v.Version}.Key()]
		}
		if !known {
			gained = append(gained, v)
		}
	}
	r.Verdict, r.VerdictRule, r.VerdictReason = "", "", ""
	opts.decide(r)
	return gained, true
}
