// Command notifier sends Customs' alerts to chat channels and webhooks,
// against external NATS.
package main

import (
	"context"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/svcmain"
	"github.com/customs-scan/customs/services/notifier"
)

type config struct {
	Notifier notifier.Config
	NATS     natsconn.Config
}

// Validate runs before NATS is dialled, so a refused alerts file fails
// fast, with its line numbers.
func (c *config) Validate() error { return c.Notifier.Validate() }

func main() { svcmain.Exit("notifier", run()) }

func run() error {
	return svcmain.Run("notifier", func(c *config) natsconn.Config { return c.NATS },
		func(ctx context.Context, cfg *config, e svcmain.Env) error {
			svc, err := notifier.New(cfg.Notifier, notifier.Deps{Replicas: e.Replicas, JetStream: e.JS, Ready: natsconn.Ready(e.NC), Log: e.Log})
			if err != nil {
				return err
			}
			return svc.Run(ctx)
		})
}
