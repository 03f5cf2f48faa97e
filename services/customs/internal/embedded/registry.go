package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // storage driver
	"github.com/sirupsen/logrus"
)

// Registry is a real Docker Distribution (v3) registry served in-process,
// whose push notifications go to Customs' ingest.
type Registry struct {
	Addr string
	srv  *http.Server
	app  *handlers.App
}

// RegistryConfig says where the registry stores blobs and whom it notifies.
type RegistryConfig struct {
	Addr string // host:port to listen on
	// PublicURL, when set, is the address clients use (the gate in front):
	// events and Location headers name it (distribution's http.host).
	PublicURL string
	RootDir   string // blob storage
	// NotifyURL receives notification envelopes; Token, when set, is sent as
	// "Authorization: Bearer <token>".
	NotifyURL string
	Token     string
	// Quiet silences distribution's request logs.
	Quiet bool
	// Wrap, when set, wraps the registry's handler (tests inject faults).
	Wrap func(http.Handler) http.Handler
}

// StartRegistry starts the registry. It uses distribution's application
// handler directly (not registry.NewRegistry) because the latter registers
// process-global health checks and can run only once per process.
func StartRegistry(ctx context.Context, cfg RegistryConfig) (*Registry, error) {
	if cfg.Quiet {
		// distribution logs through logrus' standard logger.
		logrus.SetOutput(io.Discard)
	}
	conf := &configuration.Configuration{
		Version: "0.1",
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": cfg.RootDir},
			"delete":     configuration.Parameters{"enabled": true},
		},
	}
	conf.HTTP.Addr = cfg.Addr
	conf.HTTP.Host = cfg.PublicURL
	if cfg.NotifyURL != "" {
		headers := http.Header{}
		if cfg.Token != "" {
			headers.Set("Authorization", "Bearer "+cfg.Token)
		}
		conf.Notifications.EventConfig.IncludeReferences = true
		conf.Notifications.Endpoints = []configuration.Endpoint{{
			Name:      "customs-ingest",
			URL:       cfg.NotifyURL,
			Headers:   headers,
			Timeout:   5 * time.Second,
			Threshold: 5,
			Backoff:   time.Second,
			// The registry delivers events one at a time, in order, so
			// every event ingest would drop anyway delays the next push's
			// job: blob events (one per layer pushed, pulled or mounted)
			// and pulls (every scan pulls its image from this registry).
			// Under a burst of pushes they were most of the queue.
			IgnoredMediaTypes: []string{"application/octet-stream"},
			Ignore:            configuration.Ignore{Actions: []string{"pull"}},
		}}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("registry listen %s: %w", cfg.Addr, err)
	}
	app := handlers.NewApp(ctx, conf)
	var h http.Handler = app
	if cfg.Wrap != nil {
		h = cfg.Wrap(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err
		}
	}()
	return &Registry{Addr: ln.Addr().String(), srv: srv, app: app}, nil
}

// Close stops the registry.
func (r *Registry) Close(ctx context.Context) error {
	return errors.Join(r.srv.Shutdown(ctx), r.app.Shutdown())
}
