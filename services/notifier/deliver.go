package notifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/queue"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// consume pulls alert events and hands each destination's part to that
// destination's worker. The consumer's MaxAckPending bounds the events
// in flight, and each worker's queue holds as many, so handing over never
// waits on a slow destination. A consumer deleted under it (an operator,
// a stream re-created) is created again.
func (s *Service) consume(ctx context.Context, cons jetstream.Consumer, sent jetstream.KeyValue) error {
	var wg sync.WaitGroup
	for _, name := range s.order {
		w := s.workers[name]
		w.sent = sent
		wg.Go(func() { w.run(ctx) })
	}
	defer wg.Wait()
	s.deps.Log.Info().Msg("consuming alerts")
	for {
		err := s.pull(ctx, cons)
		if ctx.Err() != nil {
			return nil
		}
		s.deps.Log.Warn().Err(err).Msg("alert consumer stopped; binding it again")
		sleep(ctx, time.Second)
		if cons, err = queue.Ensure(ctx, "consumer "+Consumer+" on "+queue.EventsStream, s.deps.Log, s.ensureConsumer); err != nil {
			return nilIfDone(ctx, fmt.Errorf("notifier: %w", err))
		}
	}
}

// pull dispatches messages until ctx ends or the iterator cannot go on.
func (s *Service) pull(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(max(1, min(s.cfg.MaxAckPending, 256))))
	if err != nil {
		return fmt.Errorf("consume %s: %w", queue.EventsStream, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		switch {
		case err == nil:
			s.dispatch(ctx, msg)
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, jetstream.ErrMsgIteratorClosed), errors.Is(err, jetstream.ErrConsumerDeleted):
			return err
		default:
			// Missed heartbeats, a reconnect: the iterator goes on.
			s.deps.Log.Warn().Err(err).Msg("alert consumer error; continuing")
			sleep(ctx, 100*time.Millisecond)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// dispatch routes one event to the destinations' queues.
func (s *Service) dispatch(ctx context.Context, msg jetstream.Msg) {
	var delivered, seq uint64 = 1, 0
	if md, err := msg.Metadata(); err == nil {
		delivered, seq = md.NumDelivered, md.Sequence.Stream
	}
	log := s.deps.Log.With().Str("subject", msg.Subject()).Uint64("stream_seq", seq).Uint64("delivery", delivered).Logger()
	a := &customsv1.Alert{}
	if err := proto.Unmarshal(msg.Data(), a); err != nil || a.GetId() == "" || a.GetDigest() == "" {
		reason := "undecodable alert"
		if err == nil {
			reason = "alert without id or digest"
		}
		s.giveUpEvent(ctx, msg, reason, log)
		return
	}
	log = log.With().Str("alert_id", a.GetId()).Str("kind", a.GetKind()).Str("repository", a.GetRepository()).Str("digest", a.GetDigest()).Logger()
	plan := s.alerts.Plan(a)
	if len(plan) == 0 {
		log.Debug().Msg("alert matches no route")
		s.settle(msg, false, 0, delivered, log)
		return
	}
	p := &pending{svc: s, msg: msg, delivered: delivered, log: log}
	p.left.Store(int32(len(plan)))
	p.stop = s.heartbeat(msg, log)
	for _, name := range s.order {
		b, ok := plan[name]
		if !ok {
			continue
		}
		select {
		case s.workers[name].queue <- job{p: p, alert: b}:
		case <-ctx.Done():
			p.done(outcome{retry: true})
		}
	}
}

// giveUpEvent dead-letters an event that can never be sent, then
// terminates it; if the dead letter cannot be written the event is
// redelivered instead (never dropped with only a log line).
func (s *Service) giveUpEvent(ctx context.Context, msg jetstream.Msg, reason string, log zerolog.Logger) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.publishDead(actx, msg, reason, "", 0); err != nil {
		log.Error().Err(err).Str("reason", reason).Msg("could not dead-letter an alert event; redelivering it")
		_ = msg.NakWithDelay(queue.Backoff(1))
		return
	}
	log.Warn().Str("reason", reason).Msg("alert event dead-lettered")
	_ = msg.TermWithReason(reason)
}

// publishDead writes the event, unchanged, to DeadAlertSubject with the
// reason, the subject, the destination and its HTTP status in headers:
// never the destination's URL.
func (s *Service) publishDead(ctx context.Context, msg jetstream.Msg, reason, destination string, status int) error {
	dl := nats.NewMsg(DeadAlertSubject)
	dl.Data = msg.Data()
	dl.Header.Set("Customs-Dead-Reason", reason)
	dl.Header.Set("Customs-Dead-Subject", msg.Subject())
	if destination != "" {
		dl.Header.Set("Customs-Dead-Destination", destination)
	}
	if status != 0 {
		dl.Header.Set("Customs-Dead-Status", strconv.Itoa(status))
	}
	var opts []jetstream.PublishOpt
	if md, err := msg.Metadata(); err == nil {
		// One dead letter per event and destination, however often the
		// event comes back inside the duplicate window.
		opts = append(opts, jetstream.WithMsgID(fmt.Sprintf("dlq:%s:%d:%s", queue.EventsStream, md.Sequence.Stream, destination)))
	}
	if _, err := s.deps.JetStream.PublishMsg(ctx, dl, opts...); err != nil {
		return fmt.Errorf("publish dead alert: %w", err)
	}
	return nil
}

// heartbeat keeps an event alive while its messages wait in queues or are
// retried: InProgress every AckWait/3 until stopped.
func (s *Service) heartbeat(msg jetstream.Msg, log zerolog.Logger) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(s.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Debug().Err(err).Msg("in-progress heartbeat failed")
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// settle acknowledges an event, or naks it for redelivery after at least
// delay (and the usual backoff for its delivery count).
func (s *Service) settle(msg jetstream.Msg, retry bool, delay time.Duration, delivered uint64, log zerolog.Logger) {
	if !retry {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := msg.DoubleAck(ctx); err != nil {
			// Redelivered after AckWait; the sent bucket keeps it to
			// one message per destination.
			log.Warn().Err(err).Msg("ack failed; the event will be redelivered")
		}
		return
	}
	delay = max(delay, queue.Backoff(delivered))
	if err := msg.NakWithDelay(delay); err != nil {
		log.Warn().Err(err).Msg("nak failed; the event will be redelivered after the ack wait")
	}
	log.Info().Dur("retry_in", delay).Msg("alert event left for redelivery")
}

// pending is one event whose destinations are being sent to.
type pending struct {
	svc       *Service
	msg       jetstream.Msg
	delivered uint64
	log       zerolog.Logger
	stop      func()
	left      atomic.Int32

	mu    sync.Mutex
	retry bool
	delay time.Duration
}

// outcome is one destination's result for an event.
type outcome struct {
	retry bool
	delay time.Duration
}

// done records one destination's outcome; the last one settles the event.
func (p *pending) done(o outcome) {
	p.mu.Lock()
	if o.retry {
		p.retry, p.delay = true, max(p.delay, o.delay)
	}
	retry, delay := p.retry, p.delay
	p.mu.Unlock()
	if p.left.Add(-1) > 0 {
		return
	}
	p.stop()
	p.svc.settle(p.msg, retry, delay, p.delivered, p.log)
}

// job is one destination's part of an event: the alert as filtered for it.
type job struct {
	p     *pending
	alert *customsv1.Alert
}

// worker sends one destination's messages, one at a time and in order.
type worker struct {
	*target
	svc   *Service
	queue chan job
	sent  jetstream.KeyValue
	log   zerolog.Logger
}

func (w *worker) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-w.queue:
			j.p.done(w.handle(ctx, j))
		}
	}
}

