// Package vulndist distributes the vulnerability database to every
// Customs process through JetStream: the built database is a blob in an
// Object Store, and a KV key names the current version. Publishing moves
// the key with compare-and-set, so two publishers cannot interleave and
// an older build never replaces a newer one; a Watcher follows the key and
// swaps the database in memory while scans go on (each scan keeps the
// database it started with).
package vulndist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/customs-scan/customs/pkg/vulndb"
)

// Names of the JetStream buckets and key.
const (
	ObjectBucket = "customs-vulndb"
	KVBucket     = "customs-vulndb"
	CurrentKey   = "current"
)

// Pointer is the value of the current-version key.
type Pointer struct {
	Version     string    `json:"version"`
	ContentHash string    `json:"content_hash"`
	Built       time.Time `json:"built"`
	Entries     int       `json:"entries"`
	Advisories  int       `json:"advisories"`
	// Object is the object name of the blob in ObjectBucket.
	Object string `json:"object"`
}

func pointerOf(db *vulndb.DB) Pointer {
	h := db.Header()
	return Pointer{
		Version: db.Version(), ContentHash: h.ContentHash, Built: h.Built.UTC(),
		Entries: h.Entries, Advisories: h.Advisories, Object: objectName(db.Version()),
	}
}

// objectName keeps object names to characters every store accepts.
func objectName(version string) string {
	b := []byte(version)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return "vulndb-" + string(b)
}

// Buckets are the two JetStream stores.
type Buckets struct {
	Objects jetstream.ObjectStore
	KV      jetstream.KeyValue
}

// Ensure binds to the buckets, creating them (one replica) when missing:
// a client that does not know the cluster's replica count (the CLI, a
// watcher) never changes an existing bucket's. Only "not found" creates:
// a lookup that timed out during a leader election must not become an
// update (that scaled a cluster's three replicas down to one), and a
// bucket another client created meanwhile is bound, not reconfigured.
func Ensure(ctx context.Context, js jetstream.JetStream) (Buckets, error) {
	obj, err := js.ObjectStore(ctx, ObjectBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obj, err = js.CreateObjectStore(ctx, objectConfig(1))
		if errors.Is(err, jetstream.ErrBucketExists) {
			obj, err = js.ObjectStore(ctx, ObjectBucket)
		}
	}
	if err != nil {
		return Buckets{}, fmt.Errorf("vulndist: object store %s: %w", ObjectBucket, err)
	}
	kv, err := js.KeyValue(ctx, KVBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, kvConfig(1))
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, KVBucket)
		}
	}
	if err != nil {
		return Buckets{}, fmt.Errorf("vulndist: kv %s: %w", KVBucket, err)
	}
	return Buckets{Objects: obj, KV: kv}, nil
}

