// Package notifier sends Customs' alerts to chat channels and webhooks:
// it consumes the Alerts results publishes on customs.events.alerts.<hex>,
// routes each by repository, severity, kind and verdict (the alerts file,
// CUSTOMS_ALERTS_FILE), and posts one message per alert per destination:
// Slack Block Kit, a Teams Adaptive Card, Mattermost attachments, a
// Discord embed, a Google Chat card, or a signed JSON body (Standard
// Webhooks) for anything else.
//
//	svc, err := notifier.New(cfg, notifier.Deps{JetStream: js, Ready: natsconn.Ready(nc), Log: log})
//	err = svc.Run(ctx)       // or svc.Serve(ctx, ln)
//
// New checks the configuration, reads the alerts file (its URLs and
// secrets, once) and builds the service; nothing listens or connects yet.
// Run(ctx) listens on cfg.Addr and serves until ctx ends; Serve(ctx, ln)
// is the same on a listener the caller bound. Both return nil once ctx has
// ended and the service has shut down, or the error that stopped it
// first; ln is closed when Serve returns (the lifecycle of the other
// services).
//
// Delivery (deliver.go): one durable consumer, "notifier", and one worker
// goroutine per destination fed by its own queue, so a slow or failing
// destination delays only its own messages. An event is acknowledged
// once every destination it goes to has it; a destination that still
// fails after cfg.RetryWindow gets the event again on redelivery, and
// the KV bucket customs-alerts-sent keeps the others from being sent it
// twice.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/customs-scan/customs/pkg/httpx"
	"github.com/customs-scan/customs/pkg/queue"
)

// JetStream names the notifier uses.
const (
	// Consumer is the durable consumer on queue.EventsStream, filtered to
	// queue.AlertsSubject+">".
	Consumer = "notifier"
	// SentBucket records each (destination, digest, alert id) sent, so
	// a redelivered event is not sent twice.
	SentBucket = "customs-alerts-sent"
	// DeadAlertSubject receives alerts a destination refused for good
	// (4xx other than 408 and 429), with the destination and status in
	// headers; also undecodable events.
	DeadAlertSubject = queue.DLQSubjectPrefix + "alerts"
)

// Config is read from the environment by cmd/notifier. A zero field means
// its default (the envDefault tag), for Go callers as for the
// environment; Validate says what New would refuse.
type Config struct {
	Addr string `env:"CUSTOMS_NOTIFIER_ADDR" envDefault:"127.0.0.1:8085"`
	// AlertsFile is the alerts file: destinations and routes. Required.
	AlertsFile string `env:"CUSTOMS_ALERTS_FILE"`
	// AckWait: an event not acknowledged (nor kept alive) this long is
	// redelivered, e.g. after a crash mid-send.
	AckWait time.Duration `env:"CUSTOMS_NOTIFIER_ACK_WAIT" envDefault:"60s"`
	// RetryWindow is how long one delivery of an event keeps retrying a
	// failing destination (5xx, 429, no answer) before the event is left
	// for a later redelivery.
	RetryWindow time.Duration `env:"CUSTOMS_NOTIFIER_RETRY_WINDOW" envDefault:"2m"`
	// MaxAckPending bounds events in flight, and so every destination's
	// queue.
	MaxAckPending int `env:"CUSTOMS_NOTIFIER_MAX_ACK_PENDING" envDefault:"256"`
	// SentTTL is how long a sent message is remembered (the duplicate
	// window of redeliveries).
	SentTTL time.Duration `env:"CUSTOMS_NOTIFIER_SENT_TTL" envDefault:"720h"`
}

// withDefaults fills the fields a Go caller left zero with the values the
// env tags give the command (TestDefaultsAgree keeps them equal).
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8085"
	}
	if c.AckWait == 0 {
		c.AckWait = 60 * time.Second
	}
	if c.RetryWindow == 0 {
		c.RetryWindow = 2 * time.Minute
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 256
	}
	if c.SentTTL == 0 {
		c.SentTTL = 720 * time.Hour
	}
	return c
}

func (c Config) validateValues() error {
	switch {
	case c.AlertsFile == "":
		return errors.New("notifier: CUSTOMS_ALERTS_FILE is required: the alerts file naming destinations and routes")
	case c.AckWait < 0 || c.AckWait > 0 && c.AckWait < time.Second:
		return errors.New("notifier: CUSTOMS_NOTIFIER_ACK_WAIT must be at least 1s")
	case c.RetryWindow < 0:
		return errors.New("notifier: CUSTOMS_NOTIFIER_RETRY_WINDOW must not be negative")
	case c.MaxAckPending < 0:
		return errors.New("notifier: CUSTOMS_NOTIFIER_MAX_ACK_PENDING must not be negative")
	case c.SentTTL < 0 || c.SentTTL > 0 && c.SentTTL < time.Minute:
		return errors.New("notifier: CUSTOMS_NOTIFIER_SENT_TTL must be at least 1m")
	}
	return nil
}

// Validate refuses what New would: no alerts file, one that does not
// load (errors name its lines, never a URL or secret), out-of-range
// durations. cmd/notifier calls it before dialling NATS.
func (c Config) Validate() error {
	if err := c.validateValues(); err != nil {
		return err
	}
	if _, err := LoadConfig(c.AlertsFile); err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	return nil
}

// Deps are the connections the notifier uses.
type Deps struct {
	// Replicas of the bucket the notifier creates (CUSTOMS_NATS_REPLICAS).
	Replicas  int
	JetStream jetstream.JetStream
	// Ready reports the NATS connection (natsconn.Ready).
	Ready httpx.Check
	// HTTPClient posts the messages; nil: one of the notifier's own (30 s
	// timeout, redirects not followed).
	HTTPClient *http.Client
	Log        zerolog.Logger
}

