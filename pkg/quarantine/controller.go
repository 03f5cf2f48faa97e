package quarantine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

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
	Log     zerolog.Logger
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
		if err := c.audit(ctx, ChangeQuarantined, rec, q.by, fmt.Sprintf("%d", rec.GetGeneration())); err != nil {
			return nil, err
		}
		c.observe("quarantined", kind)
		c.Log.Warn().Str("image", ref.String()).Str("rule", q.rule).Str("reason", q.reason).Str("mode", c.Mode).
			Str("by", q.by).Uint32("generation", rec.GetGeneration()).Msg("image quarantined")
		return c.enforce(ctx, key, ref, ActionQuarantine, false)
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
		if err := c.audit(ctx, ChangeReleased, rec, by, fmt.Sprintf("%d", rec.GetGeneration())); err != nil {
			return nil, err
		}
		c.observe("released", rec.GetKind())
		c.Log.Info().Str("image", ref.String()).Str("by", by).Str("reason", reason).Msg("image released from quarantine")
		return c.enforce(ctx, key, ref, ActionRelease, false)
	}
}

// enforce runs the enforcers of ref for action where the record does not
// already say they did it (again: run them all, a push may have undone
// it). It records each outcome and returns the record; an enforcer that
// failed makes it return an error after recording, so the event is
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
	if rec.GetMode() != ModeEnforce {
		changed := false
		for _, e := range enforcers {
			if last := lastEnforcement(rec, e.Name()); last != nil && last.GetAction() == action {
				continue
			}
			setEnforcement(rec, &customsv1.Enforcement{Enforcer: e.Name(), Action: action, Outcome: OutcomeDryRun,
				Detail: "dry-run: would " + action + " " + ref.String() + " (" + e.Name() + ")", At: timestamppb.New(now())})
			changed = true
		}
		if changed {
			if err := c.write(ctx, key, rev, rec); err != nil && !errors.Is(err, errConflict) {
				return nil, err
			}
		}
		return rec, nil
	}
	var failed []string
	for _, e := range enforcers {
		last := lastEnforcement(rec, e.Name())
		if !again && last != nil && last.GetAction() == action && last.GetOutcome() == OutcomeDone {
			continue
		}
		var detail string
		var err error
		if action == ActionQuarantine {
			detail, err = e.Quarantine(ctx, ref, rec.GetReason())
		} else {
			detail, err = e.Release(ctx, ref)
		}
		en := &customsv1.Enforcement{Enforcer: e.Name(), Action: action, Outcome: OutcomeDone, Detail: detail, At: timestamppb.New(now()), Attempts: 1}
		if last != nil && last.GetAction() == action {
			en.Attempts = last.GetAttempts() + 1
		}
		change := ChangeEnforced
		if err != nil {
			en.Outcome, en.Error = OutcomeFailed, err.Error()
			change = ChangeEnforcementFailed
			failed = append(failed, e.Name()+": "+err.Error())
			c.observe("enforcement_failed", rec.GetKind())
			c.Log.Warn().Err(err).Str("image", ref.String()).Str("enforcer", e.Name()).Str("action", action).
				Uint32("attempts", en.GetAttempts()).Msg("quarantine enforcement failed")
		}
		if again && err == nil && last != nil && last.GetOutcome() == OutcomeDone && last.GetAction() == action {
			// Re-applied after a push: nothing new for the audit.
			setEnforcement(rec, en)
			continue
		}
		setEnforcement(rec, en)
		// Written after each enforcer, so a crash does not repeat the ones
		// that finished.
		for {
			err := c.write(ctx, key, rev, rec)
			if err == nil {
				break
			}
			if !errors.Is(err, errConflict) {
				return nil, err
			}
			// Someone else changed the record (a release while enforcing):
			// keep their change, add this outcome.
			cur, crev, gerr := Get(ctx, c.KV, key)
			if gerr != nil {
				return nil, fmt.Errorf("read quarantine record: %w", gerr)
			}
			setEnforcement(cur, en)
			rec, rev = cur, crev
		}
		_, rev, err = Get(ctx, c.KV, key)
		if err != nil {
			return nil, fmt.Errorf("read quarantine record: %w", err)
		}
		if aerr := c.audit(ctx, change, rec, ByCustoms, fmt.Sprintf("%d:%s:%s:%d", rec.GetGeneration(), e.Name(), action, en.GetAttempts())); aerr != nil {
			return nil, aerr
		}
	}
	if again {
		if err := c.write(ctx, key, rev, rec); err != nil && !errors.Is(err, errConflict) {
			return nil, err
		}
	}
	if len(failed) > 0 {
		return rec, fmt.Errorf("enforce %s of %s: %s", action, ref, strings.Join(failed, "; "))
	}
	return rec, nil
}

var errConflict = errors.New("record changed concurrently")

// write stores rec by compare-and-set on rev (0: the key must not exist).
func (c *Controller) write(ctx context.Context, key string, rev uint64, rec *customsv1.QuarantineRecord) error {
	b, err := proto.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode quarantine record: %w", err)
	}
	if rev == 0 {
		_, err = c.KV.Create(ctx, key, b)
	} else {
		_, err = c.KV.Update(ctx, key, b, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return errConflict
	}
	if err != nil {
		return fmt.Errorf("write quarantine record: %w", err)
	}
	return nil
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
