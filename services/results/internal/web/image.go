package web

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/results/internal/reportstore"
)

// Rows per page of the long tables: a 3,000-package report renders 100.
const (
	packagesPerPage = 100
	vulnsPerPage    = 100
	newItemsShown   = 100
)

var severityRank = map[string]int{report.SeverityCritical: 4, report.SeverityHigh: 3, report.SeverityMedium: 2, report.SeverityLow: 1}

// layerRef is how rows name a layer: its position and build step.
type layerRef struct {
	Known     bool
	Index     int // 1-based, bottom first
	Digest    string
	CreatedBy string
}

type chip struct {
	Label   string
	Count   int
	Link    string
	Current bool
	Class   string
}

type pager struct {
	Page, Pages        int
	PrevLink, NextLink string
	First, Last        int // 1-based rows shown
	Total              int
}

type vulnRow struct {
	V        report.Vulnerability
	Severity string
	Layer    layerRef
}

type vulnSection struct {
	Total int
	// Shown is how many match the filters.
	Shown       int
	Chips       []chip
	Severity    string
	Fixable     bool
	FixableLink string
	Rows        []vulnRow
	Pager       pager
}

type findingRow struct {
	F     report.Finding
	Layer layerRef
}

type layerRow struct {
	Ref             layerRef
	Size            int64
	Packages        int
	Vulnerabilities int
	Findings        []report.Finding
}

type packageRow struct {
	P     report.Package
	Layer layerRef
}

type packageSection struct {
	Total int
	Query string
	// Severity and Fixable keep the vulnerability filters in the search form.
	Severity string
	Fixable  bool
	Shown    int
	Rows     []packageRow
	Pager    pager
}

type recordView struct {
	R quarantine.RecordJSON
	// Release: the viewer may release it (an admin, the record quarantined).
	Release bool
	// FieldID makes the reason field's id unique on the page.
	FieldID string
}

type quarantineSection struct {
	Mode    string
	Note    string
	Records []recordView
	Flash   string
	Error   string
}

type newSection struct {
	Checked   bool
	Note      string
	FirstPush bool
	Previous  *report.Report
	PrevLink  string
	Items     []*customsv1.AlertItem
	More      int
	// Count is how many items are new (all of them on a first push).
	Count int
}

type download struct {
	Label, Link, Note string
}

type platformRow struct {
	M    report.ManifestRef
	Link string
}

type imagePage struct {
	R          *report.Report
	Digest     string
	Index      bool
	Quarantine quarantineSection
	New        newSection
	Vulns      vulnSection
	Findings   []findingRow
	Layers     []layerRow
	Packages   packageSection
	Ignored    []report.IgnoredVulnerability
	Platforms  []platformRow
	Downloads  []download
	RepoLink   string
	Matched    string
}

func (h *handler) image(w http.ResponseWriter, r *http.Request) {
	digest := chi.URLParam(r, "digest")
	p := principalOf(r)
	if !digestRE.MatchString(digest) {
		h.notFound(w, r, "image "+digest)
		return
	}
	rep, err := h.visibleReport(r.Context(), p, digest)
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, r, "report of "+digest+" (yet)")
		return
	}
	if err != nil {
		h.unavailable(w, r, err, "report")
		return
	}
	data := h.frame(r, rep.Artifact.Repository+"@"+shortDigest(digest))
	body := h.imagePage(r, p, rep)
	if slices.ContainsFunc(body.Quarantine.Records, func(rv recordView) bool { return rv.Release }) {
		// The release form needs a CSRF token, so a session (an anonymous
		// one when the API is open to anonymous admins).
		data.CSRF = h.sessions.csrfToken(h.sessions.ensure(w, r))
	}
	data.Body = body
	h.render(w, r, http.StatusOK, "image", data)
}