// Service is the notifier's front door.
type Service struct {
	cfg     Config
	deps    Deps
	alerts  *AlertsConfig
	workers map[string]*worker
	order   []string // destination names, as in the file
	client  *http.Client
	handler http.Handler
	// consuming is set once the bucket and consumer are bound.
	consuming atomic.Bool

	messages    *prometheus.CounterVec
	sendSeconds *prometheus.HistogramVec
}

// New fills cfg's zero fields with the defaults, validates it, reads the
// alerts file and builds the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.JetStream == nil {
		return nil, errors.New("notifier: JetStream is required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validateValues(); err != nil {
		return nil, err
	}
	alerts, err := LoadConfig(cfg.AlertsFile)
	if err != nil {
		return nil, fmt.Errorf("notifier: %w", err)
	}
	deps.Log = deps.Log.With().Str("service", "notifier").Logger()
	s := &Service{cfg: cfg, deps: deps, alerts: alerts, workers: map[string]*worker{}, client: deps.HTTPClient}
	if s.client == nil {
		s.client = newHTTPClient()
	}

	reg := httpx.NewRegistry()
	s.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customs_notifier_messages_total",
		Help: "Messages by destination and result: sent, retried (an attempt that failed and will be tried again), failed (refused for good, dead-lettered).",
	}, []string{"destination", "result"})
	s.sendSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "customs_notifier_send_seconds",
		Help:    "Time of one POST to a destination, answered or not.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
	}, []string{"destination"})
	reg.MustRegister(s.messages, s.sendSeconds)

	for _, d := range alerts.Destinations {
		t, err := newTarget(d)
		if err != nil {
			return nil, fmt.Errorf("notifier: %w", err)
		}
		s.workers[d.Name] = &worker{
			target: t, svc: s, queue: make(chan job, cfg.MaxAckPending),
			log: deps.Log.With().Str("destination", d.Name).Str("type", d.Type).Logger(),
		}
		s.order = append(s.order, d.Name)
		for _, r := range []string{"sent", "retried", "failed"} {
			s.messages.WithLabelValues(d.Name, r)
		}
		s.sendSeconds.WithLabelValues(d.Name)
	}

	checks := map[string]httpx.Check{"alerts": func(context.Context) error {
		if !s.consuming.Load() {
			return errors.New("alerts consumer not bound yet")
		}
		return nil
	}}
	if deps.Ready != nil {
		checks["nats"] = deps.Ready
	}
	s.handler = httpx.NewRouter(reg, checks)
	return s, nil
}

// Handler serves /healthz, /readyz and /metrics.
func (s *Service) Handler() http.Handler { return s.handler }

// Destinations names the destinations of the alerts file, in its order.
func (s *Service) Destinations() []string { return append([]string(nil), s.order...) }

// Run listens on cfg.Addr and serves until ctx ends (Serve on a listener
// of its own).
func (s *Service) Run(ctx context.Context) error {
	ln, err := httpx.Listen(s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve binds the sent bucket and the consumer, and delivers alerts until
// ctx ends; the listener answers probes and metrics from the start. ln is
// closed when it returns.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	s.deps.Log.Info().Strs("destinations", s.order).Int("routes", len(s.alerts.Routes)).
		Bool("report_links", s.alerts.PublicURL != "").Msg("notifier starting")
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpx.Serve(gctx, ln, s.handler, s.deps.Log) })
	g.Go(func() error {
		kv, err := queue.Ensure(gctx, "key-value bucket "+SentBucket, s.deps.Log, func(ctx context.Context) (jetstream.KeyValue, error) {
			return s.deps.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket:      SentBucket,
				Description: "alerts sent, per destination, digest and alert id: a redelivered event is not sent twice",
				TTL:         s.cfg.SentTTL,
				Storage:     jetstream.FileStorage,
				Replicas:    max(s.deps.Replicas, 1),
			})
		})
		if err != nil {
			return nilIfDone(gctx, fmt.Errorf("notifier: %w", err))
		}
		cons, err := queue.Ensure(gctx, "consumer "+Consumer+" on "+queue.EventsStream, s.deps.Log, s.ensureConsumer)
		if err != nil {
			return nilIfDone(gctx, fmt.Errorf("notifier: %w", err))
		}
		s.consuming.Store(true)
		return s.consume(gctx, cons, kv)
	})
	return g.Wait()
}

// firstStartBacklog: a consumer created now starts this far back, so
// alerts results published while the notifier was starting (customs up
// starts both at once) are sent, and a stream of 30 days of alerts is not
// replayed into chat on the first start.
const firstStartBacklog = 10 * time.Minute

// ensureConsumer creates the durable consumer, or updates it keeping
// where it starts from (a start policy cannot be changed).
func (s *Service) ensureConsumer(ctx context.Context) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       Consumer,
		Description:   "notifier: alerts to chat channels and webhooks",
		FilterSubject: queue.AlertsSubject + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		// Never given up: a destination down for a day gets its
		// messages when it is back (naks back off up to 5 minutes).
		MaxDeliver:    -1,
		MaxAckPending: s.cfg.MaxAckPending,
	}
	existing, err := s.deps.JetStream.Consumer(ctx, queue.EventsStream, Consumer)
	switch {
	case err == nil:
		old := existing.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = old.DeliverPolicy, old.OptStartSeq, old.OptStartTime
		return s.deps.JetStream.UpdateConsumer(ctx, queue.EventsStream, cfg)
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		start := time.Now().Add(-firstStartBacklog)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
		return s.deps.JetStream.CreateConsumer(ctx, queue.EventsStream, cfg)
	}
	return nil, err
}

func nilIfDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
