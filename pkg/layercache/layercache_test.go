package layercache_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/layercache"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

var (
	_ scan.LayerCache = (*layercache.ObjectStore)(nil)
	_ scan.LayerCache = layercache.Dir("")
)

const key = "688de13f8727ddf11b7918b167a1f9197dab426a612284304376625e9ac35218.0123456789abcdef"

// roundTrip checks Get and Put of any scan.LayerCache.
func roundTrip(t *testing.T, c scan.LayerCache) {
	t.Helper()
	ctx := context.Background()
	if b, ok, err := c.Get(ctx, key); err != nil || ok || b != nil {
		t.Fatalf("Get of a missing key = %q, %t, %v; want nil, false, nil", b, ok, err)
	}
	big := bytes.Repeat([]byte("layer data "), 40_000) // several object store chunks
	for _, data := range [][]byte{[]byte("first"), big, {}} {
		if err := c.Put(ctx, key, data); err != nil {
			t.Fatalf("Put: %v", err)
		}
		b, ok, err := c.Get(ctx, key)
		if err != nil || !ok || !bytes.Equal(b, data) {
			t.Fatalf("Get after Put of %d bytes = %d bytes, %t, %v", len(data), len(b), ok, err)
		}
	}
	if _, ok, err := c.Get(ctx, key+"0"); err != nil || ok {
		t.Errorf("Get of another key = %t, %v", ok, err)
	}
}

func TestObjectStore(t *testing.T) {
	srv := queuetest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	cfg := layercache.Config{TTL: 7 * 24 * time.Hour, MaxBytes: 64 << 20}
	c, err := layercache.NewObjectStore(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)

	// A second scanner binds to the same bucket and sees the entries.
	c2, err := layercache.NewObjectStore(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c2.Get(ctx, key); err != nil || !ok {
		t.Errorf("Get through a second binding = %t, %v", ok, err)
	}
	obs, err := js.ObjectStore(ctx, layercache.DefaultBucket)
	if err != nil {
		t.Fatalf("bucket %s: %v", layercache.DefaultBucket, err)
	}
	st, err := obs.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != cfg.TTL {
		t.Errorf("bucket TTL = %v, want %v", st.TTL(), cfg.TTL)
	}

}

func TestObjectStoreServerDown(t *testing.T) {
	srv := queuetest.Start(t)
	_, js := srv.Connect(t)
	c, err := layercache.NewObjectStore(context.Background(), js, layercache.Config{Bucket: "down"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, ok, err := c.Get(ctx, key); err == nil || ok {
		t.Errorf("Get with the server down = %t, %v; want an error", ok, err)
	}
	if err := c.Put(ctx, key, []byte("x")); err == nil {
		t.Error("Put with the server down succeeded")
	}
}

func TestDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	roundTrip(t, layercache.Dir(dir))
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != key {
		t.Errorf("directory holds %v, want only the key (no temporary files)", entries)
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", ".tmp-1", "a\\b", "a\x00b"} {
		if err := layercache.Dir(dir).Put(context.Background(), bad, []byte("x")); err == nil {
			t.Errorf("Put(%q) succeeded", bad)
		}
		if _, _, err := layercache.Dir(dir).Get(context.Background(), bad); err == nil {
			t.Errorf("Get(%q) succeeded", bad)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := layercache.Dir(dir).Get(ctx, key); err == nil {
		t.Error("Get with a cancelled context succeeded")
	}
}

type fetchCounting struct {
	v1.Layer
	n *atomic.Int64
}

func (l fetchCounting) Compressed() (io.ReadCloser, error) {
	l.n.Add(1)
	return l.Layer.Compressed()
}

// Two scanners sharing the object store: the second downloads no layer
// the first one scanned.
func TestObjectStoreWithScan(t *testing.T) {
	srv := queuetest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	c, err := layercache.NewObjectStore(ctx, js, layercache.Config{})
	if err != nil {
		t.Fatal(err)
	}
	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	app := scantest.Layer(t, scantest.Reg("app/node_modules/ms/package.json", `{"name": "ms", "version": "2.1.3"}`), scantest.Whiteout("var/lib/dpkg/status"))
	analyzers := scan.WithAnalyzers(inspect.PackageAnalyzers()...)
	opts := []scan.Option{analyzers, scan.WithLayerCache(c), scan.WithCacheErrors(func(err error) { t.Errorf("cache error: %v", err) })}
	if _, err := scan.Image(ctx, scantest.Image(t, base), opts...); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	got, err := scan.Image(ctx, scantest.Image(t, fetchCounting{base, &n}, app), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if n.Load() != 0 {
		t.Errorf("the cached base layer was fetched %d times", n.Load())
	}
	want, err := scan.Image(ctx, scantest.Image(t, base, app), analyzers)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Packages) != 1 || len(want.Packages) != 1 || got.Packages[0] != want.Packages[0] || got.OS != want.OS {
		t.Errorf("packages %+v OS %+v, want %+v OS %+v", got.Packages, got.OS, want.Packages, want.OS)
	}
}