// imagePage builds the report page: filters and paging run here, so a
// 3,000-package report renders a hundred rows.
func (h *handler) imagePage(r *http.Request, p apiauth.Principal, rep *report.Report) imagePage {
	q := r.URL.Query()
	digest := rep.Artifact.Digest
	body := imagePage{R: rep, Digest: digest, Index: len(rep.Manifests) > 0 || isIndex(rep.Artifact.MediaType),
		Ignored: rep.IgnoredVulnerabilities, RepoLink: repositoryLink(rep.Artifact.Repository)}
	if rep.VulnerabilityDB.MatchedAt != nil {
		body.Matched = rep.VulnerabilityDB.MatchedAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	layers := map[string]layerRef{}
	for i, l := range rep.Layers {
		layers[l.Digest] = layerRef{Known: true, Index: i + 1, Digest: l.Digest, CreatedBy: l.CreatedBy}
	}
	body.Quarantine = h.quarantineSection(r.Context(), p, rep, q)
	body.New = h.newSection(r.Context(), rep)
	body.Vulns = vulnerabilities(rep, q, layers)
	for _, f := range rep.Findings {
		body.Findings = append(body.Findings, findingRow{F: f, Layer: layers[f.Layer]})
	}
	body.Layers = layerRows(rep, layers)
	body.Packages = packages(rep, q, layers)
	for _, m := range rep.Manifests {
		body.Platforms = append(body.Platforms, platformRow{M: m, Link: "/images/" + m.Digest})
	}
	base := "/v1/reports/" + digest
	body.Downloads = []download{
		{Label: "Report (JSON)", Link: base, Note: "the v1 report"},
		{Label: "CycloneDX", Link: base + "?format=cyclonedx", Note: "SBOM"},
		{Label: "SPDX (JSON)", Link: base + "?format=spdx-json", Note: "SBOM"},
		{Label: "SARIF", Link: base + "?format=sarif", Note: "for code scanning tools"},
	}
	return body
}

func (h *handler) quarantineSection(ctx context.Context, p apiauth.Principal, rep *report.Report, q url.Values) quarantineSection {
	sec := quarantineSection{Mode: h.d.QuarantineMode}
	switch q.Get("released") {
	case "1":
		sec.Flash = "Released. The record below shows what each registry did."
	case "failed":
		sec.Error = "Released, but a registry did not undo its enforcement; the record below says which."
	}
	c := h.d.Quarantine
	if c == nil {
		sec.Note = "Quarantine is off (CUSTOMS_QUARANTINE=off)."
		return sec
	}
	if c.KV == nil {
		sec.Note = "Quarantine records are not read yet."
		return sec
	}
	recs, err := quarantine.List(ctx, c.KV, rep.Artifact.Digest)
	if err != nil {
		h.d.Log.Warn().Err(err).Str("digest", rep.Artifact.Digest).Msg("image page: quarantine records unavailable")
		sec.Note = "Quarantine records cannot be read right now."
		return sec
	}
	admin := p.Role.Allows(apiauth.RoleAdmin)
	for i, rec := range recs {
		if !p.CanSee(rec.GetRepository()) {
			continue
		}
		sec.Records = append(sec.Records, recordView{R: quarantine.View(rec), FieldID: "release-reason-" + strconv.Itoa(i+1),
			Release: admin && rec.GetState() == quarantine.StateQuarantined})
	}
	if len(sec.Records) == 0 {
		sec.Note = "No quarantine record: this image was never quarantined."
	}
	return sec
}

func (h *handler) newSection(ctx context.Context, rep *report.Report) newSection {
	if h.d.NewSince == nil || rep.Status != report.StatusComplete {
		return newSection{Note: "Only a complete scan is compared with the previous image."}
	}
	prev, items, err := h.d.NewSince(ctx, rep)
	if err != nil {
		h.d.Log.Warn().Err(err).Str("digest", rep.Artifact.Digest).Msg("image page: comparison with the previous image failed")
		return newSection{Note: "The previous image cannot be compared right now."}
	}
	sec := newSection{Checked: true, FirstPush: prev == nil, Previous: prev, Items: items, Count: len(items)}
	if prev == nil {
		// Everything is new: the sections below list it.
		sec.Items = nil
		return sec
	}
	sec.PrevLink = "/images/" + prev.Artifact.Digest
	if len(items) > newItemsShown {
		sec.Items, sec.More = items[:newItemsShown], len(items)-newItemsShown
	}
	return sec
}

// link is the page's URL with some query parameters changed ("" value:
// removed), a page number reset, and a fragment.
func link(q url.Values, fragment string, set ...string) string {
	v := url.Values{}
	for k, vs := range q {
		v[k] = slices.Clone(vs)
	}
	v.Del("released")
	for i := 0; i+1 < len(set); i += 2 {
		if set[i+1] == "" {
			v.Del(set[i])
		} else {
			v.Set(set[i], set[i+1])
		}
	}
	return "?" + v.Encode() + "#" + fragment
}

func pageOf(q url.Values, key string, total, per int, fragment string) (pager, int, int) {
	pages := max((total+per-1)/per, 1)
	n, err := strconv.Atoi(q.Get(key))
	if err != nil || n < 1 {
		n = 1
	}
	n = min(n, pages)
	lo, hi := (n-1)*per, min(n*per, total)
	pg := pager{Page: n, Pages: pages, Total: total, First: lo + 1, Last: hi}
	if total == 0 {
		pg.First = 0
	}
	if n > 1 {
		pg.PrevLink = link(q, fragment, key, strconv.Itoa(n-1))
	}
	if n < pages {
		pg.NextLink = link(q, fragment, key, strconv.Itoa(n+1))
	}
	return pg, lo, hi
}

// vulnerabilities filters by ?severity= and ?fixable=1 and pages by
// ?vpage=; the chips count under the fixable filter, so each says what
// clicking it shows.
func vulnerabilities(rep *report.Report, q url.Values, layers map[string]layerRef) vulnSection {
	sev := strings.ToUpper(q.Get("severity"))
	if !slices.Contains(severities, sev) {
		sev = ""
	}
	fixable := q.Get("fixable") == "1"
	sec := vulnSection{Total: len(rep.Vulnerabilities), Severity: sev, Fixable: fixable}
	counts := map[string]int{}
	var all int
	var rows []vulnRow
	for _, v := range rep.Vulnerabilities {
		if fixable && v.FixedVersion == "" {
			continue
		}
		s := reportstore.SeverityOf(v.Severity)
		counts[s]++
		all++
		if sev == "" || s == sev {
			rows = append(rows, vulnRow{V: v, Severity: s, Layer: layers[v.Layer]})
		}
	}
	slices.SortStableFunc(rows, func(a, b vulnRow) int {
		return cmp.Or(cmp.Compare(severityRank[b.Severity], severityRank[a.Severity]), cmp.Compare(a.V.Package, b.V.Package), cmp.Compare(a.V.ID, b.V.ID))
	})
	sec.Chips = append(sec.Chips, chip{Label: "All", Count: all, Link: link(q, "vulnerabilities", "severity", "", "vpage", ""), Current: sev == "", Class: "sev-all"})
	for _, s := range severities {
		sec.Chips = append(sec.Chips, chip{Label: s, Count: counts[s], Link: link(q, "vulnerabilities", "severity", s, "vpage", ""),
			Current: sev == s, Class: "sev-" + strings.ToLower(s)})
	}
	if fixable {
		sec.FixableLink = link(q, "vulnerabilities", "fixable", "", "vpage", "")
	} else {
		sec.FixableLink = link(q, "vulnerabilities", "fixable", "1", "vpage", "")
	}
	sec.Shown = len(rows)
	var lo, hi int
	sec.Pager, lo, hi = pageOf(q, "vpage", len(rows), vulnsPerPage, "vulnerabilities")
	sec.Rows = rows[lo:hi]
	return sec
}

// packages searches names, versions, purls and paths with ?q= and pages
// by ?page=.
func packages(rep *report.Report, q url.Values, layers map[string]layerRef) packageSection {
	needle := strings.ToLower(strings.TrimSpace(q.Get("q")))
	sec := packageSection{Total: len(rep.Packages), Query: strings.TrimSpace(q.Get("q")),
		Severity: q.Get("severity"), Fixable: q.Get("fixable") == "1"}
	var rows []packageRow
	for _, p := range rep.Packages {
		if needle != "" && !strings.Contains(strings.ToLower(p.Name), needle) && !strings.Contains(strings.ToLower(p.PURL), needle) &&
			!strings.Contains(strings.ToLower(p.Path), needle) && !strings.Contains(strings.ToLower(p.Version), needle) {
			continue
		}
		rows = append(rows, packageRow{P: p, Layer: layers[p.Layer]})
	}
	sec.Shown = len(rows)
	var lo, hi int
	sec.Pager, lo, hi = pageOf(q, "page", len(rows), packagesPerPage, "packages")
	sec.Rows = rows[lo:hi]
	return sec
}

// layerRows says what each layer added: packages, vulnerabilities and
// findings attributed to it.
func layerRows(rep *report.Report, layers map[string]layerRef) []layerRow {
	idx := map[string]int{}
	rows := make([]layerRow, len(rep.Layers))
	for i, l := range rep.Layers {
		rows[i] = layerRow{Ref: layers[l.Digest], Size: l.Size}
		idx[l.Digest] = i
	}
	for _, p := range rep.Packages {
		if i, ok := idx[p.Layer]; ok {
			rows[i].Packages++
		}
	}
	for _, v := range rep.Vulnerabilities {
		if i, ok := idx[v.Layer]; ok {
			rows[i].Vulnerabilities++
		}
	}
	for _, f := range rep.Findings {
		if i, ok := idx[f.Layer]; ok {
			rows[i].Findings = append(rows[i].Findings, f)
		}
	}
	return rows
}

// release ends a quarantine from the image page: admins only, the
// form's CSRF token checked, a reason required; the controller records
// who (the token's name) and why in the record and the audit stream.
func (h *handler) release(w http.ResponseWriter, r *http.Request) {
	digest := chi.URLParam(r, "digest")
	p, ok := h.principal(r)
	if !ok || !p.Role.Allows(apiauth.RoleRead) {
		h.fail(w, r, http.StatusUnauthorized, "Log in to release an image.")
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
	if _, ok := h.sessions.checkForm(w, r); !ok {
		h.fail(w, r, http.StatusForbidden, "The form expired or did not come from this site. Open the image page again.")
		return
	}
	if !p.Role.Allows(apiauth.RoleAdmin) {
		h.fail(w, r, http.StatusForbidden, "Releasing an image needs a token with the admin role.")
		return
	}
	if !digestRE.MatchString(digest) {
		h.notFound(w, r, "image "+digest)
		return
	}
	c := h.d.Quarantine
	if c == nil || c.KV == nil {
		h.fail(w, r, http.StatusConflict, "Quarantine is off or its records are not read yet.")
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if reason == "" {
		h.fail(w, r, http.StatusBadRequest, "A reason is required: say why the image may be pulled again; it is kept in the audit log.")
		return
	}
	ref := quarantine.Ref{Registry: r.PostForm.Get("registry"), Repository: r.PostForm.Get("repository"), Digest: digest}
	if !p.CanSee(ref.Repository) {
		h.notFound(w, r, "quarantine record of "+digest)
		return
	}
	by := p.Name
	if p.Anonymous() {
		by = "anonymous"
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	rec, err := c.Release(ctx, ref, reason, by)
	switch {
	case errors.Is(err, quarantine.ErrNotFound):
		h.notFound(w, r, "quarantine record of "+ref.String())
		return
	case rec == nil:
		h.unavailable(w, r, err, "quarantine record")
		return
	}
	h.d.Log.Info().Str("image", ref.String()).Str("by", by).Msg("image released from the web interface")
	flash := "1"
	if err != nil {
		h.d.Log.Warn().Err(err).Str("image", ref.String()).Msg("release enforcement failed")
		flash = "failed"
	}
	http.Redirect(w, r, "/images/"+digest+"?released="+flash+"#quarantine", http.StatusSeeOther)
}
