// Package wire is the format of the report events Customs sends over NATS:
// how a report becomes a ScanCompleted message (and back), its message id,
// where a report too large for a message goes, and the signature that lets
// results tell a scanner's event from a forged one.
//
// A report is gzipped JSON. Up to InlineMax bytes it travels inside the
// message; larger ones are put in the JetStream Object Store
// ReportBodiesBucket and the message names the object and its SHA-256. The
// message is signed with HMAC-SHA256 over subject and body, so neither the
// message nor the object it points to can be replaced without the key.
package wire

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/egress"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

const (
	// ReportBodiesBucket holds reports too large to travel in a message.
	ReportBodiesBucket = "customs-report-bodies"
	// InlineMax is the largest encoded report sent inside the message;
	// NATS refuses messages over its max_payload (1 MiB by default), and
	// headroom keeps the event well under it.
	InlineMax = 256 << 10
	// MaxReportBytes bounds a decompressed report.
	MaxReportBytes = 256 << 20
	// SignatureHeader carries "v1=<hex HMAC-SHA256>" of a report event.
	SignatureHeader = "Customs-Signature"
	// MinKeyBytes is the shortest signing key accepted.
	MinKeyBytes = 32
	// bodiesMaxAge matches the reports stream: an object outlives its event.
	bodiesMaxAge = 7 * 24 * time.Hour
)

// Errors a reader returns for events it must not trust.
var (
	ErrUnsigned     = errors.New("report event is not signed")
	ErrBadSignature = errors.New("report event signature does not match")
)

// Signer signs and verifies report events with a key shared by scanners and
// results. A nil *Signer signs nothing and accepts anything: only for a
// deployment that turned signing off explicitly.
type Signer struct{ key []byte }

// NewSigner returns a signer for key (at least MinKeyBytes long).
func NewSigner(key string) (*Signer, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("report signing key is %d bytes; at least %d are needed", len(key), MinKeyBytes)
	}
	return &Signer{key: []byte(key)}, nil
}

func (s *Signer) mac(subject string, data []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(subject))
	m.Write([]byte{0})
	m.Write(data)
	return m.Sum(nil)
}

// Sign returns the signature header value of data published on subject.
func (s *Signer) Sign(subject string, data []byte) string {
	return "v1=" + hex.EncodeToString(s.mac(subject, data))
}

// Verify checks sig (a SignatureHeader value) against data on subject.
func (s *Signer) Verify(subject string, data []byte, sig string) error {
	if s == nil {
		return nil
	}
	if sig == "" {
		return ErrUnsigned
	}
	got, err := hex.DecodeString(strings.TrimPrefix(sig, "v1="))
	if err != nil || !strings.HasPrefix(sig, "v1=") || !hmac.Equal(got, s.mac(subject, data)) {
		return ErrBadSignature
	}
	return nil
}

// EnsureReportBodies creates (or binds) the object store for large reports.
func EnsureReportBodies(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.ObjectStore, error) {
	return js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      ReportBodiesBucket,
		Description: "reports too large for a report event, referenced by it",
		TTL:         bodiesMaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
}

// ReportSubject is the subject a report of digest is published on.
func ReportSubject(digest string) string {
	return queue.ReportsSubjectPrefix + strings.TrimPrefix(digest, "sha256:")
}

// ReportMsgID dedupes report events: a job redelivered after its report was
// published (the worker died before acking) publishes the same id again. A
// failed and a complete report of one push never share an id, and neither
// do two pushes of the same digest.
func ReportMsgID(r *report.Report, requestedAt time.Time) string {
	// Without a push time (a job from an older ingest) the scan's own
	// finish time keeps distinct scans apart.
	pushed := r.FinishedAt.UnixNano()
	if !requestedAt.IsZero() {
		pushed = requestedAt.UnixNano()
	}
	return fmt.Sprintf("report:%s:%s/%s@%s:%d", r.Status, r.Artifact.Registry, r.Artifact.Repository,
		r.Artifact.Digest, pushed)
}

// EncodeReport gzips the report JSON.
func EncodeReport(r *report.Report) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(r); err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress report: %w", err)
	}
	return buf.Bytes(), nil
}

