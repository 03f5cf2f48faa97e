// Package quarantine keeps one quarantine record per
// registry/repository@digest in the JetStream KV bucket customs-quarantine,
// appends every change to an audit stream, and drives one Enforcer per
// registry kind (the Distribution gate, Harbor labels, ECR's archive
// storage class), the way analyzers are one package each.
//
// Results runs the Controller on its "report stored" events and serves
// the records; the gate (services/gate) watches the bucket through a Set.
package quarantine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// Bucket is the KV bucket of quarantine records.
const Bucket = "customs-quarantine"

// Record states.
const (
	StateQuarantined = "quarantined"
	StateReleased    = "released"
)

// Modes (CUSTOMS_QUARANTINE).
const (
	ModeEnforce = "enforce"
	ModeDryRun  = "dry-run"
	ModeOff     = "off"
)

// ParseMode checks a CUSTOMS_QUARANTINE value; empty is def.
func ParseMode(s, def string) (string, error) {
	switch m := strings.ToLower(strings.TrimSpace(s)); m {
	case "":
		return def, nil
	case ModeEnforce, ModeDryRun, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("CUSTOMS_QUARANTINE=%q: want enforce, dry-run or off", s)
}

// Registry kinds.
const (
	KindDistribution = "distribution"
	KindHarbor       = "harbor"
	KindECR          = "ecr"
)

// Enforcement outcomes.
const (
	OutcomeDone    = "done"
	OutcomeFailed  = "failed"
	OutcomeDryRun  = "dry-run"
	OutcomePending = "pending"
)

// Actions.
const (
	ActionQuarantine = "quarantine"
	ActionRelease    = "release"
)

// Audit changes.
const (
	ChangeQuarantined       = "quarantined"
	ChangeReleased          = "released"
	ChangeEnforced          = "enforced"
	ChangeEnforcementFailed = "enforcement_failed"
)

// ByCustoms names Customs itself as the actor of a change.
const ByCustoms = "customs"

// Ref names one image by digest in one repository of one registry.
type Ref struct {
	Registry   string
	Repository string
	Digest     string
	// Tags known to point at the digest (enforcers that move or restore
	// tags use them); may be empty.
	Tags []string
}

func (r Ref) String() string { return r.Registry + "/" + r.Repository + "@" + r.Digest }

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// ParseRef reads "registry/repository@sha256:<hex>". The registry is the
// first path element (it must contain a dot or a colon, or be localhost,
// as in Docker references).
func ParseRef(s string) (Ref, error) {
	name, digest, ok := strings.Cut(s, "@")
	if !ok || !digestRE.MatchString(digest) {
		return Ref{}, fmt.Errorf("%q: want registry/repository@sha256:<64 hex>", s)
	}
	reg, repo, ok := strings.Cut(name, "/")
	if !ok || repo == "" || !(strings.ContainsAny(reg, ".:") || reg == "localhost") {
		return Ref{}, fmt.Errorf("%q: want registry/repository@sha256:<64 hex> (the registry host first)", s)
	}
	return Ref{Registry: reg, Repository: repo, Digest: digest}, nil
}

// Key is the record's key in the bucket: the digest hex, then a hash of
// registry/repository (KV keys allow few characters; the digest first
// lets a digest's records be listed by prefix).
func Key(registry, repository, digest string) string {
	_, h, _ := strings.Cut(digest, ":")
	rr := sha256.Sum256([]byte(registry + "/" + repository))
	return h + "." + hex.EncodeToString(rr[:8])
}

// KeyOf is Key of a ref.
func KeyOf(r Ref) string { return Key(r.Registry, r.Repository, r.Digest) }

// DigestKeys is the key filter matching every record of digest.
func DigestKeys(digest string) string {
	_, h, _ := strings.Cut(digest, ":")
	return h + ".*"
}

// EnsureBucket creates or updates the records bucket. Records are kept
// until released records are pruned by an operator; the audit stream is
// the history.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "quarantine records, one per registry/repository@digest",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
}

