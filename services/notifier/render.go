package notifier

import (
	"fmt"
	"strings"
	"unicode/utf8"

	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// chatTopItems is how many new items a chat message lists before
// "… and N more": a message per image with its worst news, the full list
// is in the report (and in the generic webhook's body).
const chatTopItems = 15

// view is what every chat message shows, in plain text; each renderer
// escapes it for its product and fits it to the product's limits.
type view struct {
	Title string
	// Facts are label/value pairs in display order.
	Facts []fact
	// Items are the new items, most severe first (the alert's order).
	Items []item
	// Link is the report's URL; empty without public_url.
	Link  string
	Color verdictColor
}

type fact struct{ Label, Value string }

// item is one new item's display parts. A finding carries its rule,
// path and title, never a matched value (alerts don't have any).
type item struct {
	Kind, ID, Severity        string
	Package, Installed, Fixed string
	Path, Title               string
	Vulnerability             bool
}

// verdictColor is the message's accent: red for quarantine, amber for
// warn, green for pass and release.
type verdictColor struct {
	Hex string // "#d0021b"
	Int int    // Discord
}

var (
	colorRed   = verdictColor{"#d0021b", 0xd0021b}
	colorAmber = verdictColor{"#f5a623", 0xf5a623}
	colorGreen = verdictColor{"#2eb67d", 0x2eb67d}
)

// newView builds the plain-text message for alert a (already filtered for
// the destination). publicURL may be empty.
func newView(a *customsv1.Alert, publicURL string) view {
	v := view{Title: truncate(title(a), maxTitleRunes), Color: colorOf(a)}
	image := a.GetRepository()
	if r := a.GetRegistry(); r != "" {
		image = r + "/" + image
	}
	v.Facts = append(v.Facts, fact{"Image", image})
	if tags := a.GetTags(); len(tags) > 0 {
		v.Facts = append(v.Facts, fact{"Tags", strings.Join(tags, ", ")})
	}
	v.Facts = append(v.Facts, fact{"Digest", shortDigest(a.GetDigest())})
	if p := a.GetPlatform(); p != "" {
		v.Facts = append(v.Facts, fact{"Platform", p})
	}
	verdict := a.GetVerdict()
	if prev := a.GetPreviousVerdict(); prev != "" && prev != verdict {
		verdict = prev + " → " + verdict
	}
	if verdict != "" {
		v.Facts = append(v.Facts, fact{"Verdict", verdict})
	}
	if rule := ruleReason(a); rule != "" {
		v.Facts = append(v.Facts, fact{"Rule", rule})
	}
	if len(a.GetNewItems()) > 0 {
		v.Facts = append(v.Facts, fact{"New", counts(a.GetNewItems())})
	}
	if q := a.GetQuarantine(); q != nil {
		s := q.GetState()
		if q.GetMode() != "" {
			s += " (" + q.GetMode() + ")"
		}
		if q.GetBy() != "" {
			s += " by " + q.GetBy()
		}
		if q.GetReason() != "" {
			s += ": " + q.GetReason()
		}
		v.Facts = append(v.Facts, fact{"Quarantine", s})
	}
	if a.GetFirstPush() {
		v.Facts = append(v.Facts, fact{"Compared with", "nothing (first push of the repository)"})
	} else if pd := a.GetPreviousDigest(); pd != "" && pd != a.GetDigest() {
		v.Facts = append(v.Facts, fact{"Compared with", shortDigest(pd)})
	}
	for _, it := range a.GetNewItems() {
		t := func(s string) string { return truncate(s, maxItemFieldRunes) }
		v.Items = append(v.Items, item{
			Kind: t(it.GetKind()), ID: t(it.GetId()), Severity: t(strings.ToUpper(it.GetSeverity())),
			Package: t(it.GetPackage()), Installed: t(it.GetInstalledVersion()), Fixed: t(it.GetFixedVersion()),
			Path: t(it.GetPath()), Title: t(it.GetTitle()), Vulnerability: it.GetKind() == KindVulnerability,
		})
	}
	for i := range v.Facts {
		v.Facts[i].Value = truncate(v.Facts[i].Value, maxFactRunes)
	}
	v.Link = reportURL(publicURL, a.GetReportPath())
	return v
}

func reportURL(publicURL, reportPath string) string {
	if publicURL == "" || reportPath == "" {
		return ""
	}
	if !strings.HasPrefix(reportPath, "/") {
		reportPath = "/" + reportPath
	}
	return publicURL + reportPath
}

// ref is repository:tag, or repository@<short digest> without tags.
func ref(a *customsv1.Alert) string {
	if tags := a.GetTags(); len(tags) > 0 {
		return a.GetRepository() + ":" + tags[0]
	}
	return a.GetRepository() + "@" + shortDigest(a.GetDigest())
}

func title(a *customsv1.Alert) string {
	r := ref(a)
	q := a.GetQuarantine()
	dry := q != nil && q.GetMode() == "dry-run"
	switch a.GetKind() {
	case AlertQuarantine:
		if dry {
			return "Would quarantine (dry-run): " + r
		}
		return "Quarantined: " + r
	case AlertRelease:
		return "Released: " + r
	case AlertRematch:
		return "New vulnerabilities in " + r
	}
	switch {
	case q != nil && q.GetState() == "quarantined" && dry:
		return "New push, would be quarantined (dry-run): " + r
	case q != nil && q.GetState() == "quarantined":
		return "New push quarantined: " + r
	case a.GetFirstPush():
		return "New image: " + r
	}
	return "New findings in " + r
}

func colorOf(a *customsv1.Alert) verdictColor {
	switch {
	case a.GetKind() == AlertRelease:
		return colorGreen
	case a.GetKind() == AlertQuarantine, a.GetVerdict() == "quarantine", a.GetQuarantine().GetState() == "quarantined":
		return colorRed
	case a.GetVerdict() == "warn":
		return colorAmber
	}
	return colorGreen
}

func ruleReason(a *customsv1.Alert) string {
	rule, reason := a.GetVerdictRule(), a.GetVerdictReason()
	switch {
	case rule != "" && reason != "":
		return rule + ": " + reason
	case rule != "":
		return rule
	}
	return reason
}

// shortDigest is the algorithm and 12 hex digits: sha256:0123456789ab.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok {
		return truncate(d, 12)
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return alg + ":" + hex
}

