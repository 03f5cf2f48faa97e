// Command gate is the quarantine gate: a reverse proxy in front of a
// Docker Distribution registry that refuses quarantined manifests, against
// external NATS.
package main

import (
	"context"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/svcmain"
	"github.com/customs-scan/customs/services/gate"
)

type config struct {
	Gate gate.Config
	NATS natsconn.Config
}

// Validate runs before NATS is dialled, so a refused configuration (no
// upstream) fails fast.
func (c *config) Validate() error { return c.Gate.Validate() }

func main() { svcmain.Exit("gate", run()) }

func run() error {
	return svcmain.Run("gate", func(c *config) natsconn.Config { return c.NATS },
		func(ctx context.Context, cfg *config, e svcmain.Env) error {
			svc, err := gate.New(cfg.Gate, gate.Deps{Replicas: e.Replicas, JetStream: e.JS, Ready: natsconn.Ready(e.NC), Log: e.Log})
			if err != nil {
				return err
			}
			return svc.Run(ctx)
		})
}
