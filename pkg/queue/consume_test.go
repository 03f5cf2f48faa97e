package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
)

func noBackoff(uint64) time.Duration { return 10 * time.Millisecond }

func TestDecideTable(t *testing.T) {
	transient := errors.New("registry said 503")
	cases := []struct {
		name       string
		err        error
		delivered  uint64
		maxDeliver int
		shutdown   bool
		want       queue.Action
	}{
		{"success", nil, 1, 5, false, queue.ActionAck},
		{"permanent", queue.Permanent(errors.New("404")), 1, 5, false, queue.ActionTerm},
		{"wrapped permanent", fmt.Errorf("scan: %w", queue.Permanent(errors.New("bomb"))), 1, 5, false, queue.ActionTerm},
		{"transient", transient, 1, 5, false, queue.ActionNak},
		{"transient, last attempt", transient, 5, 5, false, queue.ActionTerm},
		{"transient, unlimited", transient, 500, 0, false, queue.ActionNak},
		{"shutdown beats permanent", queue.Permanent(transient), 1, 5, true, queue.ActionNak},
	}
	for _, c := range cases {
		got := queue.Decide(c.err, c.delivered, c.maxDeliver, c.shutdown, noBackoff)
		if got.Action != c.want {
			t.Errorf("%s: %v, want %v", c.name, got.Action, c.want)
		}
		if c.want == queue.ActionTerm && got.Reason == "" {
			t.Errorf("%s: term without a reason", c.name)
		}
	}
	ra := queue.Decide(queue.RetryAfter(transient, time.Minute), 1, 5, false, noBackoff)
	if ra.Action != queue.ActionNak || ra.Delay != time.Minute {
		t.Errorf("RetryAfter: %+v", ra)
	}
	if d := queue.Backoff(20); d < 5*time.Minute || d > 5*time.Minute+5*time.Minute/4 {
		t.Errorf("Backoff(20) = %v, want about the 5 min cap", d)
	}
}

// setup returns a JetStream with the Customs streams and a consumer on the
// jobs stream.
func setup(t *testing.T, ackWait time.Duration, maxDeliver int) (jetstream.JetStream, jetstream.Consumer) {
	t.Helper()
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	ctx := context.Background()
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, queue.JobsStream, jetstream.ConsumerConfig{
		Durable: "test", AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxDeliver: maxDeliver,
	})
	if err != nil {
		t.Fatal(err)
	}
	return js, cons
}

func runWorker(t *testing.T, w *queue.Worker) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestTransientErrorsAreRetriedThenSucceed(t *testing.T) {
	js, cons := setup(t, 5*time.Second, 5)
	if _, err := js.Publish(context.Background(), queue.JobsSubjectPrefix+"test", []byte("job")); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	stop := runWorker(t, &queue.Worker{
		Consumer: cons, Slots: 1, AckWait: 5 * time.Second, MaxDeliver: 5, Backoff: noBackoff, Log: zerolog.Nop(),
		Handler: func(ctx context.Context, msg jetstream.Msg) error {
			if calls.Add(1) < 3 {
				return errors.New("registry 503")
			}
			return nil
		},
	})
	defer stop()
	waitFor(t, "the job to be acked", func() bool { return streamMsgs(t, js, queue.JobsStream) == 0 })
	if n := calls.Load(); n != 3 {
		t.Errorf("handler ran %d times, want 3", n)
	}
}

