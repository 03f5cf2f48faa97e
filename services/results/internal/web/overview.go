package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/results/internal/reportstore"
)

// Page sizes.
const (
	repositoriesPerPage = 50
	// quarantinedShown bounds the overview's list of quarantined images.
	quarantinedShown = 20
)

// severities in the order pages show them, most severe first.
var severities = []string{report.SeverityCritical, report.SeverityHigh, report.SeverityMedium, report.SeverityLow, report.SeverityUnknown}

// sevCount is one severity's count in a row.
type sevCount struct {
	Severity string
	Count    int
}

func countsOf(m map[string]int) []sevCount {
	out := make([]sevCount, 0, len(severities))
	for _, s := range severities {
		out = append(out, sevCount{Severity: s, Count: m[s]})
	}
	return out
}

// repoRow is a repository on the overview.
type repoRow struct {
	Name, Link   string
	Summary      reportstore.Summary
	Counts       []sevCount
	CountsKnown  bool
	Index        bool
	ImageLink    string
	ScannedAt    time.Time
	HasScannedAt bool
}

// quarantinedRow is a quarantined image on the overview.
type quarantinedRow struct {
	Record quarantine.RecordJSON
	Link   string
	Repo   string
}

type dbState struct {
	Loaded  bool
	Version string
	BuiltAt time.Time
	Age     string
	// Old: built more than a week ago (worth a look).
	Old bool
}

type queueState struct {
	Known   bool
	Waiting uint64
	Running uint64
	Note    string
}

type overviewPage struct {
	Query          string
	Note           string
	Repositories   []repoRow
	NextLink       string
	FirstLink      string
	Quarantined    []quarantinedRow
	QuarantineMore int
	QuarantineMode string
	QuarantineNote string
	DB             dbState
	Queue          queueState
}

func (h *handler) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := principalOf(r)
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	body := overviewPage{Query: q, QuarantineMode: h.d.QuarantineMode}
	keep := p.CanSee
	if q != "" {
		if d, ok := digestQuery(q); ok {
			if _, found := h.visibleReport(ctx, p, d); found == nil {
				http.Redirect(w, r, "/images/"+d, http.StatusSeeOther)
				return
			} else if !errors.Is(found, store.ErrNotFound) {
				h.unavailable(w, r, found, "report")
				return
			}
			body.Note = "No image has the digest " + d + "."
		} else {
			needle := strings.ToLower(q)
			keep = func(repo string) bool { return p.CanSee(repo) && strings.Contains(repo, needle) }
		}
	}
	if body.Note == "" {
		page, err := h.d.Store.Repositories(ctx, r.URL.Query().Get("after"), repositoriesPerPage, keep)
		if err != nil {
			h.unavailable(w, r, err, "repository index")
			return
		}
		for _, s := range page.Repositories {
			body.Repositories = append(body.Repositories, repoRowOf(s))
		}
		if page.Next != "" {
			v := url.Values{"after": {page.Next}}
			if q != "" {
				v.Set("q", q)
			}
			body.NextLink = "/?" + v.Encode()
		}
		if r.URL.Query().Get("after") != "" {
			body.FirstLink = "/"
			if q != "" {
				body.FirstLink = "/?" + url.Values{"q": {q}}.Encode()
			}
		}
		if len(body.Repositories) == 0 && q != "" {
			body.Note = "No repository name contains " + q + "."
		}
	}
	body.Quarantined, body.QuarantineMore, body.QuarantineNote = h.quarantined(ctx, p)
	body.DB = h.dbState()
	body.Queue = h.queueState(ctx)
	data := h.frame(r, "Customs")
	data.Body = body
	h.render(w, r, http.StatusOK, "overview", data)
}

// digestQuery reads a search for a digest: sha256:<hex> or the bare hex.
func digestQuery(q string) (string, bool) {
	d := strings.ToLower(q)
	if !strings.HasPrefix(d, "sha256:") {
		d = "sha256:" + d
	}
	return d, digestRE.MatchString(d)
}

func repoRowOf(s reportstore.Summary) repoRow {
	row := repoRow{
		Name: s.Repository, Link: repositoryLink(s.Repository), Summary: s,
		Counts: countsOf(s.Severities), CountsKnown: s.Severities != nil || s.Vulnerabilities == 0,
		Index:     isIndex(s.MediaType),
		ImageLink: "/images/" + s.Digest, ScannedAt: s.FinishedAt, HasScannedAt: !s.FinishedAt.IsZero(),
	}
	return row
}

