package quarantine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// Resolver says which registry kind holds ref and which enforcers act
// there (configuration: the registry auth file, ECR host names).
type Resolver func(ref Ref) (kind string, enforcers []Enforcer)

// Rescanner is an enforcer whose registry keeps its own copy of the
// verdict (Harbor reads the scanner's report): told when a verdict
// changes, it asks the registry to fetch the report again.
type Rescanner interface {
	Rescan(ctx context.Context, ref Ref) (detail string, err error)
}

// Controller turns stored verdicts and operators' requests into records,
// audit entries and enforcement. It is safe to run in several results
// processes: records change by compare-and-set and audit entries carry
// message ids.
type Controller struct {
	KV jetstream.KeyValue
	JS jetstream.JetStream
	// Mode is ModeEnforce or ModeDryRun (ModeOff: don't run a controller).
	Mode    string
	Resolve Resolver
	// Observe, when set, counts changes: ("quarantined"|"released"|
	// "enforcement_failed"|"rescan_failed", kind).
	Observe func(what, kind string)
	// OnOperator, when set, hears an operator's quarantine or release once
	// it is recorded (a verdict's own quarantine is part of its push news).
	OnOperator func(ctx context.Context, change string, rec *customsv1.QuarantineRecord)
	Log        zerolog.Logger
}

// ErrNotQuarantined: a release of an image that has no quarantine record
// in the quarantined state.
var ErrNotQuarantined = errors.New("not quarantined")

// ErrNotFound: no record of the image.
var ErrNotFound = errors.New("no quarantine record")

func (c *Controller) observe(what, kind string) {
	if c.Observe != nil {
		c.Observe(what, kind)
	}
}

// HandleStored acts on one stored report: a quarantine verdict makes (or
// keeps) a record and enforces it; a push of a digest that is quarantined
// enforces again (ECR un-archives re-pushed images); a changed verdict
// asks registries that keep their own copy to rescan. A failed scan never
// quarantines: it is not a verdict.
func (c *Controller) HandleStored(ctx context.Context, ev *customsv1.ReportStored) error {
	if ev.GetStatus() != report.StatusComplete {
		return nil
	}
	ref := Ref{Registry: ev.GetRegistry(), Repository: ev.GetRepository(), Digest: ev.GetDigest(), Tags: ev.GetTags()}
	kind, enforcers := c.Resolve(ref)
	if ev.GetPreviousVerdict() != "" && ev.GetPreviousVerdict() != ev.GetVerdict() {
		for _, e := range enforcers {
			if rs, ok := e.(Rescanner); ok && c.Mode == ModeEnforce {
				if _, err := rs.Rescan(ctx, ref); err != nil {
					// A rescan is a courtesy to the registry's own view; the
					// verdict and record do not depend on it.
					c.observe("rescan_failed", kind)
					c.Log.Warn().Err(err).Str("image", ref.String()).Str("enforcer", e.Name()).Msg("registry rescan request failed")
				}
			}
		}
	}
	if ev.GetCause() == "push" {
		rec, _, err := Get(ctx, c.KV, KeyOf(ref))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read quarantine record: %w", err)
		}
		if rec.GetState() != StateQuarantined {
			return nil
		}
		// The registry may have undone the enforcement (ECR restores an
		// archived image that is pushed again): apply it again.
		_, err = c.enforce(ctx, KeyOf(ref), ref, ActionQuarantine, true)
		return err
	}
	if ev.GetVerdict() != report.VerdictQuarantine {
		return nil
	}
	_, err := c.quarantine(ctx, ref, kind, quarantineRequest{
		reason: ev.GetVerdictReason(), rule: ev.GetVerdictRule(), by: ByCustoms,
		evidence: ev.GetEvidence(), reportSHA: ev.GetReportSha256(), finished: ev.GetFinishedAt(),
	})
	return err
}

type quarantineRequest struct {
	reason, rule, by string
	evidence         []string
	reportSHA        string
	finished         *timestamppb.Timestamp
	manual           bool
}

// Quarantine records an operator's quarantine of ref and enforces it.
// Quarantining a quarantined image returns its record unchanged.
func (c *Controller) Quarantine(ctx context.Context, ref Ref, reason, by string) (*customsv1.QuarantineRecord, error) {
	kind, _ := c.Resolve(ref)
	return c.quarantine(ctx, ref, kind, quarantineRequest{reason: reason, rule: "manual", by: by, manual: true})
}