func TestPermanentErrorIsDeadLetteredOnce(t *testing.T) {
	js, cons := setup(t, 5*time.Second, 5)
	if _, err := js.Publish(context.Background(), queue.JobsSubjectPrefix+"test", []byte("poison")); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var mu sync.Mutex
	var gaveUp []queue.Outcome
	stop := runWorker(t, &queue.Worker{
		Consumer: cons, Slots: 1, AckWait: 5 * time.Second, MaxDeliver: 5, Backoff: noBackoff, Log: zerolog.Nop(),
		Handler: func(ctx context.Context, msg jetstream.Msg) error {
			calls.Add(1)
			panic("parser blew up")
		},
		GiveUp: func(ctx context.Context, msg jetstream.Msg, out queue.Outcome) error {
			mu.Lock()
			defer mu.Unlock()
			gaveUp = append(gaveUp, out)
			return nil
		},
	})
	defer stop()
	waitFor(t, "the job to be terminated", func() bool { return streamMsgs(t, js, queue.JobsStream) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if calls.Load() != 1 || len(gaveUp) != 1 || !queue.IsPermanent(gaveUp[0].Err) {
		t.Fatalf("calls %d, gave up %+v; want one call, one permanent give-up", calls.Load(), gaveUp)
	}
}

func TestGivingUpAfterMaxDeliver(t *testing.T) {
	js, cons := setup(t, 5*time.Second, 3)
	if _, err := js.Publish(context.Background(), queue.JobsSubjectPrefix+"test", []byte("flaky")); err != nil {
		t.Fatal(err)
	}
	var calls, gaveUp atomic.Int32
	stop := runWorker(t, &queue.Worker{
		Consumer: cons, Slots: 1, AckWait: 5 * time.Second, MaxDeliver: 3, Backoff: noBackoff, Log: zerolog.Nop(),
		Handler: func(ctx context.Context, msg jetstream.Msg) error { calls.Add(1); return errors.New("timeout") },
		GiveUp:  func(ctx context.Context, msg jetstream.Msg, out queue.Outcome) error { gaveUp.Add(1); return nil },
	})
	defer stop()
	waitFor(t, "the job to be given up", func() bool { return gaveUp.Load() == 1 })
	waitFor(t, "the job to leave the queue", func() bool { return streamMsgs(t, js, queue.JobsStream) == 0 })
	if calls.Load() != 3 {
		t.Errorf("handler ran %d times, want 3 (MaxDeliver)", calls.Load())
	}
}

func TestFailedDeadLetterKeepsTheJob(t *testing.T) {
	js, cons := setup(t, 5*time.Second, 5)
	if _, err := js.Publish(context.Background(), queue.JobsSubjectPrefix+"test", []byte("poison")); err != nil {
		t.Fatal(err)
	}
	var giveUps atomic.Int32
	stop := runWorker(t, &queue.Worker{
		Consumer: cons, Slots: 1, AckWait: 5 * time.Second, MaxDeliver: 5, Backoff: noBackoff, Log: zerolog.Nop(),
		Handler: func(ctx context.Context, msg jetstream.Msg) error { return queue.Permanent(errors.New("bad")) },
		GiveUp: func(ctx context.Context, msg jetstream.Msg, out queue.Outcome) error {
			if giveUps.Add(1) == 1 {
				return errors.New("DLQ unavailable")
			}
			return nil
		},
	})
	defer stop()
	waitFor(t, "a second give-up attempt", func() bool { return giveUps.Load() >= 2 })
	waitFor(t, "the job to leave the queue", func() bool { return streamMsgs(t, js, queue.JobsStream) == 0 })
}

// A scan longer than AckWait is not redelivered while the heartbeat runs.
func TestHeartbeatPreventsRedelivery(t *testing.T) {
	const ackWait = 900 * time.Millisecond
	js, cons := setup(t, ackWait, 5)
	if _, err := js.Publish(context.Background(), queue.JobsSubjectPrefix+"test", []byte("slow")); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	stop := runWorker(t, &queue.Worker{
		Consumer: cons, Slots: 2, AckWait: ackWait, MaxDeliver: 5, Backoff: noBackoff, Log: zerolog.Nop(),
		Handler: func(ctx context.Context, msg jetstream.Msg) error {
			calls.Add(1)
			time.Sleep(4 * ackWait)
			return nil
		},
	})
	defer stop()
	waitFor(t, "the job to be acked", func() bool { return streamMsgs(t, js, queue.JobsStream) == 0 })
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1: the heartbeat did not hold the job", n)
	}
}

// Libraries called by a handler log through zerolog.Ctx: the worker puts
// its logger, with the message's fields, on the handler's context.
func TestHandlerContextCarriesTheLogger(t *testing.T) {
	js, cons := setup(t, 5*time.Second, 5)
	if _, err := js.Publish(context.Background(), queue.JobsSubjectPrefix+"test", []byte("job")); err != nil {
		t.Fatal(err)
	}
	var buf svcmaintest.LogBuffer
	stop := runWorker(t, &queue.Worker{
		Consumer: cons, Slots: 1, AckWait: 5 * time.Second, MaxDeliver: 5, Backoff: noBackoff,
		Log: zerolog.New(&buf).With().Str("service", "test").Logger(),
		Handler: func(ctx context.Context, msg jetstream.Msg) error {
			zerolog.Ctx(ctx).Warn().Msg("analyzer failed; file skipped")
			return nil
		},
	})
	defer stop()
	waitFor(t, "the job to be acked", func() bool { return streamMsgs(t, js, queue.JobsStream) == 0 })
	out := buf.String()
	for _, want := range []string{`"service":"test"`, `"subject":"customs.jobs.test"`, `"stream_seq":1`, `"message":"analyzer failed; file skipped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %s", out, want)
		}
	}
}
