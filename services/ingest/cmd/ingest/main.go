// Command ingest runs the webhook receiver against an external NATS.
package main

import (
	"context"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/svcmain"
	"github.com/customs-scan/customs/services/ingest"
)

type config struct {
	Ingest ingest.Config
	NATS   natsconn.Config
}

// Validate runs before NATS is dialled, so a refused configuration fails fast.
func (c *config) Validate() error { return c.Ingest.Validate() }

func main() { svcmain.Exit("ingest", run()) }

func run() error {
	return svcmain.Run("ingest", func(c *config) natsconn.Config { return c.NATS },
		func(ctx context.Context, cfg *config, e svcmain.Env) error {
			svc, err := ingest.New(cfg.Ingest, ingest.Deps{JetStream: e.JS, Ready: natsconn.Ready(e.NC), Log: e.Log})
			if err != nil {
				return err
			}
			return svc.Run(ctx)
		})
}
