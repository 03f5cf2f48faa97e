package scanner

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/customs-scan/customs/pkg/queue"
)

// queueCollector reports the job queue and the dead letters as the server
// sees them, read at scrape time: what alerting on a growing queue (and
// KEDA, which reads the same consumer numbers) needs. Every scanner
// reports the same values; aggregate with max, not sum.
type queueCollector struct {
	js       jetstream.JetStream
	consumer jetstream.Consumer
	pending  *prometheus.Desc
	inFlight *prometheus.Desc
	dead     *prometheus.Desc
}

func newQueueCollector(js jetstream.JetStream, consumer jetstream.Consumer) *queueCollector {
	return &queueCollector{
		js: js, consumer: consumer,
		pending: prometheus.NewDesc("customs_scanner_jobs_pending",
			"Jobs waiting in CUSTOMS_JOBS for a scanner (the scanner consumer's num_pending).", nil, nil),
		inFlight: prometheus.NewDesc("customs_scanner_jobs_in_flight",
			"Jobs delivered to scanners and not yet acknowledged (num_ack_pending).", nil, nil),
		dead: prometheus.NewDesc("customs_dead_letters",
			"Messages kept in CUSTOMS_DLQ (30 days), by subject: scan (jobs given up), reports (refused report events), alerts (refused by a destination).",
			[]string{"subject"}, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.inFlight
	ch <- c.dead
}

// Collect asks NATS, bounded: an unreachable server leaves the series out
// of this scrape rather than reporting a made-up zero.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if info, err := c.consumer.Info(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending))
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(info.NumAckPending))
	}
	s, err := c.js.Stream(ctx, queue.DLQStream)
	if err != nil {
		return
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(queue.DLQSubjectPrefix+">"))
	if err != nil {
		return
	}
	// The three subjects always appear, so a first dead letter is a change
	// from 0 that rules can see.
	counts := map[string]uint64{"scan": 0, "reports": 0, "alerts": 0}
	for subject, n := range info.State.Subjects {
		counts[strings.TrimPrefix(subject, queue.DLQSubjectPrefix)] += n
	}
	for subject, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(n), subject)
	}
}
