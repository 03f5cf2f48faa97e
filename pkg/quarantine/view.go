package quarantine

import (
	"time"

	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// RecordJSON is a record as the API serves it and the CLI reads it.
type RecordJSON struct {
	Ref           string            `json:"ref"`
	Registry      string            `json:"registry"`
	Repository    string            `json:"repository"`
	Digest        string            `json:"digest"`
	State         string            `json:"state"`
	Mode          string            `json:"mode"`
	Kind          string            `json:"kind"`
	Reason        string            `json:"reason"`
	Rule          string            `json:"rule"`
	ReportSHA256  string            `json:"report_sha256,omitempty"`
	QuarantinedAt *time.Time        `json:"quarantined_at,omitempty"`
	QuarantinedBy string            `json:"quarantined_by"`
	ReleasedAt    *time.Time        `json:"released_at,omitempty"`
	ReleasedBy    string            `json:"released_by,omitempty"`
	ReleaseReason string            `json:"release_reason,omitempty"`
	Generation    uint32            `json:"generation"`
	Evidence      []string          `json:"evidence"`
	Enforcement   []EnforcementJSON `json:"enforcement"`
}

// EnforcementJSON is one enforcer's outcome.
type EnforcementJSON struct {
	Enforcer string     `json:"enforcer"`
	Action   string     `json:"action"`
	Outcome  string     `json:"outcome"`
	Detail   string     `json:"detail,omitempty"`
	Error    string     `json:"error,omitempty"`
	At       *time.Time `json:"at,omitempty"`
	Attempts uint32     `json:"attempts,omitempty"`
}

// AuditJSON is an audit entry.
type AuditJSON struct {
	Change string     `json:"change"`
	At     *time.Time `json:"at,omitempty"`
	By     string     `json:"by"`
	Record RecordJSON `json:"record"`
}

func ts(t interface {
	IsValid() bool
	AsTime() time.Time
}) *time.Time {
	if t == nil || !t.IsValid() {
		return nil
	}
	v := t.AsTime().UTC()
	return &v
}

// View converts a record for JSON.
func View(r *customsv1.QuarantineRecord) RecordJSON {
	v := RecordJSON{
		Ref:      r.GetRegistry() + "/" + r.GetRepository() + "@" + r.GetDigest(),
		Registry: r.GetRegistry(), Repository: r.GetRepository(), Digest: r.GetDigest(),
		State: r.GetState(), Mode: r.GetMode(), Kind: r.GetKind(), Reason: r.GetReason(), Rule: r.GetRule(),
		ReportSHA256: r.GetReportSha256(), QuarantinedBy: r.GetQuarantinedBy(),
		ReleasedBy: r.GetReleasedBy(), ReleaseReason: r.GetReleaseReason(), Generation: r.GetGeneration(),
		Evidence: append([]string{}, r.GetEvidence()...), Enforcement: []EnforcementJSON{},
	}
	if r.GetQuarantinedAt() != nil {
		v.QuarantinedAt = ts(r.GetQuarantinedAt())
	}
	if r.GetReleasedAt() != nil {
		v.ReleasedAt = ts(r.GetReleasedAt())
	}
	for _, e := range r.GetEnforcement() {
		ej := EnforcementJSON{Enforcer: e.GetEnforcer(), Action: e.GetAction(), Outcome: e.GetOutcome(),
			Detail: e.GetDetail(), Error: e.GetError(), Attempts: e.GetAttempts()}
		if e.GetAt() != nil {
			ej.At = ts(e.GetAt())
		}
		v.Enforcement = append(v.Enforcement, ej)
	}
	return v
}

// ViewAudit converts an audit entry for JSON.
func ViewAudit(a *customsv1.QuarantineAudit) AuditJSON {
	v := AuditJSON{Change: a.GetChange(), By: a.GetBy(), Record: View(a.GetRecord())}
	if a.GetAt() != nil {
		v.At = ts(a.GetAt())
	}
	return v
}

// ReportState is what a report carries of its image's quarantine.
type ReportState struct {
	State       string            `json:"state"`
	Mode        string            `json:"mode"`
	Reason      string            `json:"reason"`
	At          *time.Time        `json:"at,omitempty"`
	By          string            `json:"by"`
	ReleasedAt  *time.Time        `json:"released_at,omitempty"`
	ReleasedBy  string            `json:"released_by,omitempty"`
	Enforcement []EnforcementJSON `json:"enforcement"`
}

// StateOf is the report form of a record.
func StateOf(r *customsv1.QuarantineRecord) ReportState {
	v := View(r)
	return ReportState{State: v.State, Mode: v.Mode, Reason: v.Reason, At: v.QuarantinedAt, By: v.QuarantinedBy,
		ReleasedAt: v.ReleasedAt, ReleasedBy: v.ReleasedBy, Enforcement: v.Enforcement}
}