// Publisher sends report events.
type Publisher struct {
	JS jetstream.JetStream
	// Bodies receives reports over InlineMax; without it such a report
	// cannot be published.
	Bodies jetstream.ObjectStore
	Signer *Signer
}

// Publish sends r, the outcome of the job jobID requested at requestedAt.
func (p *Publisher) Publish(ctx context.Context, jobID string, requestedAt time.Time, r *report.Report) error {
	body, err := EncodeReport(r)
	if err != nil {
		return queue.Permanent(err)
	}
	sum := sha256.Sum256(body)
	msgID := ReportMsgID(r, requestedAt)
	ev := &customsv1.ScanCompleted{
		JobId:          jobID,
		Registry:       r.Artifact.Registry,
		Repository:     r.Artifact.Repository,
		Digest:         r.Artifact.Digest,
		Verdict:        r.Verdict,
		Status:         r.Status,
		Error:          r.Error,
		ReportEncoding: "gzip",
		ReportSha256:   hex.EncodeToString(sum[:]),
		FinishedAt:     timestamppb.New(r.FinishedAt),
	}
	if !requestedAt.IsZero() {
		ev.RequestedAt = timestamppb.New(requestedAt)
	}
	if len(body) <= InlineMax {
		ev.Report = body
	} else {
		if p.Bodies == nil {
			return fmt.Errorf("report of %s is %d bytes compressed and no object store is bound for large reports", r.Artifact.Digest, len(body))
		}
		// Named by content: a redelivered job writes the same object.
		ev.ReportObject = "sha256-" + ev.ReportSha256
		if _, err := p.Bodies.PutBytes(ctx, ev.ReportObject, body); err != nil {
			return fmt.Errorf("store large report of %s: %w", r.Artifact.Digest, err)
		}
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return queue.Permanent(fmt.Errorf("encode scan event: %w", err))
	}
	subject := ReportSubject(r.Artifact.Digest)
	msg := nats.NewMsg(subject)
	msg.Data = data
	if p.Signer != nil {
		msg.Header.Set(SignatureHeader, p.Signer.Sign(subject, data))
	}
	if _, err := p.JS.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish report %s: %w", r.Artifact.Digest, err)
	}
	return nil
}

// Event is a decoded report event.
type Event struct {
	Report *report.Report
	// RequestedAt is when the push that caused the scan was received
	// (zero for events from scanners that did not say).
	RequestedAt time.Time
	// JobID is the job the report belongs to: a platform of an index has
	// the index's job.
	JobID string
}

// PartOfIndex reports whether the event is a platform report of an index
// job (its digest is not the job's).
func (e *Event) PartOfIndex() bool {
	_, jobDigest, ok := strings.Cut(e.JobID, "@")
	return ok && jobDigest != e.Report.Artifact.Digest
}

// Reader decodes report events.
type Reader struct {
	Bodies jetstream.ObjectStore
	Signer *Signer
}

// Decode verifies and reads a report event. Its errors are about the
// message itself (forged, corrupt, missing object) unless wrapped as
// transient by the caller: an unreachable object store is returned as is.
func (rd *Reader) Decode(ctx context.Context, subject string, header nats.Header, data []byte) (*Event, error) {
	if err := rd.Signer.Verify(subject, data, header.Get(SignatureHeader)); err != nil {
		return nil, queue.Permanent(err)
	}
	ev := &customsv1.ScanCompleted{}
	if err := proto.Unmarshal(data, ev); err != nil {
		return nil, queue.Permanent(fmt.Errorf("decode scan event: %w", err))
	}
	body := ev.GetReport()
	if name := ev.GetReportObject(); name != "" {
		if rd.Bodies == nil {
			return nil, fmt.Errorf("report of %s is in object %s and no object store is bound", ev.GetDigest(), name)
		}
		b, err := rd.Bodies.GetBytes(ctx, name)
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, queue.Permanent(fmt.Errorf("report of %s: object %s is gone", ev.GetDigest(), name))
		}
		if err != nil {
			return nil, fmt.Errorf("report of %s: read object %s: %w", ev.GetDigest(), name, err)
		}
		body = b
	}
	if want := ev.GetReportSha256(); want != "" {
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != want {
			return nil, queue.Permanent(fmt.Errorf("report of %s does not match its digest", ev.GetDigest()))
		}
	} else if rd.Signer != nil && ev.GetReportObject() != "" {
		return nil, queue.Permanent(fmt.Errorf("report of %s is in an object without a digest", ev.GetDigest()))
	}
	r, err := decodeBody(ev, body)
	if err != nil {
		return nil, queue.Permanent(err)
	}
	out := &Event{Report: r, JobID: ev.GetJobId()}
	if ev.GetRequestedAt() != nil {
		out.RequestedAt = ev.GetRequestedAt().AsTime()
	}
	return out, nil
}

