// Package natsconn connects services to NATS the same way in production
// and in `customs up`: reconnect forever, log state changes.
package natsconn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/mod/semver"
)

// Config is the NATS part of every service's environment.
type Config struct {
	URL       string `env:"CUSTOMS_NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	CredsFile string `env:"CUSTOMS_NATS_CREDS"`
	// Replicas for the streams this service creates (3 in a cluster).
	Replicas int `env:"CUSTOMS_NATS_REPLICAS" envDefault:"1"`
}

// Connect dials cfg.URL; extra options (e.g. nats.InProcessServer) are appended.
func Connect(ctx context.Context, cfg Config, name string, log zerolog.Logger, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn().Err(err).Str("conn", name).Msg("nats disconnected")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("conn", name).Str("url", nc.ConnectedUrlRedacted()).Msg("nats reconnected")
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	opts = append(opts, extra...)
	where := Redact(cfg.URL)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats connect %s: %w", where, err)
	}
	// RetryOnFailedConnect returns at once; wait for the first connection so
	// stream setup does not fail spuriously at start-up.
	for !nc.IsConnected() {
		// The client gives up by itself on a repeated authorization error;
		// that is a configuration mistake, not a server still starting.
		if nc.IsClosed() {
			err := nc.LastError()
			if err == nil {
				err = nats.ErrConnectionClosed
			}
			return nil, nil, fmt.Errorf("nats connect %s: %w", where, err)
		}
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, nil, fmt.Errorf("nats connect %s: %w", where, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := CheckServerVersion(nc.ConnectedServerVersion()); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("nats %s: %w", where, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// MinServerVersion is the oldest nats-server Customs runs on: older servers
// ignore TermWithReason, so every 404 or poison job would be retried at
// ack-wait intervals until MaxDeliver instead of dead-lettered at once.
const MinServerVersion = "2.10.4"

// CheckServerVersion refuses a server older than MinServerVersion.
func CheckServerVersion(v string) error {
	if v == "" {
		return errors.New("the server did not say its version")
	}
	if semver.Compare("v"+strings.TrimPrefix(v, "v"), "v"+MinServerVersion) < 0 {
		return fmt.Errorf("nats-server %s is older than %s, which Customs needs (TermWithReason); upgrade the server", v, MinServerVersion)
	}
	return nil
}

// Redact hides the passwords of nats://user:password@host URLs (a
// comma-separated list, as nats.Connect takes) for logs and errors.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// Ready is a readiness check: the connection is up.
func Ready(nc *nats.Conn) func(context.Context) error {
	return func(context.Context) error {
		if !nc.IsConnected() {
			return errors.New("nats: " + nc.Status().String())
		}
		return nil
	}
}
