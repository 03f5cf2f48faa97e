package scanner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
)

func TestQueueCollector(t *testing.T) {
	srv := queuetest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, queue.JobsStream, jetstream.ConsumerConfig{
		Durable: queue.ScannerConsumer, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: queue.JobsSubjectPrefix + ">",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{queue.JobsSubjectPrefix + "distribution", queue.JobsSubjectPrefix + "harbor", queue.JobsSubjectPrefix + "ecr"} {
		if _, err := js.Publish(ctx, subject, []byte("job")); err != nil {
			t.Fatal(err)
		}
	}
	// One delivered and not acknowledged: in flight.
	batch, err := cons.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}
	if _, err := js.Publish(ctx, queue.DLQSubjectPrefix+"scan", []byte("dead")); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP customs_dead_letters Messages kept in CUSTOMS_DLQ (30 days), by subject: scan (jobs given up), reports (refused report events), alerts (refused by a destination).
# TYPE customs_dead_letters gauge
customs_dead_letters{subject="alerts"} 0
customs_dead_letters{subject="reports"} 0
customs_dead_letters{subject="scan"} 1
# HELP customs_scanner_jobs_in_flight Jobs delivered to scanners and not yet acknowledged (num_ack_pending).
# TYPE customs_scanner_jobs_in_flight gauge
customs_scanner_jobs_in_flight 1
# HELP customs_scanner_jobs_pending Jobs waiting in CUSTOMS_JOBS for a scanner (the scanner consumer's num_pending).
# TYPE customs_scanner_jobs_pending gauge
customs_scanner_jobs_pending 2
`
	// The server's consumer counts settle a moment after a fetch (1 in 40
	// runs read 0 or 1 pending right after it): read until they agree, or
	// give the last difference.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err = testutil.CollectAndCompare(newQueueCollector(js, cons), strings.NewReader(want)); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Error(err)
	}
	// NATS gone: no series rather than zeros.
	srv.Shutdown()
	if n := testutil.CollectAndCount(newQueueCollector(js, cons)); n != 0 {
		t.Errorf("%d series with NATS down, want none", n)
	}
}