// counts is "2 CRITICAL, 1 HIGH, 3 MEDIUM (6 new)".
func counts(items []*customsv1.AlertItem) string {
	n := map[string]int{}
	for _, it := range items {
		n[normSeverity(it.GetSeverity())]++
	}
	var parts []string
	for i := len(severities) - 1; i >= 0; i-- {
		if c := n[severities[i]]; c > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c, severities[i]))
		}
	}
	return fmt.Sprintf("%s (%d new)", strings.Join(parts, ", "), len(items))
}

// normSeverity is s in capitals, UNKNOWN when it is not a severity.
func normSeverity(s string) string {
	return severities[severityRank(s)]
}

// versions is "libssl3 3.0.11 → 3.0.13" or "… (no fix yet)".
func (it item) versions() string {
	s := it.Package
	if it.Installed != "" {
		s += " " + it.Installed
	}
	if it.Fixed != "" {
		return s + " → " + it.Fixed
	}
	return s + " (no fix yet)"
}

// finding is "secret aws-access-key-id in app/.env: AWS access key".
func (it item) finding() string {
	s := it.Kind + " " + it.ID
	if it.Path != "" {
		s += " in " + it.Path
	}
	if it.Title != "" {
		s += ": " + it.Title
	}
	return s
}

// Bounds on the parts of a chat message, so that with no items shown any
// message fits every product, and a few items fit most.
const (
	maxTitleRunes = 150 // Slack's header limit, the smallest
	maxFactRunes  = 500
	// Each part of an item line (id, package, path, title …).
	maxItemFieldRunes = 120
)

// shownCounts are the numbers of items a renderer tries, most first:
// chatTopItems (or fewer when there are fewer), then halving down to 0.
func shownCounts(total int) []int {
	var out []int
	for n := min(total, chatTopItems); ; n /= 2 {
		out = append(out, n)
		if n == 0 {
			return out
		}
	}
}

// more is the line that ends a shortened list.
func more(n int) string {
	if n == 1 {
		return "… and 1 more new item (see the report)"
	}
	return fmt.Sprintf("… and %d more new items (see the report)", n)
}

// truncate shortens s to at most n runes, ending with "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
