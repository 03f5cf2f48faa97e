// Package reportstore lays reports out in a bucket:
//
//	reports/sha256/<hex>.json                      the latest report of a manifest
//	inventories/sha256/<hex>.json                  its package inventory (what re-matching reads)
//	indexes/sha256/<hex>                           marks an index report (re-matching refreshes its children's verdicts)
//	repositories/<escaped repo>/<inv-time>-<hex>.json  a summary per scan, newest push first in lexical order
//	attempts/sha256/<hex>/<inv-time>.json          failed scans of a digest that has a complete report
//	repo-index/<escaped repo>.json                 the summary of the repository's newest push (Repositories)
//
// The repository index exists because listing the first-level names under
// repositories/ means reading every summary key of every repository: one
// small object per repository, rewritten only when its newest push changes,
// lists 10,000 repositories in a few requests, a page at a time.
package reportstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
)

// Summary is what the repository listing returns per report.
type Summary struct {
	Registry   string   `json:"registry"`
	Repository string   `json:"repository"`
	Digest     string   `json:"digest"`
	Tags       []string `json:"tags"`
	MediaType  string   `json:"media_type"`
	Platform   string   `json:"platform"`
	Status     string   `json:"status"`
	Verdict    string   `json:"verdict"`
	Packages   int      `json:"packages"`
	// Vulnerabilities counts reported (not ignored) vulnerabilities.
	Vulnerabilities int `json:"vulnerabilities"`
	// Severities counts them by severity (absent in summaries written
	// before it was added, and for an index, whose platforms have them).
	Severities map[string]int `json:"severities,omitempty"`
	Findings   int            `json:"findings"`
	FinishedAt time.Time      `json:"finished_at"`
	// RequestedAt is when the push was received (listings order by it).
	RequestedAt *time.Time `json:"requested_at,omitempty"`
	Report      string     `json:"report"` // API path of the full report
}

// Store reads and writes reports.
type Store struct {
	b store.Bucket
	// locks serialize the read-modify-write of one digest's objects
	// within this process (events for one digest handled by two slots).
	locks [64]sync.Mutex
	// repoLocks do the same for a repository's index object (two digests
	// of one repository stored at once); separate from locks, which are
	// held while they are taken.
	repoLocks [64]sync.Mutex
}

// New wraps a bucket.
func New(b store.Bucket) *Store { return &Store{b: b} }

func (s *Store) lock(digest string) func() {
	h := fnv.New32a()
	h.Write([]byte(digest))
	m := &s.locks[h.Sum32()%uint32(len(s.locks))]
	m.Lock()
	return m.Unlock
}

// reportKey is where the report of digest lives.
func reportKey(digest string) string {
	algo, hex, _ := strings.Cut(digest, ":")
	return "reports/" + algo + "/" + hex + ".json"
}

func repoPrefix(repository string) string {
	return "repositories/" + url.PathEscape(repository) + "/"
}

// invTime orders keys newest first in lexical order.
func invTime(t time.Time) string { return fmt.Sprintf("%019d", uint64(math.MaxInt64-t.UnixNano())) }

// pushedAt is when the push behind r was received; reports from scanners
// that did not say fall back to when the scan finished.
func pushedAt(r *report.Report) time.Time {
	if r.RequestedAt != nil && !r.RequestedAt.IsZero() {
		return *r.RequestedAt
	}
	return r.FinishedAt
}

func summaryKey(r *report.Report) string {
	_, hex, _ := strings.Cut(r.Artifact.Digest, ":")
	return repoPrefix(r.Artifact.Repository) + invTime(pushedAt(r)) + "-" + hex + ".json"
}

// attemptKey is where a failed scan of digest, kept beside its complete
// report, is recorded.
func attemptKey(digest string, finished time.Time) string {
	algo, hex, _ := strings.Cut(digest, ":")
	return "attempts/" + algo + "/" + hex + "/" + invTime(finished) + ".json"
}

// PutResult says what Put did with a report.
type PutResult int

const (
	// Stale: a newer report of the digest is stored; nothing changed.
	Stale PutResult = iota
	// Stored: the report is now the digest's report.
	Stored
	// Attempt: a failed scan of a digest with a complete report, kept as an
	// attempt record and noted on the report (whose verdict stands).
	Attempt
)