func (c *Controller) quarantine(ctx context.Context, ref Ref, kind string, q quarantineRequest) (*customsv1.QuarantineRecord, error) {
	key := KeyOf(ref)
	for {
		old, rev, err := Get(ctx, c.KV, key)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("read quarantine record: %w", err)
		}
		if old != nil && old.GetState() == StateQuarantined {
			if old.GetMode() == c.Mode || c.Mode != ModeEnforce {
				// The same verdict delivered again (or a crash before
				// enforcement finished): finish what is pending.
				return c.enforce(ctx, key, ref, ActionQuarantine, false)
			}
			// A dry-run record and the controller now enforces.
			rec := proto.Clone(old).(*customsv1.QuarantineRecord)
			rec.Mode = c.Mode
			rec.Enforcement = nil
			if err := c.write(ctx, key, rev, rec); errors.Is(err, errConflict) {
				continue
			} else if err != nil {
				return nil, err
			}
			return c.enforce(ctx, key, ref, ActionQuarantine, false)
		}
		if old != nil && !q.manual {
			// Released by an operator: the same findings do not quarantine
			// it again; new ones do.
			if len(newEvidence(q.evidence, old.GetEvidence())) == 0 {
				c.Log.Info().Str("image", ref.String()).Str("released_by", old.GetReleasedBy()).
					Msg("quarantine verdict on a released image with no new findings; stays released")
				return old, nil
			}
		}
		at := timestamppb.New(now())
		rec := &customsv1.QuarantineRecord{
			Registry: ref.Registry, Repository: ref.Repository, Digest: ref.Digest,
			State: StateQuarantined, Mode: c.Mode, Reason: q.reason, Rule: q.rule,
			ReportSha256: q.reportSHA, QuarantinedAt: at, QuarantinedBy: q.by,
			Generation: 1, Evidence: q.evidence, Kind: kind, ReportFinishedAt: q.finished,
		}
		if old != nil {
			rec.Generation = old.GetGeneration() + 1
			// A released image's evidence accumulates: what was released
			// once stays released.
			rec.Evidence = union(old.GetEvidence(), q.evidence)
		}
		if err := c.write(ctx, key, rev, rec); errors.Is(err, errConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		c.observe("quarantined", kind)
		c.Log.Warn().Str("image", ref.String()).Str("rule", q.rule).Str("reason", q.reason).Str("mode", c.Mode).
			Str("by", q.by).Uint32("generation", rec.GetGeneration()).Msg("image quarantined")
		out, err := c.enforce(ctx, key, ref, ActionQuarantine, false)
		if q.manual && out != nil && c.OnOperator != nil {
			c.OnOperator(ctx, ChangeQuarantined, out)
		}
		return out, err
	}
}

