package quarantine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// Set is an in-memory copy of the records bucket, kept current by a KV
// watch: the gate asks it on every manifest request without a NATS round
// trip. Until the first full read it is not Ready (the gate answers 503
// then: it must not serve a quarantined image because it has not read
// the records yet).
type Set struct {
	KV  jetstream.KeyValue
	Log zerolog.Logger

	mu      sync.RWMutex
	records map[string]*customsv1.QuarantineRecord // by Key
	ready   chan struct{}
	once    sync.Once
}

// NewSet watches kv.
func NewSet(kv jetstream.KeyValue, log zerolog.Logger) *Set {
	return &Set{KV: kv, Log: log, records: map[string]*customsv1.QuarantineRecord{}, ready: make(chan struct{})}
}

// Ready is closed once every record has been read.
func (s *Set) Ready() <-chan struct{} { return s.ready }

// Get returns the record of registry/repository@digest, or nil.
func (s *Set) Get(registry, repository, digest string) *customsv1.QuarantineRecord {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.records[Key(registry, repository, digest)]
}

// Len is the number of records held.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.records)
}

// Run watches the bucket until ctx ends, re-watching after errors (a NATS
// restart ends the watch; the new one starts with every current value).
func (s *Set) Run(ctx context.Context) error {
	for {
		err := s.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.Log.Warn().Err(err).Msg("quarantine watch ended; watching again")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (s *Set) watch(ctx context.Context) error {
	w, err := s.KV.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", Bucket, err)
	}
	defer func() { _ = w.Stop() }()
	// A fresh watch replays every current value then a nil marker; what
	// was deleted while the watch was down is dropped by rebuilding.
	fresh := map[string]*customsv1.QuarantineRecord{}
	initial := true
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch closed")
			}
			if e == nil {
				s.mu.Lock()
				s.records = fresh
				s.mu.Unlock()
				initial = false
				s.once.Do(func() { close(s.ready) })
				continue
			}
			var rec *customsv1.QuarantineRecord
			if e.Operation() == jetstream.KeyValuePut {
				r, err := Decode(e.Value())
				if err != nil {
					s.Log.Warn().Err(err).Str("key", e.Key()).Msg("quarantine record unreadable; ignored")
					continue
				}
				rec = r
			}
			if initial {
				if rec != nil {
					fresh[e.Key()] = rec
				}
				continue
			}
			s.mu.Lock()
			if rec != nil {
				s.records[e.Key()] = rec
			} else {
				delete(s.records, e.Key())
			}
			s.mu.Unlock()
		}
	}
}
