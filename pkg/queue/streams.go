// Package queue holds the JetStream topology Customs runs on and the
// consume loop that turns a handler's error into an ack decision.
package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Stream and subject names. Every service calls EnsureStreams with the same
// definitions, so start order does not matter.
const (
	JobsStream        = "CUSTOMS_JOBS"
	JobsSubjectPrefix = "customs.jobs."

	ReportsStream        = "CUSTOMS_REPORTS"
	ReportsSubjectPrefix = "customs.reports."

	DLQStream        = "CUSTOMS_DLQ"
	DLQSubjectPrefix = "customs.dlq."

	// AdvisoriesStream captures the server's max-deliveries and terminated
	// advisories for the jobs stream: the server only sends advisories when
	// someone listens, and a job that exhausted MaxDeliver stays in the work
	// queue, so this is where such jobs can be found again.
	AdvisoriesStream = "CUSTOMS_ADVISORIES"

	// RematchStream is a work queue of RematchRequest, one per published
	// database version (Nats-Msg-Id "rematch:<version>"): exactly one
	// results process re-matches the stored inventories.
	RematchStream        = "CUSTOMS_REMATCH"
	RematchSubjectPrefix = "customs.rematch."

	// EventsStream carries events for alerting: NewVulnerabilities on
	// customs.events.vulnerabilities.<digest hex>.
	EventsStream              = "CUSTOMS_EVENTS"
	EventsSubjectPrefix       = "customs.events."
	NewVulnerabilitiesSubject = EventsSubjectPrefix + "vulnerabilities."
	// ReportStoredSubject: results stored a report (ReportStored), on
	// customs.events.stored.<digest hex>.
	ReportStoredSubject = EventsSubjectPrefix + "stored."
	// AlertsSubject: what is new about an image (Alert), on
	// customs.events.alerts.<digest hex>; the notifier's input.
	AlertsSubject = EventsSubjectPrefix + "alerts."

	// QuarantineAuditStream keeps every change of a quarantine record
	// (QuarantineAudit on customs.audit.quarantine.<digest hex>): no age
	// limit, and deleting or purging is refused by the server.
	QuarantineAuditStream        = "CUSTOMS_QUARANTINE_AUDIT"
	QuarantineAuditSubjectPrefix = "customs.audit.quarantine."
	QuarantineConsumer           = "results-quarantine"

	ScannerConsumer = "scanner"
	ResultsConsumer = "results"
	RematchConsumer = "results-rematch"
)

// Topology tunes the streams; the zero value gives the defaults.
type Topology struct {
	// Replicas for every stream (1 for a single server, 3 in a cluster).
	Replicas int
	// DuplicateWindow is how long a repeated Nats-Msg-Id is dropped. Registries
	// retry for longer than the 2-minute server default.
	DuplicateWindow time.Duration
	// JobsMaxAge bounds how long an unconsumed job is kept.
	JobsMaxAge time.Duration
}

func (t Topology) withDefaults() Topology {
	if t.Replicas <= 0 {
		t.Replicas = 1
	}
	if t.DuplicateWindow <= 0 {
		t.DuplicateWindow = 10 * time.Minute
	}
	if t.JobsMaxAge <= 0 {
		t.JobsMaxAge = 7 * 24 * time.Hour
	}
	return t
}

// StreamConfigs returns the stream definitions, for EnsureStreams and tests.
func (t Topology) StreamConfigs() []jetstream.StreamConfig {
	t = t.withDefaults()
	return []jetstream.StreamConfig{
		{
			Name:        JobsStream,
			Description: "scan jobs: one per manifest or index push, keyed by registry/repository@digest",
			Subjects:    []string{JobsSubjectPrefix + ">"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardNew,
			MaxAge:      t.JobsMaxAge,
			MaxMsgs:     1_000_000,
			Duplicates:  t.DuplicateWindow,
			Replicas:    t.Replicas,
		},
		{
			Name:        ReportsStream,
			Description: "finished scans (ScanCompleted), read by results and by later alerting consumers",
			Subjects:    []string{ReportsSubjectPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      7 * 24 * time.Hour,
			Duplicates:  t.DuplicateWindow,
			Replicas:    t.Replicas,
		},
		{
			Name:        DLQStream,
			Description: "jobs Customs gave up on, with the reason (DeadLetter)",
			Subjects:    []string{DLQSubjectPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      30 * 24 * time.Hour,
			Duplicates:  t.DuplicateWindow,
			Replicas:    t.Replicas,
		},
		{
			Name:        RematchStream,
			Description: "re-match requests (RematchRequest), one per published vulnerability database version",
			Subjects:    []string{RematchSubjectPrefix + ">"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      7 * 24 * time.Hour,
			Duplicates:  t.DuplicateWindow,
			Replicas:    t.Replicas,
		},
		{
			Name:        EventsStream,
			Description: "events for alerting and quarantine (NewVulnerabilities, ReportStored)",
			Subjects:    []string{EventsSubjectPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      30 * 24 * time.Hour,
			Duplicates:  t.DuplicateWindow,
			Replicas:    t.Replicas,
		},
		{
			Name:        QuarantineAuditStream,
			Description: "every change of a quarantine record (QuarantineAudit): kept, never edited",
			Subjects:    []string{QuarantineAuditSubjectPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			DenyDelete:  true,
			DenyPurge:   true,
			Duplicates:  t.DuplicateWindow,
			Replicas:    t.Replicas,
		},
		{
			Name:        AdvisoriesStream,
			Description: "max-deliveries and terminated advisories of the scanner consumer",
			Subjects: []string{
				"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + JobsStream + ".>",
				"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + JobsStream + ".>",
			},
			Retention: jetstream.LimitsPolicy,
			Storage:   jetstream.FileStorage,
			MaxAge:    30 * 24 * time.Hour,
			Replicas:  t.Replicas,
		},
	}
}

// EnsureStreams creates or updates every stream Customs uses.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, t Topology) error {
	for _, cfg := range t.StreamConfigs() {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// EnsureConsumer creates or updates a durable consumer, retrying while
// JetStream is unavailable (a server restarting, a leader election):
// a service that starts during a NATS outage waits instead of exiting.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig, log zerolog.Logger) (jetstream.Consumer, error) {
	return Ensure(ctx, "consumer "+cfg.Durable+" on "+stream, log, func(ctx context.Context) (jetstream.Consumer, error) {
		return js.CreateOrUpdateConsumer(ctx, stream, cfg)
	})
}

// Ensure calls create until it succeeds or ctx ends, with capped
// exponential backoff: for JetStream resources (consumers, KV buckets,
// object stores) a service needs before it can work.
func Ensure[T any](ctx context.Context, what string, log zerolog.Logger, create func(ctx context.Context) (T, error)) (T, error) {
	wait := 250 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := create(cctx)
		cancel()
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil {
			var zero T
			return zero, fmt.Errorf("%s: %w", what, err)
		}
		log.Warn().Err(err).Str("resource", what).Dur("retry_in", wait).Msg("cannot create JetStream resource yet; retrying")
		sleep(ctx, wait)
		wait = min(wait*2, 5*time.Second)
	}
}