func (p PutResult) String() string {
	switch p {
	case Stored:
		return "stored"
	case Attempt:
		return "attempt"
	default:
		return "stale"
	}
}

// Put stores r idempotently: writing the same report twice leaves the same
// objects, an older report never replaces a newer one, and a failed scan
// never replaces a complete report (a quarantine verdict cannot be erased
// by a later 404, timeout or refused redirect). previous is the verdict
// of the report it replaced ("" when none).
func (s *Store) Put(ctx context.Context, r *report.Report) (res PutResult, previous string, err error) {
	return s.put(ctx, r, true)
}

// Update stores a re-matched report: as Put, but the inventory (which a
// re-match reads and does not change) is not written again.
func (s *Store) Update(ctx context.Context, r *report.Report) (stored bool, err error) {
	res, _, err := s.put(ctx, r, false)
	return res == Stored, err
}

func (s *Store) put(ctx context.Context, r *report.Report, withInventory bool) (res PutResult, previous string, err error) {
	r.Normalize()
	defer s.lock(r.Artifact.Digest)()
	if old, err := s.Get(ctx, r.Artifact.Digest); err == nil {
		previous = old.Verdict
		if r.Status == report.StatusFailed && old.Status == report.StatusComplete {
			res, err := s.putAttempt(ctx, old, r)
			return res, previous, err
		}
		if old.FinishedAt.After(r.FinishedAt) {
			return Stale, previous, nil
		}
		if r.LatestAttempt == nil && old.LatestAttempt != nil && old.LatestAttempt.FinishedAt.After(r.FinishedAt) {
			r.LatestAttempt = old.LatestAttempt
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return Stale, previous, err
	}
	body, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return Stale, previous, fmt.Errorf("encode report: %w", err)
	}
	// The summary goes first: a crash between the two writes leaves a
	// listing entry whose report is the previous one, never a report that
	// is missing from the listing.
	if err := s.putSummary(ctx, r); err != nil {
		return Stale, previous, err
	}
	// The inventory goes before the report for the same reason: a report
	// is never stored without the inventory a re-match needs.
	if withInventory && len(r.Manifests) > 0 {
		if err := s.b.Put(ctx, indexKey(r.Artifact.Digest), []byte(r.Artifact.Digest), "text/plain"); err != nil {
			return Stale, previous, err
		}
	}
	if withInventory && r.Status == report.StatusComplete && len(r.Manifests) == 0 {
		inv, err := json.Marshal(inventoryOf(r))
		if err != nil {
			return Stale, previous, fmt.Errorf("encode inventory: %w", err)
		}
		if err := s.b.Put(ctx, inventoryKey(r.Artifact.Digest), inv, "application/json"); err != nil {
			return Stale, previous, err
		}
	}
	if err := s.b.Put(ctx, reportKey(r.Artifact.Digest), body, "application/json"); err != nil {
		return Stale, previous, err
	}
	return Stored, previous, nil
}

// storedSummary is a listing entry as stored: the summary plus what the
// web page compares consecutive images by (not served by the API).
type storedSummary struct {
	Summary
	// VulnKeys identify the vulnerabilities (see vulnKeys).
	VulnKeys []string `json:"vuln_keys,omitempty"`
}

func summaryOf(r *report.Report) Summary {
	sum := Summary{
		Registry: r.Artifact.Registry, Repository: r.Artifact.Repository, Digest: r.Artifact.Digest,
		Tags: r.Artifact.Tags, MediaType: r.Artifact.MediaType, Platform: r.Artifact.Platform,
		Status: r.Status, Verdict: r.Verdict, Packages: len(r.Packages), Findings: len(r.Findings) + r.FindingsOmitted,
		Vulnerabilities: len(r.Vulnerabilities),
		FinishedAt:      r.FinishedAt, RequestedAt: r.RequestedAt, Report: "/v1/reports/" + r.Artifact.Digest,
	}
	if len(r.Vulnerabilities) > 0 {
		sum.Severities = map[string]int{}
		for _, v := range r.Vulnerabilities {
			sum.Severities[SeverityOf(v.Severity)]++
		}
	}
	return sum
}

