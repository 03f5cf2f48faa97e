package vulndb

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"

	"github.com/customs-scan/customs/pkg/report"
)

// osvRecord holds only the OSV fields Customs needs
// (https://ossf.github.io/osv-schema/). Everything else is ignored by the
// decoder.
type osvRecord struct {
	ID               string          `json:"id"`
	Modified         time.Time       `json:"modified"`
	Published        time.Time       `json:"published"`
	Withdrawn        *time.Time      `json:"withdrawn"`
	Aliases          []string        `json:"aliases"`
	Upstream         []string        `json:"upstream"`
	Related          []string        `json:"related"`
	Summary          string          `json:"summary"`
	Details          string          `json:"details"`
	Severity         []osvSeverity   `json:"severity"`
	Affected         []osvAffected   `json:"affected"`
	References       []osvReference  `json:"references"`
	DatabaseSpecific json.RawMessage `json:"database_specific"`
}

type osvReference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

type osvSeverity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

type osvAffected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
		PURL      string `json:"purl"`
	} `json:"package"`
	Severity          []osvSeverity   `json:"severity"`
	Ranges            []osvRange      `json:"ranges"`
	Versions          []string        `json:"versions"`
	EcosystemSpecific json.RawMessage `json:"ecosystem_specific"`
	DatabaseSpecific  json.RawMessage `json:"database_specific"`
}

type osvRange struct {
	Type   string `json:"type"`
	Events []struct {
		Introduced   string `json:"introduced"`
		Fixed        string `json:"fixed"`
		LastAffected string `json:"last_affected"`
		Limit        string `json:"limit"`
	} `json:"events"`
}

// Severity levels. SeverityNone is a CVSS base score of 0.0; the others
// match the report package's constants.
const (
	SeverityNone     = "NONE"
	SeverityLow      = "LOW"
	SeverityMedium   = "MEDIUM"
	SeverityHigh     = "HIGH"
	SeverityCritical = "CRITICAL"
	SeverityUnknown  = "UNKNOWN"
)

// severityFromScores derives a level from OSV severity entries: the first
// parseable CVSS v3.x vector wins, then CVSS v4; an "Ubuntu" entry carries
// the distribution's own level. It returns "" when nothing usable is there.
func severityFromScores(sev []osvSeverity) string {
	for _, want := range []string{"CVSS_V3", "CVSS_V4", "Ubuntu"} {
		for _, s := range sev {
			if s.Type != want {
				continue
			}
			if lvl := severityFromScore(s.Type, s.Score); lvl != "" {
				return lvl
			}
		}
	}
	return ""
}

func severityFromScore(typ, score string) string {
	switch typ {
	case "CVSS_V3":
		switch {
		case strings.HasPrefix(score, "CVSS:3.1/"):
			if v, err := gocvss31.ParseVector(score); err == nil {
				return cvssLevel(v.BaseScore())
			}
		case strings.HasPrefix(score, "CVSS:3.0/"):
			if v, err := gocvss30.ParseVector(score); err == nil {
				return cvssLevel(v.BaseScore())
			}
		}
	case "CVSS_V4":
		if v, err := gocvss40.ParseVector(score); err == nil {
			return cvssLevel(v.Score())
		}
	case "Ubuntu":
		return textLevel(score)
	}
	return ""
}

// cvssLevel maps a CVSS v3/v4 base score to its qualitative rating (the
// same bands in both specifications).
func cvssLevel(score float64) string {
	switch {
	case score >= 9.0:
		return SeverityCritical
	case score >= 7.0:
		return SeverityHigh
	case score >= 4.0:
		return SeverityMedium
	case score >= 0.1:
		return SeverityLow
	default:
		return SeverityNone
	}
}

// textLevel maps the words used by ecosystem databases (GHSA "MODERATE",
// Debian urgency "unimportant", Ubuntu "negligible", ...) to a level.
func textLevel(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	// Debian urgencies may carry a suffix such as "low**" or "medium*".
	s = strings.TrimRight(s, "*")
	switch s {
	case "critical":
		return SeverityCritical
	case "high", "important":
		return SeverityHigh
	case "medium", "moderate":
		return SeverityMedium
	case "low", "negligible", "unimportant":
		return SeverityLow
	case "none":
		return SeverityNone
	}
	return ""
}