// sentRecord is the value kept under a sent key.
type sentRecord struct {
	Result string    `json:"result"` // sent | dead-lettered
	Status int       `json:"status"`
	At     time.Time `json:"at"`
}

func (w *worker) handle(ctx context.Context, j job) outcome {
	a := j.alert
	log := j.p.log.With().Str("destination", w.Name).Logger()
	key := sentKey(w.Name, a.GetDigest(), a.GetId())
	if _, err := w.sent.Get(ctx, key); err == nil {
		log.Debug().Msg("alert already sent to this destination")
		return outcome{}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		// Sending without knowing would risk a duplicate each time.
		log.Warn().Err(err).Msg("cannot read the sent bucket; the event will be redelivered")
		return outcome{retry: true}
	}
	body, err := render(w.Type, a, w.svc.alerts.PublicURL)
	if err != nil {
		return w.refused(ctx, j, key, fmt.Sprintf("destination %s: cannot render the message: %v", w.Name, err), 0, log)
	}
	res := w.deliver(ctx, w.svc.client, body, a.GetId(), time.Now().Add(w.svc.cfg.RetryWindow), hooks{
		attempt: func(took time.Duration) { w.svc.sendSeconds.WithLabelValues(w.Name).Observe(took.Seconds()) },
		retry: func(res sendResult, wait time.Duration) {
			w.svc.messages.WithLabelValues(w.Name, "retried").Inc()
			log.Info().Int("status", res.Status).Str("error", res.Err.Error()).Dur("retry_in", wait).Msg("destination failed; retrying")
		},
	})
	switch {
	case res.ok():
		w.svc.messages.WithLabelValues(w.Name, "sent").Inc()
		w.record(key, sentRecord{Result: "sent", Status: res.Status, At: time.Now().UTC()}, log)
		log.Info().Int("status", res.Status).Int("items", len(a.GetNewItems())).Msg("alert sent")
		return outcome{}
	case ctx.Err() != nil:
		return outcome{retry: true}
	case res.Retry:
		w.svc.messages.WithLabelValues(w.Name, "retried").Inc()
		log.Warn().Int("status", res.Status).Str("error", res.Err.Error()).Msg("destination still failing; the event will be redelivered")
		return outcome{retry: true, delay: res.RetryAfter}
	}
	return w.refused(ctx, j, key, fmt.Sprintf("destination %s %s", w.Name, res.Err), res.Status, log)
}

