// Package ingest receives registry push notifications and turns each
// manifest or index push into a scan job on NATS JetStream.
//
//	svc, err := ingest.New(cfg, ingest.Deps{JetStream: js, Ready: ready, Log: log})
//	err = svc.Run(ctx)
package ingest

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/httpx"
	"github.com/customs-scan/customs/services/ingest/internal/webhookapi"
)

// Config is read from the environment by cmd/ingest (and by `customs up`).
type Config struct {
	Addr string `env:"CUSTOMS_INGEST_ADDR" envDefault:"127.0.0.1:8081"`
	// WebhookToken, when set, must arrive as "Authorization: Bearer <token>".
	WebhookToken string `env:"CUSTOMS_WEBHOOK_TOKEN"`
	// Registries are the hosts (host[:port]) Customs may pull from; an event
	// naming any other host is acknowledged and dropped (SSRF guard).
	Registries []string `env:"CUSTOMS_REGISTRIES" envSeparator:","`
	// InsecureRegistries are reached over plain HTTP (and are allowed too).
	InsecureRegistries []string `env:"CUSTOMS_INSECURE_REGISTRIES" envSeparator:","`
	// MaxBodyBytes bounds a webhook body.
	MaxBodyBytes int64 `env:"CUSTOMS_WEBHOOK_MAX_BYTES" envDefault:"1048576"`
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
}

// New validates cfg and builds the HTTP handler.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.JetStream == nil {
		return nil, errors.New("ingest: JetStream publisher is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
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
	return &Service{cfg: cfg, log: deps.Log, handler: router}, nil
}

// Handler is the HTTP API (webhooks, health, metrics).
func (s *Service) Handler() http.Handler { return s.handler }

// Run serves on cfg.Addr until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	ln, err := httpx.Listen(s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	return httpx.Serve(ctx, ln, s.handler, s.log.With().Str("service", "ingest").Logger())
}
