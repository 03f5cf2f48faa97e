// Package alerts decides what is new about an image and publishes it as
// an Alert on customs.events.alerts.<digest hex>: the notifier and the
// web page read the same list.
//
// A push is compared with the image it replaces: the previous digest of
// the same repository:tag, else the repository's newest earlier report;
// with none (a repository's first push) everything counts as new.
// Vulnerabilities compare by package and id or alias, findings by kind,
// rule and path, verdicts by rank. Nothing new and no worse verdict: no
// alert.
package alerts

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/results/internal/reportstore"
)

// Kinds of alert.
const (
	KindPush       = "push"
	KindRematch    = "rematch"
	KindQuarantine = "quarantine"
	KindRelease    = "release"
)

// Publisher builds and publishes alerts.
type Publisher struct {
	JS    jetstream.JetStream
	Store *reportstore.Store
}

var verdictRank = map[string]int{report.VerdictPass: 0, report.VerdictWarn: 1, report.VerdictQuarantine: 2}

var severityRank = map[string]int{"CRITICAL": 4, "HIGH": 3, "MEDIUM": 2, "LOW": 1}

// ErrChildrenPending: an index's platform reports are not all stored yet
// (they are handled concurrently); the caller retries.
var ErrChildrenPending = errors.New("platform reports of the index not stored yet")

// Push publishes what the stored complete report r brings that the image
// it replaces did not.
func (p *Publisher) Push(ctx context.Context, r *report.Report, quarantineMode string) error {
	if r.Status != report.StatusComplete {
		return nil // a failed scan is no verdict and no news
	}
	prev, news, err := p.NewSince(ctx, r)
	if err != nil {
		return err
	}
	a := &customsv1.Alert{
		Kind: KindPush, Registry: r.Artifact.Registry, Repository: r.Artifact.Repository, Digest: r.Artifact.Digest,
		Tags: r.Artifact.Tags, Platform: r.Artifact.Platform, Verdict: r.Verdict,
		VerdictRule: r.VerdictRule, VerdictReason: r.VerdictReason, At: timestamppb.New(pushedAt(r)),
		ReportPath: "/v1/reports/" + r.Artifact.Digest, DbVersion: r.VulnerabilityDB.Version,
	}
	if prev == nil {
		a.FirstPush = true
	} else {
		a.PreviousDigest, a.PreviousVerdict = prev.Artifact.Digest, prev.Verdict
	}
	worse := verdictRank[r.Verdict] > verdictRank[cmp.Or(a.PreviousVerdict, report.VerdictPass)]
	if len(news) == 0 && !worse {
		return nil
	}
	a.NewItems = news
	if r.Verdict == report.VerdictQuarantine && quarantineMode != "" && quarantineMode != "off" {
		a.Quarantine = &customsv1.AlertQuarantine{State: "quarantined", Mode: quarantineMode, Reason: r.VerdictReason, By: "customs"}
	}
	return p.publish(ctx, a)
}