// refused dead-letters an alert the destination will never take, and
// records it as done so a redelivery of the event does not try again.
func (w *worker) refused(ctx context.Context, j job, key, reason string, status int, log zerolog.Logger) outcome {
	w.svc.messages.WithLabelValues(w.Name, "failed").Inc()
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := w.svc.publishDead(actx, j.p.msg, reason, w.Name, status); err != nil {
		log.Error().Err(err).Str("reason", reason).Msg("could not dead-letter a refused alert; the event will be redelivered")
		return outcome{retry: true}
	}
	w.record(key, sentRecord{Result: "dead-lettered", Status: status, At: time.Now().UTC()}, log)
	log.Error().Int("status", status).Str("reason", reason).Msg("destination refused the alert; dead-lettered")
	return outcome{}
}

// record writes the sent key. A failure is logged, not retried: the
// message is out, and the worst case is one duplicate if the event is
// redelivered.
func (w *worker) record(key string, r sentRecord, log zerolog.Logger) {
	b, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.sent.Put(ctx, key, b); err != nil {
		log.Warn().Err(err).Msg("could not record a sent alert; a redelivery may send it again")
	}
}

var keyToken = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,128}$`)

// sentKey is <destination>.<digest>.<alert id> with ":" as "_" (KV keys
// allow letters, digits, "-", "_", "=" and "." as separator); a part
// outside that alphabet is replaced by its SHA-256.
func sentKey(destination, digest, id string) string {
	part := func(s string) string {
		if t := strings.ReplaceAll(s, ":", "_"); keyToken.MatchString(t) {
			return t
		}
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:])
	}
	return destination + "." + part(digest) + "." + part(id)
}