func objectConfig(replicas int) jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{
		Bucket:      ObjectBucket,
		Description: "built vulnerability databases (customs db publish)",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

func kvConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      KVBucket,
		Description: "current vulnerability database version",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// EnsureReplicas creates the buckets, or updates them, with replicas
// copies (services pass CUSTOMS_NATS_REPLICAS at start).
func EnsureReplicas(ctx context.Context, js jetstream.JetStream, replicas int) (Buckets, error) {
	obj, err := js.CreateOrUpdateObjectStore(ctx, objectConfig(replicas))
	if err != nil {
		return Buckets{}, fmt.Errorf("vulndist: object store %s: %w", ObjectBucket, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, kvConfig(replicas))
	if err != nil {
		return Buckets{}, fmt.Errorf("vulndist: kv %s: %w", KVBucket, err)
	}
	return Buckets{Objects: obj, KV: kv}, nil
}

// ErrStale is returned by Publish when the current database was built
// after the one being published.
var ErrStale = errors.New("vulndist: a newer database is already current")

// Current returns the current pointer and its KV revision; ok is false
// when nothing was published yet.
func (b Buckets) Current(ctx context.Context) (p Pointer, rev uint64, ok bool, err error) {
	e, err := b.KV.Get(ctx, CurrentKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Pointer{}, 0, false, nil
	}
	if err != nil {
		return Pointer{}, 0, false, fmt.Errorf("vulndist: read %s: %w", CurrentKey, err)
	}
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return Pointer{}, 0, false, fmt.Errorf("vulndist: decode %s: %w", CurrentKey, err)
	}
	return p, e.Revision(), true, nil
}

// Publish uploads db and makes it current. It does nothing (changed false)
// when a database with the same content is already current, and returns
// ErrStale when the current one was built later. The blob is written
// before the pointer moves, so a watcher never sees a version it cannot
// fetch; the two previous blobs are kept for watchers still fetching them.
func Publish(ctx context.Context, js jetstream.JetStream, db *vulndb.DB) (p Pointer, changed bool, err error) {
	b, err := Ensure(ctx, js)
	if err != nil {
		return Pointer{}, false, err
	}
	p = pointerOf(db)
	blob, err := db.Bytes()
	if err != nil {
		return Pointer{}, false, err
	}
	uploaded := false
	for attempt := 0; attempt < 10; attempt++ {
		cur, rev, ok, err := b.Current(ctx)
		if err != nil {
			return Pointer{}, false, err
		}
		if ok && cur.ContentHash == p.ContentHash {
			return cur, false, nil
		}
		if ok && !cur.Built.Before(p.Built) {
			return cur, false, fmt.Errorf("%w: %s (built %s) vs %s", ErrStale, cur.Version, cur.Built.Format(time.RFC3339), p.Version)
		}
		if !uploaded {
			meta := jetstream.ObjectMeta{Name: p.Object, Metadata: map[string]string{builtMeta: p.Built.Format(time.RFC3339Nano)}}
			if _, err := b.Objects.Put(ctx, meta, bytes.NewReader(blob)); err != nil {
				return Pointer{}, false, fmt.Errorf("vulndist: upload %s: %w", p.Object, err)
			}
			uploaded = true
		}
		val, _ := json.Marshal(p)
		if ok {
			_, err = b.KV.Update(ctx, CurrentKey, val, rev)
		} else {
			_, err = b.KV.Create(ctx, CurrentKey, val)
		}
		if err == nil {
			if ok {
				b.prune(ctx, cur.Built)
			}
			return p, true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return Pointer{}, false, fmt.Errorf("vulndist: move %s: %w", CurrentKey, err)
		}
		// Someone else published in between: look again.
	}
	return Pointer{}, false, errors.New("vulndist: publish kept losing the compare-and-set")
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

const builtMeta = "built"

// prune deletes blobs built before the previous current one: watchers
// may still be fetching the previous blob, and a concurrent publisher's
// newer blob may not be current yet. Best effort: a leftover blob costs
// space, not correctness.
func (b Buckets) prune(ctx context.Context, previous time.Time) {
	list, err := b.Objects.List(ctx)
	if err != nil {
		return
	}
	for _, o := range list {
		built, err := time.Parse(time.RFC3339Nano, o.Metadata[builtMeta])
		if err != nil || !built.Before(previous) {
			continue
		}
		_ = b.Objects.Delete(ctx, o.Name)
	}
}

// Fetch downloads and decodes the database p points to.
func (b Buckets) Fetch(ctx context.Context, p Pointer) (*vulndb.DB, error) {
	blob, err := b.Objects.GetBytes(ctx, p.Object)
	if err != nil {
		return nil, fmt.Errorf("vulndist: fetch %s: %w", p.Object, err)
	}
	db, err := vulndb.Read(bytes.NewReader(blob))
	if err != nil {
		return nil, fmt.Errorf("vulndist: %s: %w", p.Object, err)
	}
	if db.Version() != p.Version {
		return nil, fmt.Errorf("vulndist: %s holds version %s, pointer says %s", p.Object, db.Version(), p.Version)
	}
	return db, nil
}
