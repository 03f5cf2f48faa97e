// Package svcmain is what every service command does before its front
// door runs: read the env config, log JSON to stderr, stop on SIGINT or
// SIGTERM, connect to NATS and make sure the streams exist.
package svcmain

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/caarlos0/env/v11"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/queue"
)

// LogConfig is the logging part of every service's environment.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `env:"CUSTOMS_LOG_LEVEL" envDefault:"info"`
}

// Env is what a running service gets.
type Env struct {
	Log zerolog.Logger
	NC  *nats.Conn
	JS  jetstream.JetStream
	// Replicas is CUSTOMS_NATS_REPLICAS: every stream and bucket a service
	// creates gets it.
	Replicas int
}

// Run parses cfg from the environment (cfg must embed or hold the NATS
// settings returned by natsOf), validates it when *C has a Validate()
// error method, connects, ensures the streams, and calls serve until it
// returns or a signal arrives.
func Run[C any](name string, natsOf func(*C) natsconn.Config, serve func(ctx context.Context, cfg *C, e Env) error) error {
	var cfg C
	if err := env.Parse(&cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// A configuration the service would refuse fails here, before waiting
	// for NATS, which may take forever.
	if v, ok := any(&cfg).(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	var lc LogConfig
	if err := env.Parse(&lc); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	lvl, err := zerolog.ParseLevel(lc.Level)
	if err != nil {
		return fmt.Errorf("config: CUSTOMS_LOG_LEVEL: %w", err)
	}
	log := zerolog.New(os.Stderr).Level(lvl).With().Timestamp().Logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nconf := natsOf(&cfg)
	nc, js, err := natsconn.Connect(ctx, nconf, "customs-"+name, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	// Retried like every other JetStream resource: a cluster still electing
	// leaders at start is not a reason to exit.
	if _, err := queue.Ensure(ctx, "streams", log, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, queue.EnsureStreams(ctx, js, queue.Topology{Replicas: nconf.Replicas})
	}); err != nil {
		return err
	}
	return serve(ctx, &cfg, Env{Log: log, NC: nc, JS: js, Replicas: max(nconf.Replicas, 1)})
}

// Exit prints err and exits non-zero when err is set.
func Exit(name string, err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