// severityFromSpecific looks for a textual severity in an
// ecosystem_specific or database_specific object: "severity" (GHSA,
// RustSec-style) or "urgency" (Debian).
func severityFromSpecific(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '{' {
		return ""
	}
	var m struct {
		Severity json.RawMessage `json:"severity"`
		Urgency  string          `json:"urgency"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	var sev string
	if len(m.Severity) > 0 && json.Unmarshal(m.Severity, &sev) == nil {
		if lvl := textLevel(sev); lvl != "" {
			return lvl
		}
	}
	return textLevel(m.Urgency)
}

// affectedSeverity picks the severity level of one affected entry: CVSS of
// the entry, CVSS of the record, then ecosystem/database specific text,
// else UNKNOWN.
func affectedSeverity(rec *osvRecord, a *osvAffected) string {
	if lvl := severityFromScores(a.Severity); lvl != "" {
		return lvl
	}
	if lvl := severityFromScores(rec.Severity); lvl != "" {
		return lvl
	}
	for _, raw := range []json.RawMessage{a.EcosystemSpecific, a.DatabaseSpecific, rec.DatabaseSpecific} {
		if lvl := severityFromSpecific(raw); lvl != "" {
			return lvl
		}
	}
	return SeverityUnknown
}

// What an advisory keeps for reports is bounded: a database holds hundreds
// of thousands of advisories, all in memory in every scanner.
const (
	// maxSummary bounds Advisory.Summary (runes).
	maxSummary = 256
	// maxReferences bounds Advisory.References (kernel advisories list
	// hundreds of commits).
	maxReferences = 16
)

// advisoryOf reduces a record to what reports show about it.
func advisoryOf(rec *osvRecord) *Advisory {
	sev := severityFromScores(rec.Severity)
	if sev == "" {
		sev = severityFromSpecific(rec.DatabaseSpecific)
	}
	a := &Advisory{
		ID:        rec.ID,
		Summary:   summarize(rec.Summary, rec.Details),
		CVSS:      cvssFromScores(rec.Severity),
		Severity:  sev,
		Published: rec.Published.UTC(),
		Modified:  rec.Modified.UTC(),
		CWEs:      cweIDs(rec.DatabaseSpecific),
	}
	for _, r := range rec.References {
		u := strings.TrimSpace(r.URL)
		if u == "" || slices.Contains(a.References, u) {
			continue
		}
		if len(a.References) == maxReferences {
			break
		}
		a.References = append(a.References, u)
	}
	return a
}

// summarize returns the record's summary, else the first paragraph of its
// details (distribution records have only details), on one line and at
// most maxSummary runes.
func summarize(summary, details string) string {
	s := strings.TrimSpace(summary)
	if s == "" {
		s = strings.TrimSpace(details)
		if i := strings.Index(s, "\n\n"); i >= 0 {
			s = s[:i]
		}
	}
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= maxSummary {
		return s
	}
	r := []rune(s)[:maxSummary-1]
	return strings.TrimRight(string(r), " ") + "…"
}

// cvssFromScores returns the CVSS vector severityFromScores would rate
// from: the first CVSS v3.x vector, else the first v4 one (nil if none).
// A vector that does not parse is kept without a score.
func cvssFromScores(sev []osvSeverity) *report.CVSS {
	var unscored *report.CVSS
	for _, want := range []string{"CVSS_V3", "CVSS_V4"} {
		for _, s := range sev {
			if s.Type != want || s.Score == "" {
				continue
			}
			c := scoreVector(s.Score)
			if c.Score != nil {
				return c
			}
			if unscored == nil {
				unscored = c
			}
		}
	}
	return unscored
}

// scoreVector computes the base score of a CVSS v3.0, v3.1 or v4.0 vector.
func scoreVector(vector string) *report.CVSS {
	c := &report.CVSS{Vector: vector}
	var score float64
	var err error
	switch {
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		c.Version = "3.1"
		var v *gocvss31.CVSS31
		if v, err = gocvss31.ParseVector(vector); err == nil {
			score = v.BaseScore()
		}
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		c.Version = "3.0"
		var v *gocvss30.CVSS30
		if v, err = gocvss30.ParseVector(vector); err == nil {
			score = v.BaseScore()
		}
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		c.Version = "4.0"
		var v *gocvss40.CVSS40
		if v, err = gocvss40.ParseVector(vector); err == nil {
			score = v.Score()
		}
	default:
		return c
	}
	if err == nil {
		c.Score = &score
	}
	return c
}

var cweRE = regexp.MustCompile(`^CWE-[0-9]+$`)

// cweIDs reads database_specific.cwe_ids (GitHub advisories), sorted.
func cweIDs(raw json.RawMessage) []string {
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var m struct {
		CWEs []string `json:"cwe_ids"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	var out []string
	for _, c := range m.CWEs {
		if c = strings.ToUpper(strings.TrimSpace(c)); cweRE.MatchString(c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// goImports reads ecosystem_specific.imports of a Go record: the
// vulnerable packages, their platforms and symbols (sorted, so that two
// builds hash alike).
func goImports(raw json.RawMessage) []Import {
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var m struct {
		Imports []struct {
			Path    string   `json:"path"`
			GOOS    []string `json:"goos"`
			GOARCH  []string `json:"goarch"`
			Symbols []string `json:"symbols"`
		} `json:"imports"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	var out []Import
	for _, i := range m.Imports {
		if i.Path == "" {
			continue
		}
		imp := Import{Path: i.Path, GOOS: sortedSet(i.GOOS), GOARCH: sortedSet(i.GOARCH), Symbols: sortedSet(i.Symbols)}
		out = append(out, imp)
	}
	return out
}

func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
