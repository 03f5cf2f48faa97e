// Package layercache stores the scan library's per-layer results
// (scan.LayerCache) in a JetStream object store, shared by every scanner
// of a deployment, or in a local directory.
//
//	c, err := layercache.NewObjectStore(ctx, js, layercache.Config{TTL: 7 * 24 * time.Hour, MaxBytes: 10 << 30})
//	res, err := scan.Image(ctx, img, scan.WithLayerCache(c))
//
// Values are opaque to this package; the scan library versions them and
// treats a damaged one as a miss.
package layercache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucket is Config.Bucket's default.
const DefaultBucket = "customs-layer-cache"

// Config configures the object store bucket.
type Config struct {
	// Bucket is the object store's name (default DefaultBucket).
	Bucket string
	// TTL is how long an entry lives after it was written (0: forever).
	// Entries are rewritten only when a layer is scanned again after a
	// miss, so a base layer is downloaded once per TTL at most.
	TTL time.Duration
	// MaxBytes bounds the bucket (0: unlimited). JetStream object stores
	// refuse new objects once full (they do not evict): Puts then fail,
	// harmlessly, until TTL has aged entries out. Size it for TTL's worth
	// of distinct layers.
	MaxBytes int64
	// Replicas is the number of stream replicas in a cluster (default 1).
	Replicas int
}

// ObjectStore is a scan.LayerCache in a JetStream object store. It is
// safe for concurrent use.
type ObjectStore struct {
	obs    jetstream.ObjectStore
	bucket string
}

// NewObjectStore creates the bucket, or binds to it and applies cfg to it
// when it exists (a changed TTL or size reaches every scanner).
func NewObjectStore(ctx context.Context, js jetstream.JetStream, cfg Config) (*ObjectStore, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      cfg.Bucket,
		Description: "customs per-layer scan results (scan.LayerCache)",
		TTL:         cfg.TTL,
		MaxBytes:    cfg.MaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("layercache: object store %s: %w", cfg.Bucket, err)
	}
	return &ObjectStore{obs: obs, bucket: cfg.Bucket}, nil
}

// Get implements scan.LayerCache. The object store checks the object's
// SHA-256 while reading it.
func (s *ObjectStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, err := s.obs.GetBytes(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("layercache: %s: get %s: %w", s.bucket, key, err)
	}
	return b, true, nil
}

// Put implements scan.LayerCache.
func (s *ObjectStore) Put(ctx context.Context, key string, data []byte) error {
	if _, err := s.obs.PutBytes(ctx, key, data); err != nil {
		return fmt.Errorf("layercache: %s: put %s: %w", s.bucket, key, err)
	}
	return nil
}

// Dir is a scan.LayerCache in a local directory, one file per key,
// created on the first Put. Nothing is ever evicted: remove old files
// (by modification time) from outside if the directory must stay small.
// Several processes may share it.
type Dir string

// Get implements scan.LayerCache.
func (d Dir) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	b, err := os.ReadFile(filepath.Join(string(d), key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("layercache: %w", err)
	}
	return b, true, nil
}

// Put implements scan.LayerCache. The value is written to a temporary
// file that is then renamed over the key, so that a reader (another
// process too) sees the old value or the new one, never a part. There is
// no fsync: after a crash a damaged value is possible, and the scan
// library detects it (checksum) and treats it as a miss.
func (d Dir) Put(ctx context.Context, key string, data []byte) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return fmt.Errorf("layercache: %w", err)
	}
	// The leading dot keeps temporary files out of the key space: keys
	// never start with one.
	f, err := os.CreateTemp(string(d), ".tmp-*")
	if err != nil {
		return fmt.Errorf("layercache: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("layercache: write %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("layercache: write %s: %w", key, err)
	}
	if err := os.Rename(f.Name(), filepath.Join(string(d), key)); err != nil {
		return fmt.Errorf("layercache: %w", err)
	}
	return nil
}

// checkKey keeps a key a plain file name inside the directory.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, ".") || strings.ContainsAny(key, "/\\\x00") {
		return fmt.Errorf("layercache: invalid key %q", key)
	}
	return nil
}
