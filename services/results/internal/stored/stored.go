// Package stored announces stored reports: a ReportStored event on
// customs.events.stored.<digest hex> and the digest's entry in the
// verdicts bucket (what the gate reads for CUSTOMS_GATE_UNSCANNED=deny).
// What acts on verdicts (quarantine, alerts) reads these, never the
// scanner's own event: a verdict counts once it is stored.
package stored

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// Causes of a ReportStored event.
const (
	CauseScan    = "scan"
	CauseRematch = "rematch"
	CausePush    = "push"
)

// Announcer publishes ReportStored events.
type Announcer struct {
	JS       jetstream.JetStream
	Verdicts jetstream.KeyValue
}

// Event builds the event of report r; prev is the verdict it replaced.
func Event(r *report.Report, prev, cause string) *customsv1.ReportStored {
	body, _ := json.Marshal(r) // a report always encodes
	sum := sha256.Sum256(body)
	ev := &customsv1.ReportStored{
		Registry: r.Artifact.Registry, Repository: r.Artifact.Repository, Digest: r.Artifact.Digest,
		Status: r.Status, Verdict: r.Verdict, PreviousVerdict: prev,
		VerdictRule: r.VerdictRule, VerdictReason: r.VerdictReason, Cause: cause,
		Tags: r.Artifact.Tags, MediaType: r.Artifact.MediaType,
		FinishedAt: timestamppb.New(r.FinishedAt), StoredAt: timestamppb.New(time.Now().UTC()),
		ReportSha256: hex.EncodeToString(sum[:]),
	}
	if r.Status == report.StatusFailed {
		ev.VerdictReason = r.Error
	}
	if r.Verdict == report.VerdictQuarantine {
		ev.Evidence = quarantine.Evidence(r)
	}
	return ev
}

// Announce records ev in the verdicts bucket (scans and re-matches: a
// push changes no verdict) and publishes it. id makes a redelivered
// report one event: it names the digest, the report's content and the
// cause (a push adds its time and repository).
func (a *Announcer) Announce(ctx context.Context, ev *customsv1.ReportStored, id string) error {
	data, err := proto.Marshal(ev)
	if err != nil {
		return queue.Permanent(fmt.Errorf("encode report stored event: %w", err))
	}
	if ev.GetCause() != CausePush && a.Verdicts != nil {
		if _, err := a.Verdicts.Put(ctx, quarantine.VerdictKey(ev.GetDigest()), data); err != nil {
			return fmt.Errorf("record verdict of %s: %w", ev.GetDigest(), err)
		}
	}
	_, h, _ := strings.Cut(ev.GetDigest(), ":")
	if _, err := a.JS.Publish(ctx, queue.ReportStoredSubject+h, data, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("publish report stored event of %s: %w", ev.GetDigest(), err)
	}
	return nil
}

// ScanID is the message id of a stored scan report.
func ScanID(ev *customsv1.ReportStored) string {
	return "stored:" + ev.GetDigest() + ":" + ev.GetReportSha256()[:16] + ":" + ev.GetCause()
}

// RematchID is the message id of a re-matched report: one per database
// version, so a re-match redone after a crash is one event.
func RematchID(digest, dbVersion string) string {
	return "stored:" + digest + ":rematch:" + dbVersion
}

// PushID is the message id of a push that named a scanned digest again.
func PushID(digest, repository string, tags []string, pushed time.Time) string {
	t := slices.Clone(tags)
	slices.Sort(t)
	return fmt.Sprintf("stored:%s:push:%s:%s:%d", digest, repository, strings.Join(t, ","), pushed.UnixNano())
}