func decodeBody(ev *customsv1.ScanCompleted, data []byte) (*report.Report, error) {
	var body io.Reader = bytes.NewReader(data)
	switch ev.GetReportEncoding() {
	case "":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("report of %s: %w", ev.GetDigest(), err)
		}
		body = zr
	default:
		return nil, fmt.Errorf("report of %s: unknown encoding %q", ev.GetDigest(), ev.GetReportEncoding())
	}
	raw, err := io.ReadAll(io.LimitReader(body, MaxReportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("report of %s: %w", ev.GetDigest(), err)
	}
	if len(raw) > MaxReportBytes {
		return nil, fmt.Errorf("report of %s exceeds %d bytes", ev.GetDigest(), MaxReportBytes)
	}
	var r report.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("report of %s: %w", ev.GetDigest(), err)
	}
	if r.Artifact.Digest == "" {
		return nil, fmt.Errorf("report of %s has no artifact digest", ev.GetDigest())
	}
	// The envelope is what the signature covers field by field; a report
	// claiming another digest than its event is not the event's report.
	if ev.GetDigest() != "" && r.Artifact.Digest != ev.GetDigest() {
		return nil, fmt.Errorf("report names %s but its event %s", r.Artifact.Digest, ev.GetDigest())
	}
	return &r, nil
}

// SigningConfig is the report-signing part of the scanner's and results'
// environment: both must be given the same key.
type SigningConfig struct {
	// Key signs report events (shared secret, at least MinKeyBytes).
	Key string `env:"CUSTOMS_REPORT_SIGNING_KEY"`
	// Mode is "on" (default: a key is required) or "off" (events are
	// neither signed nor checked: anyone who can publish on the reports
	// subject can write any verdict).
	Mode string `env:"CUSTOMS_REPORT_SIGNING" envDefault:"on"`
}

// Signer returns the configured signer: nil when signing is off, an error
// when it is on without a usable key, so a service never runs open by
// accident.
func (c SigningConfig) Signer() (*Signer, error) {
	switch strings.ToLower(c.Mode) {
	case "off":
		return nil, nil
	case "", "on":
		if c.Key == "" {
			return nil, errors.New("CUSTOMS_REPORT_SIGNING_KEY is not set: report events must be signed " +
				"(give scanners and results the same key of at least 32 bytes, or set CUSTOMS_REPORT_SIGNING=off)")
		}
		return NewSigner(c.Key)
	default:
		return nil, fmt.Errorf("CUSTOMS_REPORT_SIGNING=%q: want on or off", c.Mode)
	}
}

// JobID names a scan job: registry/repository@digest, the registry in the
// form allowlists compare (lowercase, no :443).
func JobID(registry, repository, digest string) string {
	return egress.NormalizeHost(registry) + "/" + repository + "@" + digest
}

// ScannedKey is the scanner's record key of a job's digest in its
// repository (KV keys cannot hold ':' or '@').
func ScannedKey(job *customsv1.ScanJob) string {
	sum := sha256.Sum256([]byte(job.GetRegistry() + "/" + job.GetRepository() + "@" + job.GetDigest()))
	return hex.EncodeToString(sum[:])
}

