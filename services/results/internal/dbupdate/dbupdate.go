// Package dbupdate keeps the cluster's vulnerability database current on
// a schedule: every Interval one results process (the holder of a KV
// lease) refreshes its copies of the OSV dumps (pkg/osvfeed, conditional
// requests), rebuilds the database when a dump changed and publishes it
// through pkg/vulndist; every process's watcher then swaps to it and
// stored reports are re-matched, as after `customs db publish`.
//
// The lease is a key in a KV bucket whose entries live Interval: whoever
// creates it updates, and nobody else can until it expires, so the
// cluster updates once per interval whatever the number of processes. A
// failed update deletes the key, so the next check (anyone's) tries again.
package dbupdate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/osvfeed"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/pkg/vulndist"
)

const (
	// LeaseBucket holds the update lease.
	LeaseBucket = "customs-vulndb-update"
	leaseKey    = "lease"
)

// Outcomes of one check, for metrics and logs.
const (
	Published = "published" // a new database was published
	Unchanged = "unchanged" // no dump changed (or the same content is current)
	Held      = "held"      // another process holds the lease
	Failed    = "failed"    // download, build or publish failed; nothing published
)

// Updater runs the schedule.
type Updater struct {
	JS jetstream.JetStream
	// Cache holds this process's copies of the dumps.
	Cache *osvfeed.Cache
	// Interval between updates in the cluster (> 0).
	Interval time.Duration
	// Check is how often the lease is tried (default min(Interval, 1m)):
	// after a failure or a crash of the holder the next try comes that
	// soon, not an interval later.
	Check time.Duration
	// Replicas of the lease bucket.
	Replicas int
	// Holder names this process in the lease (default host name and pid).
	Holder string
	Log    zerolog.Logger
	// Observe, when set, sees each check's outcome.
	Observe func(outcome string)
}

// Run checks at once and then every Check until ctx ends.
func (u *Updater) Run(ctx context.Context) error {
	if u.Interval <= 0 {
		return errors.New("dbupdate: interval must be positive")
	}
	check := u.Check
	if check <= 0 {
		check = min(u.Interval, time.Minute)
	}
	t := time.NewTicker(check)
	defer t.Stop()
	for {
		out, err := u.Once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if u.Observe != nil {
			u.Observe(out)
		}
		switch {
		case err != nil:
			u.Log.Warn().Err(err).Dur("retry_in", check).Msg("vulnerability database update failed; the current database stays")
		case out == Published || out == Unchanged:
			u.Log.Info().Str("outcome", out).Dur("next_in", u.Interval).Msg("vulnerability database update")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (u *Updater) lease(ctx context.Context) (jetstream.KeyValue, error) {
	return u.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "who updates the vulnerability database this interval (entries expire after it)",
		TTL:         u.Interval,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(u.Replicas, 1),
	})
}

func (u *Updater) holder() string {
	if u.Holder != "" {
		return u.Holder
	}
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", h, os.Getpid())
}

// Once takes the lease if it is free and updates. It returns Held when
// another process updated within the interval (or is updating).
func (u *Updater) Once(ctx context.Context) (string, error) {
	kv, err := u.lease(ctx)
	if err != nil {
		return Failed, fmt.Errorf("dbupdate: lease bucket: %w", err)
	}
	val := fmt.Sprintf("%s %s", u.holder(), time.Now().UTC().Format(time.RFC3339))
	if _, err := kv.Create(ctx, leaseKey, []byte(val)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Held, nil
		}
		return Failed, fmt.Errorf("dbupdate: take the lease: %w", err)
	}
	out, err := u.update(ctx)
	if err != nil {
		// Free the lease: the next check, here or elsewhere, tries again.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_ = kv.Delete(dctx, leaseKey)
		cancel()
	}
	return out, err
}

func (u *Updater) update(ctx context.Context) (string, error) {
	res, err := u.Cache.Update(ctx)
	if err != nil {
		return Failed, err
	}
	if err := res.Err(); err != nil {
		return Failed, err
	}
	b, err := vulndist.Ensure(ctx, u.JS)
	if err != nil {
		return Failed, err
	}
	_, _, current, err := b.Current(ctx)
	if err != nil {
		return Failed, err
	}
	if !res.Changed && current {
		return Unchanged, nil
	}
	builder := vulndb.NewBuilder()
	db, err := u.Cache.Build(ctx, builder)
	if err != nil {
		return Failed, err
	}
	if builder.Stats().Entries == 0 {
		return Failed, errors.New("dbupdate: the dumps held no usable OSV records")
	}
	p, changed, err := vulndist.Publish(ctx, u.JS, db)
	if err != nil && !errors.Is(err, vulndist.ErrStale) {
		return Failed, err
	}
	if err := u.Cache.MarkBuilt(res.Sources); err != nil {
		return Failed, err
	}
	if !changed {
		return Unchanged, nil
	}
	u.Log.Info().Str("db_version", p.Version).Int("advisories", db.Header().Advisories).Msg("published a new vulnerability database")
	return Published, nil
}
