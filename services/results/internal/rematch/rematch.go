// Package rematch matches stored inventories against a newly published
// vulnerability database: no registry traffic, only the bucket. Reports
// are rewritten with the new matches and verdict, and every manifest that
// gained vulnerabilities gets a NewVulnerabilities event for alerting.
package rematch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/verdict"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/pkg/vulndist"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/results/internal/reportstore"
)

// doneKey in the vulndist KV bucket names the last version every stored
// inventory was matched against, so a restart does not ask again.
const doneKey = "rematched"

// Rematcher re-matches stored inventories.
type Rematcher struct {
	JS    jetstream.JetStream
	Store *reportstore.Store
	// Rules carry the policy and ignore rules.
	Rules verdict.Rules
	// DB is the current database (the watcher's).
	DB func() *vulndb.DB
	// Concurrency bounds manifests re-matched at once (S3 round trips
	// dominate, so more than the CPU count helps).
	Concurrency int
	Log         zerolog.Logger
	// Observe, when set, sees each manifest's result (metrics).
	Observe func(Result)
	// Announce, when set, is told of each re-matched report (and its
	// verdict before) before it is rewritten, so a crash in between repeats
	// the announcement instead of losing it (results publishes
	// ReportStored: a re-match can turn a verdict into quarantine).
	Announce func(ctx context.Context, r *report.Report, previousVerdict string) error
	// Alert, when set, publishes the vulnerabilities a re-match found as
	// an alert (with the NewVulnerabilities event, before the rewrite).
	Alert func(ctx context.Context, r *report.Report, gained []report.Vulnerability, previousVerdict string) error
}

// Stats count one pass.
type Stats struct {
	Inventories int // inventories read
	Updated     int // reports rewritten
	Gained      int // manifests that gained vulnerabilities (events published)
	Skipped     int // already matched against this version, or superseded
}

// Request asks for a re-match against version (one request per version:
// the message id dedupes requests from several results processes). It
// does nothing when that version was already fully re-matched.
func Request(ctx context.Context, js jetstream.JetStream, version string) error {
	if b, err := vulndist.Ensure(ctx, js); err == nil {
		if e, err := b.KV.Get(ctx, doneKey); err == nil && string(e.Value()) == version {
			return nil
		}
	}
	data, err := proto.Marshal(&customsv1.RematchRequest{DbVersion: version, PublishedAt: timestamppb.Now()})
	if err != nil {
		return fmt.Errorf("encode rematch request: %w", err)
	}
	if _, err := js.Publish(ctx, queue.RematchSubjectPrefix+"all", data, jetstream.WithMsgID("rematch:"+version)); err != nil {
		return fmt.Errorf("publish rematch request: %w", err)
	}
	return nil
}

// Handle is the queue handler of RematchRequest.
func (m *Rematcher) Handle(ctx context.Context, msg jetstream.Msg) error {
	req := &customsv1.RematchRequest{}
	if err := proto.Unmarshal(msg.Data(), req); err != nil {
		return queue.Permanent(fmt.Errorf("decode rematch request: %w", err))
	}
	db := m.DB()
	switch {
	case db == nil:
		return fmt.Errorf("rematch %s: database not loaded yet", req.GetDbVersion())
	case db.Version() != req.GetDbVersion():
		// Either the watcher has not caught up (retry) or a newer
		// version superseded this one (its own request re-matches).
		if b, err := vulndist.Ensure(ctx, m.JS); err == nil {
			if p, _, ok, err := b.Current(ctx); err == nil && ok && p.Version != req.GetDbVersion() {
				return nil
			}
		}
		return fmt.Errorf("rematch %s: database %s loaded", req.GetDbVersion(), db.Version())
	}
	start := time.Now()
	st, err := m.All(ctx, db)
	if err != nil {
		return err
	}
	if b, err := vulndist.Ensure(ctx, m.JS); err == nil {
		_, _ = b.KV.Put(ctx, doneKey, []byte(db.Version()))
	}
	m.Log.Info().Str("db_version", db.Version()).Int("inventories", st.Inventories).Int("updated", st.Updated).
		Int("gained", st.Gained).Int("skipped", st.Skipped).Dur("took", time.Since(start)).Msg("re-match complete")
	return nil
}

// All re-matches every stored inventory against db. Manifests already
// matched against db are skipped, so a pass interrupted by a crash
// resumes where it stopped when the request is redelivered.
func (m *Rematcher) All(ctx context.Context, db *vulndb.DB) (Stats, error) {
	keys, err := m.Store.InventoryKeys(ctx)
	if err != nil {
		return Stats{}, err
	}
	var inv, upd, gained, skipped atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(m.Concurrency, 1))
	for _, k := range keys {
		g.Go(func() error {
			res, err := m.One(gctx, k, db)
			if err != nil {
				return err
			}
			if m.Observe != nil {
				m.Observe(res)
			}
			inv.Add(1)
			switch res {
			case Updated:
				upd.Add(1)
			case Gained:
				upd.Add(1)
				gained.Add(1)
			default:
				skipped.Add(1)
			}
			return nil
		})
	}
	err = g.Wait()
	st := Stats{Inventories: int(inv.Load()), Updated: int(upd.Load()), Gained: int(gained.Load()), Skipped: int(skipped.Load())}
	if err != nil {
		return st, err
	}
	return st, m.refreshIndexes(ctx, db)
}

