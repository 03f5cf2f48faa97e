package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// errPermanent marks errors that no retry can fix.
var errPermanent = errors.New("permanent")

type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() }
func (e permanentError) Unwrap() []error      { return []error{e.err, errPermanent} }
func (e permanentError) Is(target error) bool { return target == errPermanent }

// Permanent marks err as one that retrying cannot fix: the message is
// dead-lettered and terminated instead of redelivered.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool { return errors.Is(err, errPermanent) }

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e retryAfterError) Error() string { return e.err.Error() }
func (e retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as transient with a server-suggested delay
// (e.g. an HTTP Retry-After).
func RetryAfter(err error, after time.Duration) error {
	return retryAfterError{err: err, after: after}
}

// Action is what happens to a message once its handler returned.
type Action int

// Actions, the message outcome table's columns.
const (
	ActionAck  Action = iota // done: DoubleAck
	ActionNak                // transient: redeliver after Delay
	ActionTerm               // permanent, or out of attempts: dead-letter, then Term
)

func (a Action) String() string {
	switch a {
	case ActionAck:
		return "ack"
	case ActionNak:
		return "nak"
	case ActionTerm:
		return "term"
	}
	return "unknown"
}

// Outcome is the decision for one delivery.
type Outcome struct {
	Action Action
	Delay  time.Duration
	Reason string
	Err    error // the handler's error, nil on ack
}

// Backoff is the default redelivery delay: exponential from 2 s, capped at
// 5 min, with jitter so a burst of failures does not retry in lockstep.
func Backoff(delivered uint64) time.Duration {
	d := 2 * time.Second
	for i := uint64(1); i < delivered && d < 5*time.Minute; i++ {
		d *= 2
	}
	d = min(d, 5*time.Minute)
	return d + rand.N(d/4+1)
}

// Decide is the message outcome table. It is the only place where a
// handler's error becomes an ack decision:
//
//	nil                             → ack
//	Permanent(err)                  → term (after dead-lettering)
//	transient, attempts left        → nak with max(RetryAfter, backoff)
//	transient, last attempt         → term (after dead-lettering)
//	shutting down (ctx cancelled)   → nak without delay, so another worker takes it now
//
// maxDeliver ≤ 0 means unlimited attempts.
func Decide(err error, delivered uint64, maxDeliver int, shuttingDown bool, backoff func(uint64) time.Duration) Outcome {
	switch {
	case err == nil:
		return Outcome{Action: ActionAck}
	case shuttingDown:
		return Outcome{Action: ActionNak, Reason: "shutdown: " + err.Error(), Err: err}
	case IsPermanent(err):
		return Outcome{Action: ActionTerm, Reason: err.Error(), Err: err}
	case maxDeliver > 0 && delivered >= uint64(maxDeliver):
		return Outcome{Action: ActionTerm, Reason: fmt.Sprintf("gave up after %d attempts: %v", delivered, err), Err: err}
	}
	delay := backoff(delivered)
	var ra retryAfterError
	if errors.As(err, &ra) && ra.after > delay {
		delay = ra.after
	}
	return Outcome{Action: ActionNak, Delay: delay, Reason: err.Error(), Err: err}
}

// Handler processes one message. Return nil when done, Permanent(err) when
// the message can never succeed, any other error to retry later.
type Handler func(ctx context.Context, msg jetstream.Msg) error

// GiveUpFunc records a message Customs stops retrying (dead letter, failed
// report) before it is terminated. If it fails, the message is redelivered
// instead: a job is never dropped without a record.
type GiveUpFunc func(ctx context.Context, msg jetstream.Msg, out Outcome) error

// Worker pulls messages one at a time per slot from a durable consumer,
// keeps them alive with InProgress while the handler runs, and applies
// the outcome table.
type Worker struct {
	Consumer   jetstream.Consumer
	Handler    Handler
	GiveUp     GiveUpFunc // optional
	Slots      int        // concurrent messages; each slot pulls one at a time
	AckWait    time.Duration
	MaxDeliver int
	Backoff    func(uint64) time.Duration // default Backoff
	// Observe, when set, sees each outcome (for metrics).
	Observe func(Outcome)
	Log     zerolog.Logger
}

// Run pulls and handles messages until ctx is cancelled.
func (w *Worker) Run(ctx context.Context) error {
	slots := max(w.Slots, 1)
	var wg sync.WaitGroup
	for i := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.slot(ctx, i)
		}()
	}
	wg.Wait()
	return nil
}