// Release ends ref's quarantine: the record says who released it and why,
// and the enforcers undo what they did. Releasing a released image runs
// the enforcements that failed again.
func (c *Controller) Release(ctx context.Context, ref Ref, reason, by string) (*customsv1.QuarantineRecord, error) {
	key := KeyOf(ref)
	for {
		old, rev, err := Get(ctx, c.KV, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("%s: %w", ref, ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("read quarantine record: %w", err)
		}
		if old.GetState() == StateReleased {
			return c.enforce(ctx, key, ref, ActionRelease, false)
		}
		rec := proto.Clone(old).(*customsv1.QuarantineRecord)
		rec.State = StateReleased
		rec.ReleasedAt = timestamppb.New(now())
		rec.ReleasedBy = by
		rec.ReleaseReason = reason
		if err := c.write(ctx, key, rev, rec); errors.Is(err, errConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		c.observe("released", rec.GetKind())
		c.Log.Info().Str("image", ref.String()).Str("by", by).Str("reason", reason).Msg("image released from quarantine")
		out, err := c.enforce(ctx, key, ref, ActionRelease, false)
		if out != nil && c.OnOperator != nil {
			c.OnOperator(ctx, ChangeReleased, out)
		}
		return out, err
	}
}

// enforce runs the enforcers of ref for action where the record does not
// already say they did it (again: run them all, a push may have undone
// it), records each outcome, then appends the state change (quarantined
// or released, with every outcome) to the audit stream: one entry per
// change, whatever the number of deliveries (its message id names the
// generation; a crash before it repeats the pass and the entry). A retry
// of an enforcement that failed adds its own entry. An enforcer that
// failed makes enforce return an error after recording, so the event is
// retried (an operator's request returns the record with the failure).
func (c *Controller) enforce(ctx context.Context, key string, ref Ref, action string, again bool) (*customsv1.QuarantineRecord, error) {
	rec, rev, err := Get(ctx, c.KV, key)
	if err != nil {
		return nil, fmt.Errorf("read quarantine record: %w", err)
	}
	if ref.Tags == nil {
		ref.Tags = tagsFromEnforcement(rec)
	}
	_, enforcers := c.Resolve(ref)
	var failed []string
	for _, e := range enforcers {
		last := lastEnforcement(rec, e.Name())
		if !again && last != nil && last.GetAction() == action && (last.GetOutcome() == OutcomeDone || last.GetOutcome() == OutcomeDryRun) {
			continue
		}
		en := &customsv1.Enforcement{Enforcer: e.Name(), Action: action, At: timestamppb.New(now()), Attempts: 1}
		retry := last != nil && last.GetAction() == action && last.GetOutcome() == OutcomeFailed
		if last != nil && last.GetAction() == action {
			en.Attempts = last.GetAttempts() + 1
		}
		var err error
		switch {
		case rec.GetMode() != ModeEnforce:
			en.Outcome, en.Detail = OutcomeDryRun, "dry-run: would "+action+" "+ref.String()+" ("+e.Name()+")"
		case action == ActionQuarantine:
			en.Detail, err = e.Quarantine(ctx, ref, rec.GetReason())
		default:
			en.Detail, err = e.Release(ctx, ref)
		}
		if en.Outcome == "" {
			en.Outcome = OutcomeDone
		}
		if err != nil {
			en.Outcome, en.Error = OutcomeFailed, err.Error()
			failed = append(failed, e.Name()+": "+err.Error())
			c.observe("enforcement_failed", rec.GetKind())
			c.Log.Warn().Err(err).Str("image", ref.String()).Str("enforcer", e.Name()).Str("action", action).
				Uint32("attempts", en.GetAttempts()).Msg("quarantine enforcement failed")
		}
		// Written after each enforcer, so a crash does not repeat the ones
		// that finished.
		if rec, rev, err = c.setOutcome(ctx, key, rec, rev, en); err != nil {
			return nil, err
		}
		if retry || again && en.GetOutcome() == OutcomeFailed {
			change := ChangeEnforced
			if en.GetOutcome() == OutcomeFailed {
				change = ChangeEnforcementFailed
			}
			id := fmt.Sprintf("%d:%s:%s:%d", rec.GetGeneration(), e.Name(), action, en.GetAttempts())
			if again {
				id += ":" + en.GetAt().AsTime().Format(time.RFC3339Nano)
			}
			if err := c.audit(ctx, change, rec, ByCustoms, id); err != nil {
				return nil, err
			}
		}
	}
	if !again {
		change, by := ChangeQuarantined, rec.GetQuarantinedBy()
		if action == ActionRelease {
			change, by = ChangeReleased, rec.GetReleasedBy()
		}
		// A release racing this pass changed the state: its own pass
		// writes its entry.
		if rec.GetState() == stateAfter(action) {
			if err := c.audit(ctx, change, rec, by, fmt.Sprintf("%d:%s", rec.GetGeneration(), rec.GetMode())); err != nil {
				return nil, err
			}
		}
	}
	if len(failed) > 0 {
		return rec, fmt.Errorf("enforce %s of %s: %s", action, ref, strings.Join(failed, "; "))
	}
	return rec, nil
}

func stateAfter(action string) string {
	if action == ActionRelease {
		return StateReleased
	}
	return StateQuarantined
}

// setOutcome records en on the record by compare-and-set; a record
// changed meanwhile (a release while enforcing) keeps the other change
// and gets the outcome added.
func (c *Controller) setOutcome(ctx context.Context, key string, rec *customsv1.QuarantineRecord, rev uint64, en *customsv1.Enforcement) (*customsv1.QuarantineRecord, uint64, error) {
	for {
		setEnforcement(rec, en)
		nrev, err := c.writeRev(ctx, key, rev, rec)
		if err == nil {
			return rec, nrev, nil
		}
		if !errors.Is(err, errConflict) {
			return nil, 0, err
		}
		cur, crev, gerr := Get(ctx, c.KV, key)
		if gerr != nil {
			return nil, 0, fmt.Errorf("read quarantine record: %w", gerr)
		}
		rec, rev = cur, crev
	}
}

var errConflict = errors.New("record changed concurrently")

// write stores rec by compare-and-set on rev (0: the key must not exist).
func (c *Controller) write(ctx context.Context, key string, rev uint64, rec *customsv1.QuarantineRecord) error {
	_, err := c.writeRev(ctx, key, rev, rec)
	return err
}

// writeRev is write, returning the record's new revision.
func (c *Controller) writeRev(ctx context.Context, key string, rev uint64, rec *customsv1.QuarantineRecord) (uint64, error) {
	b, err := proto.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode quarantine record: %w", err)
	}
	var nrev uint64
	if rev == 0 {
		nrev, err = c.KV.Create(ctx, key, b)
	} else {
		nrev, err = c.KV.Update(ctx, key, b, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return 0, errConflict
	}
	if err != nil {
		return 0, fmt.Errorf("write quarantine record: %w", err)
	}
	return nrev, nil
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// audit appends a change to the audit stream; id makes a retried change
// one entry (within the stream's duplicate window).
func (c *Controller) audit(ctx context.Context, change string, rec *customsv1.QuarantineRecord, by, id string) error {
	b, err := proto.Marshal(&customsv1.QuarantineAudit{Change: change, Record: rec, At: timestamppb.New(now()), By: by})
	if err != nil {
		return fmt.Errorf("encode audit entry: %w", err)
	}
	_, h, _ := strings.Cut(rec.GetDigest(), ":")
	m := nats.NewMsg(queue.QuarantineAuditSubjectPrefix + h)
	m.Data = b
	key := Key(rec.GetRegistry(), rec.GetRepository(), rec.GetDigest())
	if _, err := c.JS.PublishMsg(ctx, m, jetstream.WithMsgID("audit:"+key+":"+change+":"+id)); err != nil {
		return fmt.Errorf("publish audit entry: %w", err)
	}
	return nil
}

// Audit reads the audit entries of digest (every repository), oldest first.
func Audit(ctx context.Context, js jetstream.JetStream, digest string) ([]*customsv1.QuarantineAudit, error) {
	_, h, _ := strings.Cut(digest, ":")
	s, err := js.Stream(ctx, queue.QuarantineAuditStream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(queue.QuarantineAuditSubjectPrefix+h))
	if err != nil {
		return nil, err
	}
	n := info.State.Subjects[queue.QuarantineAuditSubjectPrefix+h]
	if n == 0 {
		return nil, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{queue.QuarantineAuditSubjectPrefix + h}})
	if err != nil {
		return nil, err
	}
	var out []*customsv1.QuarantineAudit
	for uint64(len(out)) < n {
		msgs, err := cons.Fetch(int(n)-len(out), jetstream.FetchMaxWait(2e9))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range msgs.Messages() {
			got++
			var a customsv1.QuarantineAudit
			if err := proto.Unmarshal(m.Data(), &a); err != nil {
				return nil, fmt.Errorf("decode audit entry: %w", err)
			}
			out = append(out, &a)
		}
		if msgs.Error() != nil {
			return nil, msgs.Error()
		}
		if got == 0 {
			break
		}
	}
	return out, nil
}

func lastEnforcement(rec *customsv1.QuarantineRecord, enforcer string) *customsv1.Enforcement {
	for _, e := range rec.GetEnforcement() {
		if e.GetEnforcer() == enforcer {
			return e
		}
	}
	return nil
}

// setEnforcement replaces the enforcer's entry: a record says what each
// enforcer did last; the audit stream keeps every step.
func setEnforcement(rec *customsv1.QuarantineRecord, en *customsv1.Enforcement) {
	for i, e := range rec.Enforcement {
		if e.GetEnforcer() == en.GetEnforcer() {
			rec.Enforcement[i] = en
			return
		}
	}
	rec.Enforcement = append(rec.Enforcement, en)
}

// tagsFromEnforcement recovers tags an enforcer moved away (ECR retag
// ends its detail with "original tags: a, b") so release can put them back.
func tagsFromEnforcement(rec *customsv1.QuarantineRecord) []string {
	for _, e := range rec.GetEnforcement() {
		if e.GetAction() != ActionQuarantine {
			continue
		}
		if _, rest, ok := strings.Cut(e.GetDetail(), "original tags: "); ok {
			var tags []string
			for _, t := range strings.Split(rest, ",") {
				if t = strings.TrimSpace(t); t != "" {
					tags = append(tags, t)
				}
			}
			return tags
		}
	}
	return nil
}

func newEvidence(now, before []string) []string {
	var out []string
	for _, e := range now {
		if !slices.Contains(before, e) {
			out = append(out, e)
		}
	}
	return out
}

func union(a, b []string) []string {
	out := append(append([]string{}, a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// Evidence lists what a report's quarantine verdict rests on: its
// findings (kind, rule, path), its HIGH and CRITICAL vulnerabilities (id,
// package), and for an index its quarantined platforms. A released image
// is quarantined again only for evidence it did not have.
func Evidence(r *report.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, "finding:"+f.Kind+":"+f.Rule+":"+f.Path)
	}
	for _, v := range r.Vulnerabilities {
		if v.Severity == "HIGH" || v.Severity == "CRITICAL" {
			out = append(out, "vuln:"+v.ID+":"+v.Package)
		}
	}
	for _, m := range r.Manifests {
		if m.Verdict == report.VerdictQuarantine {
			out = append(out, "manifest:"+m.Digest)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
