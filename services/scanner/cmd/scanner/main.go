// Command scanner works scan jobs from an external NATS.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/caarlos0/env/v11"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/services/scanner"
)

type config struct {
	Scanner scanner.Config
	NATS    natsconn.Config
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scanner:", err)
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

	nc, js, err := natsconn.Connect(ctx, cfg.NATS, "customs-scanner", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := queue.EnsureStreams(ctx, js, queue.Topology{Replicas: cfg.NATS.Replicas}); err != nil {
		return err
	}
	svc, err := scanner.New(cfg.Scanner, scanner.Deps{
		JetStream: js, Ready: natsconn.Ready(nc), Log: log,
		// Credentials come from the Docker config and helpers, bound to exact hosts.
		RemoteOptions: []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)},
	})
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