// NewSince finds the image r replaces (nil: none, everything is new) and
// what r has that it did not (the web page shows the same list).
func (p *Publisher) NewSince(ctx context.Context, r *report.Report) (prev *report.Report, news []*customsv1.AlertItem, err error) {
	items, err := p.itemsOf(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	prev, err = p.Store.Previous(ctx, r)
	if err != nil {
		return nil, nil, fmt.Errorf("previous image of %s: %w", r.Artifact.Repository, err)
	}
	if prev == nil {
		return nil, items, nil
	}
	before, err := p.itemsOf(ctx, prev)
	if errors.Is(err, ErrChildrenPending) || errors.Is(err, store.ErrNotFound) {
		before = nil // an older index whose platforms are gone: compare with nothing
	} else if err != nil {
		return nil, nil, err
	}
	return prev, newItems(items, before), nil
}

// Rematch publishes the vulnerabilities a re-match found in a stored
// report (the NewVulnerabilities event's list).
func (p *Publisher) Rematch(ctx context.Context, r *report.Report, gained []report.Vulnerability, prevVerdict string) error {
	a := &customsv1.Alert{
		Kind: KindRematch, Registry: r.Artifact.Registry, Repository: r.Artifact.Repository, Digest: r.Artifact.Digest,
		Tags: r.Artifact.Tags, Platform: r.Artifact.Platform, Verdict: r.Verdict, PreviousVerdict: prevVerdict,
		VerdictRule: r.VerdictRule, VerdictReason: r.VerdictReason, At: timestamppb.Now(),
		ReportPath: "/v1/reports/" + r.Artifact.Digest, DbVersion: r.VulnerabilityDB.Version,
	}
	for _, v := range gained {
		a.NewItems = append(a.NewItems, vulnItem(v))
	}
	sortItems(a.NewItems)
	return p.publish(ctx, a)
}

// Quarantine publishes an operator's quarantine or a release (a push's
// own quarantine is part of its push alert).
func (p *Publisher) Quarantine(ctx context.Context, kind string, rec *customsv1.QuarantineRecord) error {
	a := &customsv1.Alert{
		Kind: kind, Registry: rec.GetRegistry(), Repository: rec.GetRepository(), Digest: rec.GetDigest(),
		At: timestamppb.Now(), ReportPath: "/v1/reports/" + rec.GetDigest(),
		Quarantine: &customsv1.AlertQuarantine{State: rec.GetState(), Mode: rec.GetMode(), Reason: rec.GetReason(), By: rec.GetQuarantinedBy()},
	}
	if kind == KindRelease {
		a.Quarantine.Reason, a.Quarantine.By = rec.GetReleaseReason(), rec.GetReleasedBy()
	}
	if cur, err := p.Store.Get(ctx, rec.GetDigest()); err == nil {
		a.Tags, a.Platform, a.Verdict, a.VerdictRule, a.VerdictReason = cur.Artifact.Tags, cur.Artifact.Platform, cur.Verdict, cur.VerdictRule, cur.VerdictReason
	}
	// Each change is news once: the generation and state make the id.
	a.DbVersion = ""
	return p.publishWithSalt(ctx, a, fmt.Sprintf("%d:%s", rec.GetGeneration(), rec.GetState()))
}

func (p *Publisher) publish(ctx context.Context, a *customsv1.Alert) error {
	return p.publishWithSalt(ctx, a, "")
}

func (p *Publisher) publishWithSalt(ctx context.Context, a *customsv1.Alert, salt string) error {
	a.Id = alertID(a, salt)
	data, err := proto.Marshal(a)
	if err != nil {
		return queue.Permanent(fmt.Errorf("encode alert: %w", err))
	}
	_, h, _ := strings.Cut(a.GetDigest(), ":")
	if _, err := p.JS.Publish(ctx, queue.AlertsSubject+h, data, jetstream.WithMsgID("alert:"+a.GetId())); err != nil {
		return fmt.Errorf("publish alert for %s: %w", a.GetDigest(), err)
	}
	return nil
}

func pushedAt(r *report.Report) time.Time {
	if r.RequestedAt != nil && !r.RequestedAt.IsZero() {
		return *r.RequestedAt
	}
	return r.FinishedAt
}

// alertID names the news: the same image, kind and new items always give
// the same id, so a redelivered report or a restarted results process
// makes one alert.
func alertID(a *customsv1.Alert, salt string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s/%s@%s\n%s\n%s\n%s\n", a.GetKind(), a.GetRegistry(), a.GetRepository(), a.GetDigest(), a.GetVerdict(), a.GetDbVersion(), salt)
	for _, it := range a.GetNewItems() {
		fmt.Fprintf(h, "%s\n", itemKey(it))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// itemsOf lists an image's vulnerabilities and findings; an index's are
// its platforms' together.
func (p *Publisher) itemsOf(ctx context.Context, r *report.Report) ([]*customsv1.AlertItem, error) {
	if len(r.Manifests) == 0 {
		return reportItems(r), nil
	}
	var out []*customsv1.AlertItem
	seen := map[string]bool{}
	for _, m := range r.Manifests {
		if m.Status == report.StatusFailed {
			continue
		}
		child, err := p.Store.Get(ctx, m.Digest)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s", ErrChildrenPending, m.Digest)
		}
		if err != nil {
			return nil, err
		}
		for _, it := range reportItems(child) {
			if k := itemKey(it); !seen[k] {
				seen[k] = true
				out = append(out, it)
			}
		}
	}
	sortItems(out)
	return out, nil
}

func reportItems(r *report.Report) []*customsv1.AlertItem {
	var out []*customsv1.AlertItem
	for _, v := range r.Vulnerabilities {
		out = append(out, vulnItem(v))
	}
	for _, f := range r.Findings {
		// Title and path only: excerpts (even redacted) stay in the report.
		out = append(out, &customsv1.AlertItem{Kind: f.Kind, Id: f.Rule, Severity: f.Severity, Path: f.Path, Title: f.Title})
	}
	sortItems(out)
	return out
}

func vulnItem(v report.Vulnerability) *customsv1.AlertItem {
	return &customsv1.AlertItem{Kind: "vulnerability", Id: v.ID, Aliases: v.Aliases, Severity: v.Severity,
		Package: v.Package, InstalledVersion: v.Version, FixedVersion: v.FixedVersion}
}

func itemKey(it *customsv1.AlertItem) string {
	if it.GetKind() == "vulnerability" {
		return "vulnerability\x00" + it.GetPackage() + "\x00" + it.GetId()
	}
	return it.GetKind() + "\x00" + it.GetId() + "\x00" + it.GetPath()
}

// newItems are the items of now that before did not have: a
// vulnerability is known when the same package had it under its id or any
// alias.
func newItems(now, before []*customsv1.AlertItem) []*customsv1.AlertItem {
	known := map[string]bool{}
	for _, it := range before {
		if it.GetKind() == "vulnerability" {
			for _, id := range append([]string{it.GetId()}, it.GetAliases()...) {
				known["vulnerability\x00"+it.GetPackage()+"\x00"+id] = true
			}
			continue
		}
		known[itemKey(it)] = true
	}
	var out []*customsv1.AlertItem
	for _, it := range now {
		if it.GetKind() == "vulnerability" {
			ids := append([]string{it.GetId()}, it.GetAliases()...)
			if slices.ContainsFunc(ids, func(id string) bool { return known["vulnerability\x00"+it.GetPackage()+"\x00"+id] }) {
				continue
			}
		} else if known[itemKey(it)] {
			continue
		}
		out = append(out, it)
	}
	return out
}

// sortItems orders most severe first, then by kind and id.
func sortItems(items []*customsv1.AlertItem) {
	slices.SortStableFunc(items, func(a, b *customsv1.AlertItem) int {
		if c := cmp.Compare(severityRank[b.GetSeverity()], severityRank[a.GetSeverity()]); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.GetKind(), b.GetKind()), cmp.Compare(a.GetId(), b.GetId()), cmp.Compare(a.GetPackage(), b.GetPackage()), cmp.Compare(a.GetPath(), b.GetPath()))
	})
}
