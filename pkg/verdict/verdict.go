// Package verdict decides a report's outcome once its packages and
// findings are known: vulnerability matching against the database, the
// ignore rules (VEX, ignore files) and the verdict policy. It reads no
// image and links no analyzer, so results can re-decide stored reports
// after a database update without carrying the scanner.
//
//	rules, err := verdict.Load(policyFile, ignoreFiles)
//	gained, changed := rules.Rematch(r, db)
package verdict

import (
	"fmt"
	"strings"
	"time"

	"github.com/customs-scan/customs/pkg/ignore"
	"github.com/customs-scan/customs/pkg/policy"
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

// Rules are what decides a report: the policy and the ignore rules.
type Rules struct {
	// Policy decides verdicts (nil: the built-in rules).
	Policy *policy.Policy
	// Ignore marks vulnerabilities as not affecting the image (nil: none).
	Ignore Ignorer
	// OnPolicyError, when set, sees errors of policy rules that failed to
	// evaluate (those rules are skipped).
	OnPolicyError func(rule error)
	// Now is the clock (tests).
	Now func() time.Time
	// StaleAfter is the database age past which reports say
	// vulnerability_db.stale (0: DefaultStaleAfter; negative: never).
	StaleAfter time.Duration
}

// DefaultStaleAfter is the database age past which a report says the
// database was stale: osv.dev's dumps change daily, and the services
// update every 6 hours by default.
const DefaultStaleAfter = 72 * time.Hour

// Load reads a policy file ("" for the built-in rules) and ignore files.
func Load(policyFile string, ignoreFiles []string) (Rules, error) {
	p := policy.Default()
	if policyFile != "" {
		var err error
		if p, err = policy.LoadFile(policyFile); err != nil {
			return Rules{}, fmt.Errorf("policy %s: %w", policyFile, err)
		}
	}
	var files []string
	for _, f := range ignoreFiles {
		if f = strings.TrimSpace(f); f != "" {
			files = append(files, f)
		}
	}
	r := Rules{Policy: p}
	if len(files) > 0 {
		rules, err := ignore.Load(files...)
		if err != nil {
			return Rules{}, fmt.Errorf("ignore rules: %w", err)
		}
		// Only a non-nil *ignore.Rules goes into the interface: a typed nil
		// would not compare equal to nil.
		r.Ignore = rules
	}
	return r, nil
}

func (r Rules) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// Decide applies the policy to rep, recording the deciding rule.
func (r Rules) Decide(rep *report.Report) {
	d := r.Policy.Apply(rep)
	if r.OnPolicyError != nil {
		for _, err := range d.Errors {
			r.OnPolicyError(err)
		}
	}
}

// Match sets rep's vulnerabilities, ignored vulnerabilities and database
// status from its packages. A nil db records that nothing was checked, so
// an empty list is never mistaken for a clean image. The database is
// stale past DefaultStaleAfter (Rules.Match takes Rules.StaleAfter).
func Match(rep *report.Report, db *vulndb.DB, ign Ignorer, now time.Time) {
	match(rep, db, ign, now, DefaultStaleAfter)
}

func match(rep *report.Report, db *vulndb.DB, ign Ignorer, now time.Time, staleAfter time.Duration) {
	rep.Vulnerabilities = []report.Vulnerability{}
	rep.IgnoredVulnerabilities = []report.IgnoredVulnerability{}
	if db == nil {
		rep.VulnerabilityDB = report.VulnerabilityDB{Status: report.VulnDBNotChecked, Note: NoteNoDatabase}
		return
	}
	h := db.Header()
	built, matched := h.Built.UTC(), now.UTC()
	age := max(matched.Sub(built), 0)
	rep.VulnerabilityDB = report.VulnerabilityDB{
		Status: report.VulnDBChecked, Version: db.Version(), BuiltAt: &built, MatchedAt: &matched,
		AgeSeconds: int64(age / time.Second), Stale: staleAfter > 0 && age > staleAfter,
	}
	vulns := db.MatchPlatform(rep.Packages, rep.Artifact.Platform)
	if ign != nil && len(vulns) > 0 {
		kept, ignored := ign.Apply(rep.Artifact, vulns, now)
		vulns = kept
		rep.IgnoredVulnerabilities = append(rep.IgnoredVulnerabilities, ignored...)
	}
	rep.Vulnerabilities = append(rep.Vulnerabilities, vulns...)
	rep.Normalize()
}

// Match applies db and r's ignore rules to rep.
func (r Rules) Match(rep *report.Report, db *vulndb.DB) {
	stale := r.StaleAfter
	if stale == 0 {
		stale = DefaultStaleAfter
	}
	match(rep, db, r.Ignore, r.now(), stale)
}

// Rematch matches a stored report's packages against db again (no image
// is pulled), re-applies the ignore rules and the verdict policy, and
// returns the vulnerabilities the report did not list before. Failed
// scans and index reports have no packages and are left as they are
// (changed false).
func (r Rules) Rematch(rep *report.Report, db *vulndb.DB) (gained []report.Vulnerability, changed bool) {
	if rep.Status != report.StatusComplete || len(rep.Manifests) > 0 || db == nil {
		return nil, false
	}
	if rep.VulnerabilityDB.Note == NotePackagesOff {
		return nil, false
	}
	// Known before: every id and alias per installed package, so a
	// vulnerability that is merely renamed (a GO- record joining its
	// GHSA- record) is not announced again.
	before := map[string]bool{}
	for _, v := range rep.Vulnerabilities {
		for _, id := range append([]string{v.ID}, v.Aliases...) {
			before[report.Vulnerability{ID: id, Package: v.Package, Version: v.Version}.Key()] = true
		}
	}
	// A vulnerability that moved from ignored to reported is news too,
	// but one that was only ignored before and is still ignored is not.
	r.Match(rep, db)
	for _, v := range rep.Vulnerabilities {
		known := false
		for _, id := range append([]string{v.ID}, v.Aliases...) {
			known = known || before[report.Vulnerability{ID: id, Package: v.Package, Version: v.Version}.Key()]
		}
		if !known {
			gained = append(gained, v)
		}
	}
	rep.Verdict, rep.VerdictRule, rep.VerdictReason = "", "", ""
	r.Decide(rep)
	return gained, true
}