// BindBucket binds the bucket someone else created (the gate only reads).
func BindBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	return js.KeyValue(ctx, Bucket)
}

// Decode reads a record value.
func Decode(b []byte) (*customsv1.QuarantineRecord, error) {
	var r customsv1.QuarantineRecord
	if err := proto.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode quarantine record: %w", err)
	}
	return &r, nil
}

// Blocking reports whether r keeps its image from being pulled: a
// quarantined record in enforce mode (dry-run records only say what would
// have happened).
func Blocking(r *customsv1.QuarantineRecord) bool {
	return r != nil && r.GetState() == StateQuarantined && r.GetMode() == ModeEnforce
}

// Get reads one record; jetstream.ErrKeyNotFound when there is none.
func Get(ctx context.Context, kv jetstream.KeyValue, key string) (*customsv1.QuarantineRecord, uint64, error) {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	r, err := Decode(e.Value())
	return r, e.Revision(), err
}

// List reads every record, or those of one digest when digest is set.
func List(ctx context.Context, kv jetstream.KeyValue, digest string) ([]*customsv1.QuarantineRecord, error) {
	var lister jetstream.KeyLister
	var err error
	if digest != "" {
		lister, err = kv.ListKeysFiltered(ctx, DigestKeys(digest))
	} else {
		lister, err = kv.ListKeys(ctx)
	}
	if err != nil {
		return nil, err
	}
	var out []*customsv1.QuarantineRecord
	for k := range lister.Keys() {
		r, _, err := Get(ctx, kv, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			_ = lister.Stop()
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Status is what an enforcer finds in its registry for an image.
type Status struct {
	// Blocked: pulls are refused (or the image is gone) because of Customs.
	Blocked bool
	// Detail says what was found, in words.
	Detail string
}

// Enforcer acts on one registry kind. Quarantine and Release must be
// idempotent: the controller retries them after failures and crashes.
// They return what they did, in words; errors say why, with the
// registry's answer (never its credentials).
type Enforcer interface {
	// Name identifies the enforcer in records ("gate", "harbor-label", ...).
	Name() string
	Quarantine(ctx context.Context, ref Ref, reason string) (detail string, err error)
	Release(ctx context.Context, ref Ref) (detail string, err error)
	Status(ctx context.Context, ref Ref) (Status, error)
}

var ecrHostRE = regexp.MustCompile(`^[0-9]{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

// IsECRHost reports whether host is an ECR private registry.
func IsECRHost(host string) bool { return ecrHostRE.MatchString(host) }

// now is time.Now in UTC, truncated to microseconds so records compare
// equal after a round trip through JSON.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// VerdictsBucket holds the last ReportStored of every digest, by digest
// hex: the gate's "has it been scanned?" (CUSTOMS_GATE_UNSCANNED=deny)
// without a call to the report API. Written by results before it publishes
// the event; no TTL (a scanned image stays scanned).
const VerdictsBucket = "customs-verdicts"

// EnsureVerdicts creates or updates the verdicts bucket.
func EnsureVerdicts(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      VerdictsBucket,
		Description: "the last stored report event (ReportStored) of every digest, by digest hex",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
}

// VerdictKey is digest's key in the verdicts bucket.
func VerdictKey(digest string) string {
	_, h, _ := strings.Cut(digest, ":")
	return h
}

// GetVerdict reads the last ReportStored of digest; jetstream.ErrKeyNotFound
// when none was stored.
func GetVerdict(ctx context.Context, kv jetstream.KeyValue, digest string) (*customsv1.ReportStored, error) {
	e, err := kv.Get(ctx, VerdictKey(digest))
	if err != nil {
		return nil, err
	}
	var ev customsv1.ReportStored
	if err := proto.Unmarshal(e.Value(), &ev); err != nil {
		return nil, fmt.Errorf("decode verdict of %s: %w", digest, err)
	}
	return &ev, nil
}