// SeverityOf is a vulnerability's severity as pages count it: an empty or
// unrecognised one is UNKNOWN.
func SeverityOf(s string) string {
	switch s {
	case report.SeverityCritical, report.SeverityHigh, report.SeverityMedium, report.SeverityLow:
		return s
	}
	return report.SeverityUnknown
}

func (s *Store) putSummary(ctx context.Context, r *report.Report) error {
	sum := summaryOf(r)
	sb, err := json.Marshal(storedSummary{Summary: sum, VulnKeys: vulnKeys(r.Vulnerabilities)})
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	if err := s.b.Put(ctx, summaryKey(r), sb, "application/json"); err != nil {
		return err
	}
	return s.putRepoIndex(ctx, sum)
}

// vulnKeys identifies each vulnerability of a report for comparison with
// another image's, as alerts does: one entry per package and id, holding
// short hashes of the package with the id and with each alias, joined by
// "+" (a vulnerability is known to the other image when any of them is).
// 11 characters per id keep a summary of 500 vulnerabilities near 10 KB.
func vulnKeys(vs []report.Vulnerability) []string {
	if len(vs) == 0 {
		return nil
	}
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		parts := make([]string, 0, 1+len(v.Aliases))
		for _, id := range append([]string{v.ID}, v.Aliases...) {
			h := sha256.Sum256([]byte(v.Package + "\x00" + id))
			parts = append(parts, base64.RawURLEncoding.EncodeToString(h[:8]))
		}
		out = append(out, strings.Join(parts, "+"))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// NewVulnerabilities counts the vulnerabilities (VulnKeys) of now that
// before did not have under their id or any alias; -1 when either image
// has no keys recorded but some vulnerabilities (a summary written before
// keys were kept).
func NewVulnerabilities(now, before Image) int {
	if len(now.VulnKeys) == 0 && now.Vulnerabilities > 0 || len(before.VulnKeys) == 0 && before.Vulnerabilities > 0 {
		return -1
	}
	known := map[string]bool{}
	for _, k := range before.VulnKeys {
		for p := range strings.SplitSeq(k, "+") {
			known[p] = true
		}
	}
	n := 0
	for _, k := range now.VulnKeys {
		seen := false
		for p := range strings.SplitSeq(k, "+") {
			seen = seen || known[p]
		}
		if !seen {
			n++
		}
	}
	return n
}

// repoIndexPrefix holds one object per repository (see Repositories).
const repoIndexPrefix = "repo-index/"

func repoIndexKey(repository string) string {
	return repoIndexPrefix + url.PathEscape(repository) + ".json"
}

func summaryPushedAt(s Summary) time.Time {
	if s.RequestedAt != nil && !s.RequestedAt.IsZero() {
		return *s.RequestedAt
	}
	return s.FinishedAt
}

// putRepoIndex makes sum its repository's index entry unless the entry
// names a newer push of another digest (a slow scan of an older push, a
// re-match of an older image). It reads the entry first and writes only
// a change: a redelivered report costs one GET. Two results processes
// storing two pushes of one repository in the same instant may leave the
// older one named until that repository's next store.
func (s *Store) putRepoIndex(ctx context.Context, sum Summary) error {
	h := fnv.New32a()
	h.Write([]byte(sum.Repository))
	m := &s.repoLocks[h.Sum32()%uint32(len(s.repoLocks))]
	m.Lock()
	defer m.Unlock()
	key := repoIndexKey(sum.Repository)
	old, err := s.b.Get(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		var cur Summary
		if json.Unmarshal(old, &cur) == nil && summaryPushedAt(cur).After(summaryPushedAt(sum)) {
			if cur.Digest != sum.Digest {
				return nil
			}
			// The same image, stored again (a re-match) after a later push
			// of it added tags: keep that push's time and tags.
			sum.RequestedAt, sum.Tags = cur.RequestedAt, cur.Tags
		}
	}
	body, err := json.Marshal(sum)
	if err != nil {
		return fmt.Errorf("encode repository index entry: %w", err)
	}
	if bytes.Equal(body, old) {
		return nil
	}
	return s.b.Put(ctx, key, body, "application/json")
}

// afterLister is a bucket that can start a listing after a key
// (store.S3); others are listed from the start.
type afterLister interface {
	ListAfter(ctx context.Context, prefix, after string, limit int) ([]string, error)
}

// RepositoryPage is one page of Repositories.
type RepositoryPage struct {
	// Repositories are the summaries of each repository's newest push, by
	// repository name.
	Repositories []Summary
	// Next is the after of the next page; "" on the last page.
	Next string
}

// repositoryListChunk is how many index keys one listing request reads.
const repositoryListChunk = 1000

// Repositories returns up to limit repositories whose names sort after
// after and that keep accepts (nil: all), each with the summary of its
// newest push. Names are read from the index keys, so keep (a token's
// scope, a search) costs no object reads; only the page's entries are
// read, concurrently.
func (s *Store) Repositories(ctx context.Context, after string, limit int, keep func(repository string) bool) (RepositoryPage, error) {
	limit = max(limit, 1)
	var names []string
	start := ""
	if after != "" {
		start = repoIndexKey(after)
	}
	al, paged := s.b.(afterLister)
	// The first request asks for one page (plus one, to know there is a
	// next): without a filter that is all it needs.
	chunk := min(limit+1, repositoryListChunk)
scan:
	for {
		var keys []string
		var err error
		if paged {
			keys, err = al.ListAfter(ctx, repoIndexPrefix, start, chunk)
		} else {
			keys, err = s.b.List(ctx, repoIndexPrefix, 0)
			keys = slices.DeleteFunc(keys, func(k string) bool { return start != "" && k <= start })
		}
		if err != nil {
			return RepositoryPage{}, err
		}
		for _, k := range keys {
			name, err := url.PathUnescape(strings.TrimSuffix(strings.TrimPrefix(k, repoIndexPrefix), ".json"))
			if err != nil || keep != nil && !keep(name) {
				continue
			}
			if names = append(names, name); len(names) > limit {
				break scan
			}
		}
		if !paged || len(keys) < chunk {
			break
		}
		start, chunk = keys[len(keys)-1], repositoryListChunk
	}
	var page RepositoryPage
	if len(names) > limit {
		names = names[:limit]
		page.Next = names[limit-1]
	}
	page.Repositories = make([]Summary, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, name := range names {
		g.Go(func() error {
			raw, err := s.b.Get(gctx, repoIndexKey(name))
			if err != nil {
				return err
			}
			if err := json.Unmarshal(raw, &page.Repositories[i]); err != nil {
				return fmt.Errorf("decode repository index entry of %s: %w", name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return RepositoryPage{}, err
	}
	return page, nil
}

// putAttempt keeps failed beside the complete report old: recorded under
// attempts/, noted as old's LatestAttempt, and listed in its own
// repository when that is not old's (the push there did fail).
func (s *Store) putAttempt(ctx context.Context, old, failed *report.Report) (PutResult, error) {
	body, err := json.MarshalIndent(failed, "", "  ")
	if err != nil {
		return Stale, fmt.Errorf("encode attempt: %w", err)
	}
	if err := s.b.Put(ctx, attemptKey(failed.Artifact.Digest, failed.FinishedAt), body, "application/json"); err != nil {
		return Stale, err
	}
	if failed.Artifact.Repository != old.Artifact.Repository {
		if err := s.putSummary(ctx, failed); err != nil {
			return Stale, err
		}
	}
	if old.LatestAttempt != nil && !failed.FinishedAt.After(old.LatestAttempt.FinishedAt) {
		return Attempt, nil // the same or an older attempt: already noted
	}
	old.LatestAttempt = &report.Attempt{
		Status: failed.Status, Error: failed.Error, Registry: failed.Artifact.Registry,
		Repository: failed.Artifact.Repository, FinishedAt: failed.FinishedAt,
	}
	ob, err := json.MarshalIndent(old, "", "  ")
	if err != nil {
		return Stale, fmt.Errorf("encode report: %w", err)
	}
	if err := s.b.Put(ctx, reportKey(old.Artifact.Digest), ob, "application/json"); err != nil {
		return Stale, err
	}
	return Attempt, nil
}

// AddTags records that a push named tags for digest, already scanned in
// repository: the tags join the report's, and the repository's listing
// gets an entry at the push time, so each tag moves to the digest it now
// points to. It returns the stored report (with the tags); ErrNotFound
// when the digest has no report yet.
func (s *Store) AddTags(ctx context.Context, digest, repository string, tags []string, pushed time.Time) (*report.Report, error) {
	defer s.lock(digest)()
	r, err := s.Get(ctx, digest)
	if err != nil {
		return nil, err
	}
	if r.Artifact.Repository == repository {
		merged := append(append([]string{}, r.Artifact.Tags...), tags...)
		slices.Sort(merged)
		merged = slices.Compact(merged)
		if !slices.Equal(merged, r.Artifact.Tags) {
			r.Artifact.Tags = merged
			body, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return nil, fmt.Errorf("encode report: %w", err)
			}
			if err := s.b.Put(ctx, reportKey(digest), body, "application/json"); err != nil {
				return nil, err
			}
		}
	}
	// The listing reads the newest entry per digest: it carries all the
	// digest's tags, and a newer push of another digest takes a tag away.
	entry := *r
	if entry.Artifact.Repository != repository {
		entry.Artifact.Repository, entry.Artifact.Tags = repository, tags
	}
	entry.RequestedAt = &pushed
	if err := s.putSummary(ctx, &entry); err != nil {
		return nil, err
	}
	return r, nil
}

// Attempts returns the failed scans recorded beside digest's complete
// report, newest first.
func (s *Store) Attempts(ctx context.Context, digest string, limit int) ([]*report.Report, error) {
	algo, hex, _ := strings.Cut(digest, ":")
	keys, err := s.b.List(ctx, "attempts/"+algo+"/"+hex+"/", limit)
	if err != nil {
		return nil, err
	}
	out := make([]*report.Report, 0, len(keys))
	for _, k := range keys {
		raw, err := s.b.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		var r report.Report
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("decode attempt %s: %w", k, err)
		}
		out = append(out, &r)
	}
	return out, nil
}

// indexPrefix holds a marker per stored index report.
const indexPrefix = "indexes/"

// indexKey is the marker of the index report of digest.
func indexKey(digest string) string {
	algo, hex, _ := strings.Cut(digest, ":")
	return indexPrefix + algo + "/" + hex
}

// IndexDigests lists the digests of stored index reports.
func (s *Store) IndexDigests(ctx context.Context) ([]string, error) {
	keys, err := s.b.List(ctx, indexPrefix, 0)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		rest := strings.TrimPrefix(k, indexPrefix)
		if algo, hex, ok := strings.Cut(rest, "/"); ok {
			out = append(out, algo+":"+hex)
		}
	}
	return out, nil
}

// inventoryPrefix holds every stored inventory.
const inventoryPrefix = "inventories/"

// inventoryKey is where the inventory of digest lives.
func inventoryKey(digest string) string {
	algo, hex, _ := strings.Cut(digest, ":")
	return inventoryPrefix + algo + "/" + hex + ".json"
}

// Inventory is the package inventory (SBOM) of one scanned manifest: what
// matching needs, without findings.
type Inventory struct {
	SchemaVersion string           `json:"schema_version"`
	Artifact      report.Artifact  `json:"artifact"`
	OS            report.OS        `json:"os"`
	Layers        []report.Layer   `json:"layers"`
	Packages      []report.Package `json:"packages"`
	ScannedAt     time.Time        `json:"scanned_at"`
	Scanner       report.Scanner   `json:"scanner"`
}

// inventoryOf extracts r's inventory.
func inventoryOf(r *report.Report) Inventory {
	return Inventory{
		SchemaVersion: report.SchemaVersion, Artifact: r.Artifact, OS: r.OS,
		Layers: r.Layers, Packages: r.Packages, ScannedAt: r.FinishedAt, Scanner: r.Scanner,
	}
}

// GetInventory reads a stored inventory by key.
func (s *Store) GetInventory(ctx context.Context, key string) (*Inventory, error) {
	raw, err := s.b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	var inv Inventory
	if err := json.Unmarshal(raw, &inv); err != nil {
		return nil, fmt.Errorf("decode inventory %s: %w", key, err)
	}
	return &inv, nil
}

// InventoryKeys lists every stored inventory.
func (s *Store) InventoryKeys(ctx context.Context) ([]string, error) {
	return s.b.List(ctx, inventoryPrefix, 0)
}

// GetInventoryRaw returns the stored JSON of digest's inventory.
func (s *Store) GetInventoryRaw(ctx context.Context, digest string) ([]byte, error) {
	return s.b.Get(ctx, inventoryKey(digest))
}

// GetRaw returns the stored JSON of digest's report.
func (s *Store) GetRaw(ctx context.Context, digest string) ([]byte, error) {
	return s.b.Get(ctx, reportKey(digest))
}

// Get returns digest's report.
func (s *Store) Get(ctx context.Context, digest string) (*report.Report, error) {
	raw, err := s.GetRaw(ctx, digest)
	if err != nil {
		return nil, err
	}
	var r report.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("decode stored report %s: %w", digest, err)
	}
	return &r, nil
}

// List returns summaries of repository's reports, newest first, one per
// digest (its latest scan).
func (s *Store) List(ctx context.Context, repository string, limit int) ([]Summary, error) {
	images, err := s.Images(ctx, repository, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Summary, len(images))
	for i := range images {
		out[i] = images[i].Summary
	}
	return out, nil
}

// Image is a listing entry as the web page shows it: Summary (whose Tags
// are those no newer push took), the tags its push named, and the keys of
// its vulnerabilities (see NewVulnerabilities).
type Image struct {
	Summary
	PushedTags []string
	VulnKeys   []string
}

// Images is List with the tags each push named and its vulnerability keys.
func (s *Store) Images(ctx context.Context, repository string, limit int) ([]Image, error) {
	// Older scans of the same digest repeat in the listing; read a bounded
	// window rather than the whole prefix.
	keys, err := s.b.List(ctx, repoPrefix(repository), max(limit, 1)*10)
	if err != nil {
		return nil, err
	}
	out := []Image{}
	seen := map[string]bool{}
	// A tag points at one digest: the newest push that named it. Older
	// entries keep their other tags.
	tagged := map[string]bool{}
	for _, k := range keys {
		if limit > 0 && len(out) >= limit {
			break
		}
		_, hex, ok := strings.Cut(strings.TrimSuffix(k[strings.LastIndexByte(k, '/')+1:], ".json"), "-")
		if !ok || seen[hex] {
			continue
		}
		seen[hex] = true
		raw, err := s.b.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		var sum storedSummary
		if err := json.Unmarshal(raw, &sum); err != nil {
			return nil, fmt.Errorf("decode summary %s: %w", k, err)
		}
		img := Image{Summary: sum.Summary, PushedTags: sum.Tags, VulnKeys: sum.VulnKeys}
		tags := []string{}
		for _, t := range sum.Tags {
			if !tagged[t] {
				tagged[t] = true
				tags = append(tags, t)
			}
		}
		img.Tags = tags
		out = append(out, img)
	}
	return out, nil
}

// previousWindow bounds how many earlier pushes Previous reads.
const previousWindow = 200

// Previous returns the report of the image r replaces in its repository:
// the newest earlier push that named one of r's tags, else the newest
// earlier push of another digest; nil when r is the repository's first.
func (s *Store) Previous(ctx context.Context, r *report.Report) (*report.Report, error) {
	_, self, _ := strings.Cut(r.Artifact.Digest, ":")
	mine := invTime(pushedAt(r))
	keys, err := s.b.List(ctx, repoPrefix(r.Artifact.Repository), 25*previousWindow)
	if err != nil {
		return nil, err
	}
	var fallback string
	read := 0
	for _, k := range keys {
		base := strings.TrimSuffix(k[strings.LastIndexByte(k, '/')+1:], ".json")
		inv, hex, ok := strings.Cut(base, "-")
		// Lexical order is push order, newest first: later pushes sort
		// before r's entry.
		if !ok || hex == self || inv <= mine {
			continue
		}
		if fallback == "" {
			fallback = hex
		}
		if len(r.Artifact.Tags) == 0 {
			break
		}
		if read++; read > previousWindow {
			break
		}
		raw, err := s.b.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var sum Summary
		if err := json.Unmarshal(raw, &sum); err != nil {
			return nil, fmt.Errorf("decode summary %s: %w", k, err)
		}
		if slices.ContainsFunc(sum.Tags, func(t string) bool { return slices.Contains(r.Artifact.Tags, t) }) {
			return s.Get(ctx, "sha256:"+hex)
		}
	}
	if fallback == "" {
		return nil, nil
	}
	prev, err := s.Get(ctx, "sha256:"+fallback)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return prev, err
}