// isIndex reports whether a media type is an OCI index or a Docker
// manifest list.
func isIndex(mediaType string) bool {
	return strings.Contains(mediaType, "image.index") || strings.Contains(mediaType, "manifest.list")
}

// repositoryLink is the page of a repository (its name keeps its
// slashes: /repositories/team-a/app).
func repositoryLink(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/repositories/" + strings.Join(parts, "/")
}

// visibleReport reads digest's report when p may see it; ErrNotFound
// otherwise (the two must look alike).
func (h *handler) visibleReport(ctx context.Context, p apiauth.Principal, digest string) (*report.Report, error) {
	rep, err := h.d.Store.Get(ctx, digest)
	if err != nil {
		return nil, err
	}
	if !p.CanSee(rep.Artifact.Repository) {
		return nil, store.ErrNotFound
	}
	return rep, nil
}

// quarantined lists the images p may see whose record is quarantined,
// newest first: they lead the overview whatever page of repositories is
// shown.
func (h *handler) quarantined(ctx context.Context, p apiauth.Principal) ([]quarantinedRow, int, string) {
	q := h.d.Quarantine
	if q == nil {
		return nil, 0, "Quarantine is off (CUSTOMS_QUARANTINE=off): quarantine verdicts are shown, nothing is blocked."
	}
	if q.KV == nil {
		return nil, 0, "Quarantine records are not read yet."
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	recs, err := quarantine.List(ctx, q.KV, "")
	if err != nil {
		h.d.Log.Warn().Err(err).Msg("overview: quarantine records unavailable")
		return nil, 0, "Quarantine records cannot be read right now."
	}
	recs = slices.DeleteFunc(recs, func(r *customsv1.QuarantineRecord) bool {
		return r.GetState() != quarantine.StateQuarantined || !p.CanSee(r.GetRepository())
	})
	slices.SortFunc(recs, func(a, b *customsv1.QuarantineRecord) int {
		return b.GetQuarantinedAt().AsTime().Compare(a.GetQuarantinedAt().AsTime())
	})
	more := max(len(recs)-quarantinedShown, 0)
	rows := make([]quarantinedRow, 0, min(len(recs), quarantinedShown))
	for _, rec := range recs[:min(len(recs), quarantinedShown)] {
		rows = append(rows, quarantinedRow{Record: quarantine.View(rec), Link: "/images/" + rec.GetDigest(), Repo: repositoryLink(rec.GetRepository())})
	}
	return rows, more, ""
}

func (h *handler) dbState() dbState {
	if h.d.DB == nil {
		return dbState{}
	}
	db := h.d.DB()
	if db == nil {
		return dbState{}
	}
	built := db.Header().Built.UTC()
	age := h.d.Now().Sub(built)
	return dbState{Loaded: true, Version: db.Version(), BuiltAt: built, Age: humanDuration(age), Old: age > 7*24*time.Hour}
}

// queueState is the scanner's backlog: jobs not yet delivered plus jobs
// being scanned (JetStream consumer scanner on CUSTOMS_JOBS).
func (h *handler) queueState(ctx context.Context) queueState {
	if h.d.JetStream == nil {
		return queueState{Note: "not known"}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := h.d.JetStream.Consumer(ctx, queue.JobsStream, queue.ScannerConsumer)
	if err != nil {
		return queueState{Note: "not known: no scanner has connected yet"}
	}
	info, err := c.Info(ctx)
	if err != nil {
		h.d.Log.Warn().Err(err).Msg("overview: scanner consumer info unavailable")
		return queueState{Note: "not known right now"}
	}
	return queueState{Known: true, Waiting: info.NumPending, Running: uint64(info.NumAckPending)}
}

// humanDuration says how long ago, roughly.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "less than a minute"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	default:
		return plural(int(d/(24*time.Hour)), "day")
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// humanSize is a byte count for people.
func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// shortDigest is the first 12 hex digits of a digest.
func shortDigest(d string) string {
	_, hex, ok := strings.Cut(d, ":")
	if !ok {
		hex = d
	}
	return hex[:min(len(hex), 12)]
}

// osvURL links an advisory id to osv.dev, which knows OSV, GHSA, CVE
// and the distributions' ids.
func osvURL(id string) string { return "https://osv.dev/vulnerability/" + url.PathEscape(id) }