func (w *Worker) slot(ctx context.Context, slot int) {
	log := w.Log.With().Int("slot", slot).Logger()
	for ctx.Err() == nil {
		// Fetch(1): a pulled message's ack timer is already running, so a
		// slot never holds more than the one it is working on.
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		batch, err := w.Consumer.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return
			}
			log.Warn().Err(err).Msg("fetch failed; retrying")
			sleep(ctx, time.Second)
			continue
		}
		for msg := range batch.Messages() {
			w.handle(ctx, msg)
		}
		cancel()
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) &&
			!errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			log.Warn().Err(err).Msg("fetch ended with an error; retrying")
			sleep(ctx, time.Second)
		}
	}
}

func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	var delivered uint64 = 1
	var streamSeq uint64
	if md, err := msg.Metadata(); err == nil {
		delivered = md.NumDelivered
		streamSeq = md.Sequence.Stream
	}
	log := w.Log.With().Str("subject", msg.Subject()).Uint64("stream_seq", streamSeq).Uint64("delivery", delivered).Logger()

	// The handler (and the libraries it calls, which log through
	// zerolog.Ctx) logs with the message's fields.
	hctx, cancel := context.WithCancel(log.WithContext(ctx))
	stop := w.heartbeat(hctx, msg, log)
	err := w.safeHandle(hctx, msg)
	stop()
	cancel()

	backoff := w.Backoff
	if backoff == nil {
		backoff = Backoff
	}
	out := Decide(err, delivered, w.MaxDeliver, ctx.Err() != nil, backoff)
	// Acks and dead letters outlive a shutdown: use a fresh short context.
	actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer acancel()
	if out.Action == ActionTerm && w.GiveUp != nil {
		if gerr := w.GiveUp(actx, msg, out); gerr != nil {
			log.Error().Err(gerr).Str("reason", out.Reason).Msg("could not record a given-up message; redelivering it")
			out = Outcome{Action: ActionNak, Delay: backoff(delivered), Reason: "dead-letter failed: " + gerr.Error(), Err: gerr}
		}
	}
	var aerr error
	switch out.Action {
	case ActionAck:
		aerr = msg.DoubleAck(actx)
	case ActionNak:
		aerr = msg.NakWithDelay(out.Delay)
		log.Warn().Str("reason", out.Reason).Dur("retry_in", out.Delay).Msg("message will be retried")
	case ActionTerm:
		aerr = msg.TermWithReason(truncate(out.Reason, 1024))
		log.Warn().Str("reason", out.Reason).Msg("message terminated")
	}
	if aerr != nil {
		// The server redelivers after AckWait: nothing is lost, work may repeat.
		log.Warn().Err(aerr).Str("action", out.Action.String()).Msg("ack failed; message will be redelivered")
	}
	if w.Observe != nil {
		w.Observe(out)
	}
}

// safeHandle turns a handler panic into a permanent error: a message that
// crashes the handler would crash every worker it is redelivered to.
func (w *Worker) safeHandle(ctx context.Context, msg jetstream.Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("handler panicked: %v", r))
		}
	}()
	return w.Handler(ctx, msg)
}

// heartbeat sends InProgress every AckWait/3 until stopped, so a long scan
// is not redelivered to another worker while it is still running.
func (w *Worker) heartbeat(ctx context.Context, msg jetstream.Msg, log zerolog.Logger) (stop func()) {
	every := w.AckWait / 3
	if every <= 0 {
		every = 10 * time.Second
	}
	done := make(chan struct{})
	var once sync.Once
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Debug().Err(err).Msg("in-progress heartbeat failed")
				}
			}
		}
	}()
	return func() { once.Do(func() { close(done) }) }
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
