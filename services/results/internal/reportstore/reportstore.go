// Package reportstore lays reports out in a bucket:
//
//	reports/sha256/<hex>.json                      the latest report of a manifest
//	inventories/sha256/<hex>.json                  its package inventory (what re-matching reads)
//	indexes/sha256/<hex>                           marks an index report (re-matching refreshes its children's verdicts)
//	repositories/<escaped repo>/<inv-time>-<hex>.json  a summary per scan, newest push first in lexical order
//	attempts/sha256/<hex>/<inv-time>.json          failed scans of a digest that has a complete report
package reportstore

import (
	"context"
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
	Vulnerabilities int       `json:"vulnerabilities"`
	Findings        int       `json:"findings"`
	FinishedAt      time.Time `json:"finished_at"`
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

func (s *Store) putSummary(ctx context.Context, r *report.Report) error {
	sum := Summary{
		Registry: r.Artifact.Registry, Repository: r.Artifact.Repository, Digest: r.Artifact.Digest,
		Tags: r.Artifact.Tags, MediaType: r.Artifact.MediaType, Platform: r.Artifact.Platform,
		Status: r.Status, Verdict: r.Verdict, Packages: len(r.Packages), Findings: len(r.Findings) + r.FindingsOmitted,
		Vulnerabilities: len(r.Vulnerabilities),
		FinishedAt:      r.FinishedAt, RequestedAt: r.RequestedAt, Report: "/v1/reports/" + r.Artifact.Digest,
	}
	sb, err := json.Marshal(sum)
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	return s.b.Put(ctx, summaryKey(r), sb, "application/json")
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
// points to. ErrNotFound when the digest has no report yet.
func (s *Store) AddTags(ctx context.Context, digest, repository string, tags []string, pushed time.Time) error {
	defer s.lock(digest)()
	r, err := s.Get(ctx, digest)
	if err != nil {
		return err
	}
	if r.Artifact.Repository == repository {
		merged := append(append([]string{}, r.Artifact.Tags...), tags...)
		slices.Sort(merged)
		merged = slices.Compact(merged)
		if !slices.Equal(merged, r.Artifact.Tags) {
			r.Artifact.Tags = merged
			body, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return fmt.Errorf("encode report: %w", err)
			}
			if err := s.b.Put(ctx, reportKey(digest), body, "application/json"); err != nil {
				return err
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
	return s.putSummary(ctx, &entry)
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
	// Older scans of the same digest repeat in the listing; read a bounded
	// window rather than the whole prefix.
	keys, err := s.b.List(ctx, repoPrefix(repository), max(limit, 1)*10)
	if err != nil {
		return nil, err
	}
	out := []Summary{}
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
		var sum Summary
		if err := json.Unmarshal(raw, &sum); err != nil {
			return nil, fmt.Errorf("decode summary %s: %w", k, err)
		}
		tags := []string{}
		for _, t := range sum.Tags {
			if !tagged[t] {
				tagged[t] = true
				tags = append(tags, t)
			}
		}
		sum.Tags = tags
		out = append(out, sum)
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
