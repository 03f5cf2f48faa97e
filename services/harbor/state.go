package harbor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
)

// scanRecord is one scan request in ScansBucket: what Harbor asked for and
// when. It never holds the request's credentials.
type scanRecord struct {
	Registry   string `json:"registry"`
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	Tag        string `json:"tag,omitempty"`
	MimeType   string `json:"mime_type,omitempty"`
	// RequestedAt is the job's requested_at (to the nanosecond): a failed
	// report carrying it is this request's failure.
	RequestedAt time.Time `json:"requested_at"`
	// Queued: a job was published; false: a stored report answered.
	Queued bool `json:"queued"`
}

var errUnknownScan = errors.New("unknown scan id")

// Scan ids are 128 random bits in hex: unguessable, and valid KV keys.
var scanIDRE = regexp.MustCompile(`^[a-f0-9]{32}$`)

func newScanID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("scan id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func putScan(ctx context.Context, kv jetstream.KeyValue, id string, rec *scanRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode scan request: %w", err)
	}
	if _, err := kv.Create(ctx, id, b); err != nil {
		return fmt.Errorf("record scan request: %w", err)
	}
	return nil
}

func getScan(ctx context.Context, kv jetstream.KeyValue, id string) (*scanRecord, error) {
	if !scanIDRE.MatchString(id) {
		return nil, errUnknownScan
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, errUnknownScan
	}
	if err != nil {
		return nil, fmt.Errorf("read scan request: %w", err)
	}
	var rec scanRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, fmt.Errorf("decode scan request %s: %w", id, err)
	}
	return &rec, nil
}

// deleteScan drops a request whose job could not be queued (best effort:
// it expires anyway, and a poll of it only ever says pending).
func deleteScan(ctx context.Context, kv jetstream.KeyValue, id string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = kv.Purge(ctx, id)
}

// completeStored says whether digest has a complete stored report.
func completeStored(ctx context.Context, verdicts jetstream.KeyValue, digest string) (bool, error) {
	ev, err := quarantine.GetVerdict(ctx, verdicts, digest)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return ev.GetStatus() == report.StatusComplete, nil
}

// reportKey is where results stores the report of digest
// (services/results/internal/reportstore's layout).
func reportKey(digest string) string {
	algo, h, _ := strings.Cut(digest, ":")
	return "reports/" + algo + "/" + h + ".json"
}

type state int

const (
	statePending state = iota
	stateDone
	stateFailed
)

type outcome struct {
	state  state
	report *report.Report
}

// outcome is where a request stands. The verdicts bucket says whether the
// digest has a stored report at all (an S3 read per poll otherwise);
// the report itself comes from the bucket. A complete report answers any
// request; a failed one answers only a request it can be the outcome of:
// its own job (same requested_at), or a scan that finished after the
// request (its job was merged into that one). An older failure means this
// request's job is still on its way.
func (s *Service) outcome(ctx context.Context, b *buckets, rec *scanRecord) (outcome, error) {
	if _, err := quarantine.GetVerdict(ctx, b.verdicts, rec.Digest); errors.Is(err, jetstream.ErrKeyNotFound) {
		return outcome{state: statePending}, nil
	} else if err != nil {
		return outcome{}, fmt.Errorf("read verdict: %w", err)
	}
	raw, err := s.deps.Bucket.Get(ctx, reportKey(rec.Digest))
	if errors.Is(err, store.ErrNotFound) {
		// The verdict is written after the object; a missing object is a
		// bucket that lost it or is not results' bucket.
		return outcome{}, fmt.Errorf("the verdict names a report the bucket does not hold (%s)", reportKey(rec.Digest))
	}
	if err != nil {
		return outcome{}, err
	}
	var r report.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return outcome{}, fmt.Errorf("decode stored report: %w", err)
	}
	switch {
	case r.Status == report.StatusComplete:
		return outcome{state: stateDone, report: &r}, nil
	case r.RequestedAt != nil && r.RequestedAt.Equal(rec.RequestedAt), rec.Queued && r.FinishedAt.After(rec.RequestedAt):
		return outcome{state: stateFailed, report: &r}, nil
	}
	return outcome{state: statePending}, nil
}
