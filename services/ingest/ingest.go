// Package ingest receives registry push notifications and turns each
// manifest or index push into a scan job on NATS JetStream.
//
//	svc, err := ingest.New(cfg, ingest.Deps{JetStream: js, Ready: ready, Log: log})
//	err = svc.Run(ctx)       // or svc.Serve(ctx, ln)
//
// New checks the configuration and builds the service; nothing listens or
// connects yet. Run(ctx) listens on cfg.Addr and serves until ctx ends;
// Serve(ctx, ln) is the same on a listener the caller bound (`customs up`
// binds every listener before it starts any service). Both return nil once
// ctx has ended and the service has shut down, or the error that stopped it
// first; ln is closed when Serve returns. ingest, scanner and results share
// this lifecycle.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/httpx"
	"github.com/customs-scan/customs/services/ingest/internal/webhookapi"
)

// Config is read from the environment by cmd/ingest (and by `customs up`).
// A zero field means its default (the envDefault tag), for Go callers as
// for the environment; Validate says what New would refuse.
type Config struct {
	Addr string `env:"CUSTOMS_INGEST_ADDR" envDefault:"127.0.0.1:8081"`
	// WebhookToken must arrive as "Authorization: Bearer <token>"
	// (scheme case-insensitive). Required unless WebhookAuth is "off".
	WebhookToken string `env:"CUSTOMS_WEBHOOK_TOKEN"`
	// WebhookAuth "off" accepts webhooks without a token. It must be said
	// explicitly (nothing is open by default) and is warned about every
	// minute while it lasts.
	WebhookAuth string `env:"CUSTOMS_WEBHOOK_AUTH"`
	// Registries are the hosts (host[:port]) Customs may pull from; an event
	// naming any other host is acknowledged and dropped (SSRF guard).
	Registries []string `env:"CUSTOMS_REGISTRIES" envSeparator:","`
	// InsecureRegistries are reached over plain HTTP (and are allowed too).
	InsecureRegistries []string `env:"CUSTOMS_INSECURE_REGISTRIES" envSeparator:","`
	// MaxBodyBytes bounds a webhook body.
	MaxBodyBytes int64 `env:"CUSTOMS_WEBHOOK_MAX_BYTES" envDefault:"1048576"`
}

// withDefaults fills the fields a Go caller left zero with the values the
// env tags give the commands (TestDefaultsAgree keeps them equal).
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8081"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	return c
}

// Validate refuses what New would: a configuration that would accept
// webhooks from anyone without saying so explicitly, a negative body
// limit. Zero values are fine (they mean the defaults). cmd/ingest calls it
// before dialling NATS.
func (c Config) Validate() error {
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("ingest: CUSTOMS_WEBHOOK_MAX_BYTES=%d: want a positive size (0: the default)", c.MaxBodyBytes)
	}
	off, err := apiauth.Switch("CUSTOMS_WEBHOOK_AUTH", c.WebhookAuth)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	switch {
	case c.WebhookToken == "" && !off:
		return errors.New("ingest: CUSTOMS_WEBHOOK_TOKEN is not set: set it to the bearer token your registries send, " +
			"or set CUSTOMS_WEBHOOK_AUTH=off to accept webhooks from anyone who can reach ingest")
	case c.WebhookToken != "" && off:
		return errors.New("ingest: CUSTOMS_WEBHOOK_AUTH=off and CUSTOMS_WEBHOOK_TOKEN are both set; unset one")
	}
	return nil
}

// Deps are the connections ingest uses.
type Deps struct {
	JetStream jetstream.Publisher
	// Ready reports whether NATS is usable, for /readyz.
	Ready httpx.Check
	Log   zerolog.Logger
}

// Service is the ingest front door.
type Service struct {
	cfg     Config
	log     zerolog.Logger
	handler http.Handler
	// authOffEvery is how often "webhook authentication is off" is logged.
	authOffEvery time.Duration
}

// New fills cfg's zero fields with the defaults, validates it and builds
// the HTTP handler.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.JetStream == nil {
		return nil, errors.New("ingest: JetStream publisher is required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg := httpx.NewRegistry()
	checks := map[string]httpx.Check{}
	if deps.Ready != nil {
		checks["nats"] = deps.Ready
	}
	router := httpx.NewRouter(reg, checks)
	api := webhookapi.New(webhookapi.Config{
		Token:              cfg.WebhookToken,
		Registries:         cfg.Registries,
		InsecureRegistries: cfg.InsecureRegistries,
		MaxBodyBytes:       cfg.MaxBodyBytes,
	}, deps.JetStream, reg, deps.Log)
	api.Mount(router)
	return &Service{cfg: cfg, log: deps.Log, handler: router, authOffEvery: time.Minute}, nil
}

// Handler is the HTTP API (webhooks, health, metrics).
func (s *Service) Handler() http.Handler { return s.handler }

// Run listens on cfg.Addr and serves until ctx ends (Serve on a listener
// of its own).
func (s *Service) Run(ctx context.Context) error {
	ln, err := httpx.Listen(s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves webhooks, health and metrics on ln until ctx ends; ln is
// closed when it returns.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	log := s.log.With().Str("service", "ingest").Logger()
	if s.cfg.WebhookToken == "" {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go warnAuthOff(ctx, log, s.authOffEvery)
	}
	return httpx.Serve(ctx, ln, s.handler, log)
}

// warnAuthOff repeats the warning so an "off" meant for a quick test does
// not go unnoticed in the logs for months.
func warnAuthOff(ctx context.Context, log zerolog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		log.Warn().Str("setting", "CUSTOMS_WEBHOOK_AUTH=off").
			Msg("webhook authentication is off: anyone who can reach ingest can queue scans; set CUSTOMS_WEBHOOK_TOKEN")
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
