// Command results stores and serves reports, against external NATS and S3.
package main

import (
	"context"
	"os"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/svcmain"
	"github.com/customs-scan/customs/services/results"
)

type config struct {
	Results results.Config
	S3      results.S3Config
	NATS    natsconn.Config
}

// Validate runs before NATS is dialled, so a refused configuration (no API
// tokens, a broken tokens file) fails fast.
func (c *config) Validate() error { return c.Results.Validate() }

func main() { svcmain.Exit("results", run()) }

func run() error {
	return svcmain.Run("results", func(c *config) natsconn.Config { return c.NATS },
		func(ctx context.Context, cfg *config, e svcmain.Env) error {
			// The standalone service keeps its database current unless told
			// otherwise (0 turns it off).
			if _, set := os.LookupEnv("CUSTOMS_DB_UPDATE_INTERVAL"); !set {
				cfg.Results.DBUpdateInterval = results.DefaultDBUpdateInterval
			}
			bucket, err := store.NewS3(ctx, cfg.S3.Store(), nil)
			if err != nil {
				return err
			}
			svc, err := results.New(cfg.Results, results.Deps{Replicas: e.Replicas, JetStream: e.JS, Bucket: bucket, Ready: natsconn.Ready(e.NC), Log: e.Log})
			if err != nil {
				return err
			}
			return svc.Run(ctx)
		})
}
