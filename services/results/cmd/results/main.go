// Command results stores and serves reports, against external NATS and S3.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/caarlos0/env/v11"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/services/results"
)

type config struct {
	Results results.Config
	S3      results.S3Config
	NATS    natsconn.Config
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "results:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	if err := env.Parse(&cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nc, js, err := natsconn.Connect(ctx, cfg.NATS, "customs-results", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := queue.EnsureStreams(ctx, js, queue.Topology{Replicas: cfg.NATS.Replicas}); err != nil {
		return err
	}
	bucket, err := store.NewS3(ctx, cfg.S3.Store(), nil)
	if err != nil {
		return err
	}
	svc, err := results.New(cfg.Results, results.Deps{JetStream: js, Bucket: bucket, Ready: natsconn.Ready(nc), Log: log})
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