// JobMsgID is a scan job's Nats-Msg-Id: a registry retrying the same
// webhook (same event, digest and tags) makes one job, while a push that
// names a new tag for the digest is its own message — the scanner records
// the tag without scanning again (see TagsSubject).
func JobMsgID(job *customsv1.ScanJob) string {
	tags := append([]string{}, job.GetTags()...)
	slices.Sort(tags)
	// The event id keeps a genuine re-push apart from a webhook retry (which
	// repeats the id): the scanner then decides, from its scanned record,
	// whether the push needs a scan (the last one failed) or only its tags.
	return job.GetJobId() + "#" + strings.Join(slices.Compact(tags), ",") + "#" + job.GetEventId()
}

// TagsSubject is where TagsAdded for digest is published (inside the
// reports stream, so results sees it after the digest's report).
func TagsSubject(digest string) string {
	return queue.ReportsSubjectPrefix + "tags." + strings.TrimPrefix(digest, "sha256:")
}

// IsTagsSubject says whether a reports-stream subject carries TagsAdded.
func IsTagsSubject(subject string) bool {
	return strings.HasPrefix(subject, queue.ReportsSubjectPrefix+"tags.")
}

// PublishTags sends a signed TagsAdded.
func (p *Publisher) PublishTags(ctx context.Context, ev *customsv1.TagsAdded) error {
	data, err := proto.Marshal(ev)
	if err != nil {
		return queue.Permanent(fmt.Errorf("encode tags event: %w", err))
	}
	subject := TagsSubject(ev.GetDigest())
	msg := nats.NewMsg(subject)
	msg.Data = data
	if p.Signer != nil {
		msg.Header.Set(SignatureHeader, p.Signer.Sign(subject, data))
	}
	tags := append([]string{}, ev.GetTags()...)
	slices.Sort(tags)
	id := fmt.Sprintf("tags:%s/%s@%s#%s:%d", ev.GetRegistry(), ev.GetRepository(), ev.GetDigest(),
		strings.Join(tags, ","), ev.GetRequestedAt().AsTime().UnixNano())
	if _, err := p.JS.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("publish tags of %s: %w", ev.GetDigest(), err)
	}
	return nil
}

// DecodeTags verifies and reads a TagsAdded event.
func (rd *Reader) DecodeTags(subject string, header nats.Header, data []byte) (*customsv1.TagsAdded, error) {
	if err := rd.Signer.Verify(subject, data, header.Get(SignatureHeader)); err != nil {
		return nil, queue.Permanent(err)
	}
	ev := &customsv1.TagsAdded{}
	if err := proto.Unmarshal(data, ev); err != nil {
		return nil, queue.Permanent(fmt.Errorf("decode tags event: %w", err))
	}
	if ev.GetDigest() == "" || ev.GetRepository() == "" {
		return nil, queue.Permanent(errors.New("tags event lacks digest or repository"))
	}
	return ev, nil
}

// JobSubject is where a job from source ("distribution", "harbor", "ecr",
// …) is published.
func JobSubject(source string) string { return queue.JobsSubjectPrefix + source }

// PublishJob sends job on its subject with its message id, into the jobs
// stream only; duplicate reports that JetStream dropped it as a repeat.
func PublishJob(ctx context.Context, pub jetstream.Publisher, job *customsv1.ScanJob) (duplicate bool, err error) {
	data, err := proto.Marshal(job)
	if err != nil {
		return false, fmt.Errorf("encode job: %w", err)
	}
	ack, err := pub.Publish(ctx, JobSubject(job.GetSource()), data,
		jetstream.WithMsgID(JobMsgID(job)), jetstream.WithExpectStream(queue.JobsStream))
	if err != nil {
		return false, fmt.Errorf("publish job %s: %w", job.GetJobId(), err)
	}
	return ack.Duplicate, nil
}

// DecodeJob reads a ScanJob message body and checks it names an image.
func DecodeJob(data []byte) (*customsv1.ScanJob, error) {
	job := &customsv1.ScanJob{}
	if err := proto.Unmarshal(data, job); err != nil {
		return nil, fmt.Errorf("decode scan job: %w", err)
	}
	if job.GetRegistry() == "" || job.GetRepository() == "" || job.GetDigest() == "" {
		return nil, fmt.Errorf("scan job %q lacks registry, repository or digest", job.GetJobId())
	}
	return job, nil
}