// refreshIndexes brings index reports in line with their platforms'
// re-matched reports: each child's verdict, and the index verdict (the
// worst child's) decided again.
func (m *Rematcher) refreshIndexes(ctx context.Context, db *vulndb.DB) error {
	digests, err := m.Store.IndexDigests(ctx)
	if err != nil {
		return err
	}
	for _, d := range digests {
		r, err := m.Store.Get(ctx, d)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if r.VulnerabilityDB.Version == db.Version() {
			continue
		}
		for i, c := range r.Manifests {
			child, err := m.Store.Get(ctx, c.Digest)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			r.Manifests[i].Verdict = child.Verdict
		}
		built, now := db.Header().Built.UTC(), time.Now().UTC()
		r.VulnerabilityDB = report.VulnerabilityDB{Status: report.VulnDBChecked, Version: db.Version(), BuiltAt: &built, MatchedAt: &now}
		prevVerdict := r.Verdict
		r.Verdict, r.VerdictRule, r.VerdictReason = "", "", ""
		m.Rules.Policy.Apply(r)
		if m.Announce != nil {
			if err := m.Announce(ctx, r, prevVerdict); err != nil {
				return err
			}
		}
		if _, err := m.Store.Update(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// Result of one manifest.
type Result int

func (r Result) String() string {
	switch r {
	case Updated:
		return "updated"
	case Gained:
		return "gained"
	}
	return "skipped"
}

// Results of One.
const (
	Skipped Result = iota
	Updated
	Gained
)

// One re-matches the inventory stored at key.
func (m *Rematcher) One(ctx context.Context, key string, db *vulndb.DB) (Result, error) {
	inv, err := m.Store.GetInventory(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return Skipped, nil
	}
	if err != nil {
		return Skipped, err
	}
	r, err := m.Store.Get(ctx, inv.Artifact.Digest)
	if errors.Is(err, store.ErrNotFound) {
		return Skipped, nil // its report event is still being stored
	}
	if err != nil {
		return Skipped, err
	}
	if r.VulnerabilityDB.Version == db.Version() {
		return Skipped, nil
	}
	prevVersion, prevVerdict := r.VulnerabilityDB.Version, r.Verdict
	r.Packages = inv.Packages // the inventory is what is matched
	gained, changed := m.Rules.Rematch(r, db)
	if !changed {
		return Skipped, nil
	}
	// The event goes out before the report is rewritten: if the process
	// dies in between, the redelivered request finds the old report,
	// computes the same event and its message id drops the duplicate.
	if len(gained) > 0 {
		if err := m.publish(ctx, r, gained, prevVersion, prevVerdict); err != nil {
			return Skipped, err
		}
		if m.Alert != nil {
			if err := m.Alert(ctx, r, gained, prevVerdict); err != nil {
				return Skipped, err
			}
		}
	}
	if m.Announce != nil {
		if err := m.Announce(ctx, r, prevVerdict); err != nil {
			return Skipped, err
		}
	}
	stored, err := m.Store.Update(ctx, r)
	if err != nil {
		return Skipped, err
	}
	if !stored {
		return Skipped, nil // a newer scan replaced it meanwhile
	}
	if len(gained) > 0 {
		return Gained, nil
	}
	return Updated, nil
}

func (m *Rematcher) publish(ctx context.Context, r *report.Report, gained []report.Vulnerability, prevVersion, prevVerdict string) error {
	ev := &customsv1.NewVulnerabilities{
		Registry: r.Artifact.Registry, Repository: r.Artifact.Repository, Digest: r.Artifact.Digest,
		DbVersion: r.VulnerabilityDB.Version, PreviousDbVersion: prevVersion,
		Verdict: r.Verdict, PreviousVerdict: prevVerdict, MatchedAt: timestamppb.Now(),
	}
	for _, v := range gained {
		ev.NewVulnerabilities = append(ev.NewVulnerabilities, ToProto(v))
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return queue.Permanent(fmt.Errorf("encode event: %w", err))
	}
	_, hex, _ := strings.Cut(r.Artifact.Digest, ":")
	if _, err := m.JS.Publish(ctx, queue.NewVulnerabilitiesSubject+hex, data,
		jetstream.WithMsgID("new-vulnerabilities:"+r.Artifact.Digest+"@"+r.VulnerabilityDB.Version)); err != nil {
		return fmt.Errorf("publish new vulnerabilities of %s: %w", r.Artifact.Digest, err)
	}
	return nil
}

// ToProto converts a report vulnerability to its event form.
func ToProto(v report.Vulnerability) *customsv1.Vulnerability {
	return &customsv1.Vulnerability{
		Id: v.ID, Aliases: v.Aliases, Package: v.Package, Version: v.Version,
		FixedVersion: v.FixedVersion, Severity: v.Severity, Ecosystem: v.Ecosystem, Purl: v.PURL,
		SourceName: v.SourceName, SourceVersion: v.SourceVersion,
	}
}
