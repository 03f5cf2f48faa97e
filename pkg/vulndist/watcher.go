package vulndist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/vulndb"
)

// Watcher keeps the current database in memory and swaps it when a new
// version is published. Current is safe to call from any goroutine.
type Watcher struct {
	js  jetstream.JetStream
	log zerolog.Logger
	cur atomic.Pointer[vulndb.DB]
	// OnSwap, when set, is called (from Run's goroutine) after each swap.
	OnSwap func(ctx context.Context, old, new *vulndb.DB)
	// ready is closed once the first pointer (or its absence) was seen.
	ready chan struct{}
}

// NewWatcher returns a watcher with no database; Run fills it. initial, if
// not nil, is served until a published version replaces it.
func NewWatcher(js jetstream.JetStream, initial *vulndb.DB, log zerolog.Logger) *Watcher {
	w := &Watcher{js: js, log: log, ready: make(chan struct{})}
	if initial != nil {
		w.cur.Store(initial)
	}
	return w
}

// Current is the database to match against (nil: none yet).
func (w *Watcher) Current() *vulndb.DB { return w.cur.Load() }

// Ready is closed once Run has read the current pointer at least once.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Run follows the current-version key until ctx ends. Fetch or decode
// failures keep the database in use and are retried with backoff: a
// worker never goes without a database it had.
func (w *Watcher) Run(ctx context.Context) error {
	wait := 250 * time.Millisecond
	readyClosed := false
	for {
		err := w.watch(ctx, func() {
			if !readyClosed {
				readyClosed = true
				close(w.ready)
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errReconnected) {
			wait = 250 * time.Millisecond
			continue
		}
		w.log.Warn().Err(err).Dur("retry_in", wait).Msg("vulnerability database watch interrupted; retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}

var errReconnected = errors.New("vulndist: reconnected")

func (w *Watcher) watch(ctx context.Context, initialDone func()) error {
	b, err := Ensure(ctx, w.js)
	if err != nil {
		return err
	}
	kw, err := b.KV.Watch(ctx, CurrentKey)
	if err != nil {
		return fmt.Errorf("vulndist: watch: %w", err)
	}
	defer kw.Stop()
	// After a reconnect the watch's consumer only notices it lost its
	// server-side state when heartbeats go missing (~20 s); starting a new
	// watch at once picks up anything published meanwhile.
	var reconnected chan nats.Status
	if nc := w.js.Conn(); nc != nil {
		reconnected = nc.StatusChanged(nats.CONNECTED)
		defer nc.RemoveStatusListener(reconnected)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-reconnected:
			return errReconnected
		case e, ok := <-kw.Updates():
			if !ok {
				return fmt.Errorf("vulndist: watch closed")
			}
			if e == nil { // end of the initial values
				initialDone()
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var p Pointer
			if err := json.Unmarshal(e.Value(), &p); err != nil {
				w.log.Error().Err(err).Msg("undecodable vulnerability database pointer; ignored")
				continue
			}
			if err := w.load(ctx, b, p); err != nil {
				// Scans go on with the database they have (or none,
				// reported as not checked) rather than wait on a blob
				// that may never load.
				initialDone()
				return err
			}
			initialDone()
		}
	}
}

func (w *Watcher) load(ctx context.Context, b Buckets, p Pointer) error {
	old := w.cur.Load()
	if old != nil && old.Version() == p.Version {
		return nil
	}
	if old != nil && old.Header().Built.After(p.Built) {
		return nil // never go back in time (a late replay of an old value)
	}
	db, err := b.Fetch(ctx, p)
	if err != nil {
		return err
	}
	w.cur.Store(db)
	from := ""
	if old != nil {
		from = old.Version()
	}
	w.log.Info().Str("version", db.Version()).Str("previous", from).Int("entries", db.Len()).Msg("vulnerability database swapped")
	if w.OnSwap != nil {
		w.OnSwap(ctx, old, db)
	}
	return nil
}
