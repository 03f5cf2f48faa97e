// Command harbor-adapter serves Harbor's Pluggable Scanner API v1.2 for
// Customs, against external NATS and results' S3 bucket.
package main

import (
	"context"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/svcmain"
	"github.com/customs-scan/customs/services/harbor"
)

type config struct {
	Harbor harbor.Config
	S3     harbor.S3Config
	NATS   natsconn.Config
}

// Validate runs before NATS is dialled, so a refused configuration (no
// token, no job key) fails fast.
func (c *config) Validate() error { return c.Harbor.Validate() }

func main() { svcmain.Exit("harbor-adapter", run()) }

func run() error {
	return svcmain.Run("harbor-adapter", func(c *config) natsconn.Config { return c.NATS },
		func(ctx context.Context, cfg *config, e svcmain.Env) error {
			// Read only: results creates the bucket and writes the reports.
			bucket, err := store.NewS3(ctx, cfg.S3.Store(), nil)
			if err != nil {
				return err
			}
			svc, err := harbor.New(cfg.Harbor, harbor.Deps{Replicas: e.Replicas, JetStream: e.JS, Bucket: bucket,
				Ready: natsconn.Ready(e.NC), Log: e.Log, SBOM: harbor.SPDX})
			if err != nil {
				return err
			}
			return svc.Run(ctx)
		})
}
