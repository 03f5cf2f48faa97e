// Command scanner works scan jobs from an external NATS.
package main

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/svcmain"
	"github.com/customs-scan/customs/services/scanner"
)

type config struct {
	Scanner scanner.Config
	NATS    natsconn.Config
}

// Validate runs before NATS is dialled, so a refused configuration (no
// signing key) fails fast.
func (c *config) Validate() error { return c.Scanner.Validate() }

func main() { svcmain.Exit("scanner", run()) }

func run() error {
	return svcmain.Run("scanner", func(c *config) natsconn.Config { return c.NATS },
		func(ctx context.Context, cfg *config, e svcmain.Env) error {
			svc, err := scanner.New(cfg.Scanner, scanner.Deps{Replicas: e.Replicas,
				JetStream: e.JS, Ready: natsconn.Ready(e.NC), Log: e.Log,
				// Credentials: CUSTOMS_REGISTRY_AUTH first, then the Docker
				// config and helpers; both bind credentials to exact hosts.
				Keychain: authn.DefaultKeychain,
				// The process is this service alone: its memory limit
				// follows the scan budget and what it keeps (engine, then
				// each vulnerability database).
				MemoryLimit: func(m *scan.Memory) {
					if limit, set := scan.SetMemoryLimit(m, 32<<20); set {
						e.Log.Info().Int64("gomemlimit", limit).Int64("budget", m.Max()).Msg("memory limit set from the scan budget")
					}
				},
			})
			if err != nil {
				return err
			}
			return svc.Run(ctx)
		})
}
