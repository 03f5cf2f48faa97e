package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// The scanned bucket holds one record per registry/repository@digest. A
// job claims the digest (create) before scanning and marks it complete
// after its reports are out; every change is a compare-and-set on the
// entry's revision, so two jobs for one digest never both scan, and a tag
// named by a job that arrives meanwhile is never lost.
const (
	stateScanning = "scanning"
	stateComplete = "complete"
)

type scannedRecord struct {
	State string   `json:"state"`
	Tags  []string `json:"tags"`
	// Seq is the jobs-stream sequence of the job holding a scanning claim:
	// its own redelivery (the worker died) takes the claim back.
	Seq uint64    `json:"seq,omitempty"`
	At  time.Time `json:"at"`
}

// decision is what a job does after looking at the record.
type decision int

const (
	decideScan      decision = iota // claimed: scan
	decideDone                      // nothing new: acknowledge
	decideTagsAdded                 // scanned before; only new tags were announced
	decideMerged                    // another job is scanning; our tags ride with it
)

// errClaimRace is a lost compare-and-set: the job is retried shortly.
var errClaimRace = errors.New("scanned record changed concurrently")

func union(a, b []string) []string {
	out := append(append([]string{}, a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

func minus(a, b []string) []string {
	var out []string
	for _, t := range a {
		if !slices.Contains(b, t) {
			out = append(out, t)
		}
	}
	return out
}

func putRecord(ctx context.Context, kv jetstream.KeyValue, key string, rec scannedRecord, rev uint64) (uint64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode scanned record: %w", err)
	}
	if rev == 0 {
		n, err := kv.Create(ctx, key, b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, errClaimRace
		}
		return n, err
	}
	n, err := kv.Update(ctx, key, b, rev)
	if err != nil && isWrongRevision(err) {
		return 0, errClaimRace
	}
	return n, err
}

func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

func getRecord(ctx context.Context, kv jetstream.KeyValue, key string) (scannedRecord, uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return scannedRecord{}, 0, nil
	}
	if err != nil {
		return scannedRecord{}, 0, err
	}
	var rec scannedRecord
	if json.Unmarshal(e.Value(), &rec) != nil {
		// The older format (a bare time) meant scanned; anything else is
		// not trusted to skip a scan: the job claims the entry over it.
		rec = scannedRecord{}
		if _, err := time.Parse(time.RFC3339, string(e.Value())); err == nil {
			rec.State = stateComplete
		}
	}
	return rec, e.Revision(), nil
}

// claim decides what job (stream sequence seq) does, recording it.
// staleAfter is how long a scanning claim may go without finishing before
// another job takes it over (its worker died for good).
func (h *Handler) claim(ctx context.Context, job *customsv1.ScanJob, seq uint64, staleAfter time.Duration) (decision, uint64, error) {
	key := wire.ScannedKey(job)
	rec, rev, err := getRecord(ctx, h.scanned, key)
	if err != nil {
		return decideScan, 0, err
	}
	now := time.Now().UTC()
	switch {
	case rev != 0 && rec.State == stateComplete:
		added := minus(job.GetTags(), rec.Tags)
		if len(added) == 0 {
			return decideDone, rev, nil
		}
		// Announce before recording: a crash in between announces twice
		// (results merges tags idempotently), never zero times.
		if err := h.publisher.PublishTags(ctx, &customsv1.TagsAdded{
			Registry: job.GetRegistry(), Repository: job.GetRepository(), Digest: job.GetDigest(),
			Tags: added, RequestedAt: job.GetRequestedAt(),
		}); err != nil {
			return decideScan, 0, err
		}
		rec.Tags = union(rec.Tags, added)
		if _, err := putRecord(ctx, h.scanned, key, rec, rev); err != nil {
			return decideScan, 0, err
		}
		return decideTagsAdded, rev, nil
	case rev != 0 && rec.State == stateScanning && rec.Seq != seq && now.Sub(rec.At) < staleAfter:
		rec.Tags = union(rec.Tags, job.GetTags())
		if _, err := putRecord(ctx, h.scanned, key, rec, rev); err != nil {
			return decideScan, 0, err
		}
		return decideMerged, rev, nil
	}
	// Nothing recorded, our own claim (redelivered), or a dead worker's.
	rec = scannedRecord{State: stateScanning, Tags: union(rec.Tags, job.GetTags()), Seq: seq, At: now}
	rev, err = putRecord(ctx, h.scanned, key, rec, rev)
	if err != nil {
		return decideScan, 0, err
	}
	return decideScan, rev, nil
}

// complete marks job's digest scanned and announces tags that other jobs
// added to the claim while the scan ran.
func (h *Handler) complete(ctx context.Context, job *customsv1.ScanJob) error {
	key := wire.ScannedKey(job)
	for range 5 {
		rec, rev, err := getRecord(ctx, h.scanned, key)
		if err != nil {
			return err
		}
		if added := minus(rec.Tags, job.GetTags()); len(added) > 0 {
			if err := h.publisher.PublishTags(ctx, &customsv1.TagsAdded{
				Registry: job.GetRegistry(), Repository: job.GetRepository(), Digest: job.GetDigest(),
				Tags: added, RequestedAt: timestamppb.New(rec.At),
			}); err != nil {
				return err
			}
		}
		rec = scannedRecord{State: stateComplete, Tags: union(rec.Tags, job.GetTags()), At: time.Now().UTC()}
		if _, err = putRecord(ctx, h.scanned, key, rec, rev); !errors.Is(err, errClaimRace) {
			return err
		}
	}
	return errClaimRace
}

// release drops job's claim after a failed scan, so a later job (a retry,
// a re-push after a fix) scans again instead of being taken for a duplicate.
func (h *Handler) release(ctx context.Context, job *customsv1.ScanJob, seq uint64) {
	key := wire.ScannedKey(job)
	for range 5 {
		rec, rev, err := getRecord(ctx, h.scanned, key)
		if err != nil || rev == 0 || rec.State != stateScanning || rec.Seq != seq {
			return
		}
		if err := h.scanned.Delete(ctx, key, jetstream.LastRevision(rev)); err == nil || !isWrongRevision(err) {
			return
		}
	}
}
