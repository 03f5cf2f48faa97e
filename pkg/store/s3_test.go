package store_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/store/storetest"
)

// Runs against gofakes3 over real HTTP: the same aws-sdk-go-v2 calls,
// signing and path-style addressing as against MinIO or AWS.
func TestS3RoundTrip(t *testing.T) {
	ctx := context.Background()
	b := storetest.Start(t).Bucket(t, "reports")

	if _, err := b.Get(ctx, "missing.json"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
	for _, k := range []string{"a/2.json", "a/1.json", "b/1.json"} {
		if err := b.Put(ctx, k, []byte(`{"k":"`+k+`"}`), "application/json"); err != nil {
			t.Fatal(err)
		}
	}
	// Overwrite: same key, one object.
	if err := b.Put(ctx, "a/1.json", []byte(`{"k":"new"}`), "application/json"); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "a/1.json")
	if err != nil || string(got) != `{"k":"new"}` {
		t.Fatalf("Get = %q, %v", got, err)
	}
	keys, err := b.List(ctx, "a/", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != "a/1.json" || keys[1] != "a/2.json" {
		t.Fatalf("List = %v", keys)
	}
	if keys, _ := b.List(ctx, "a/", 1); len(keys) != 1 {
		t.Fatalf("List limit 1 = %v", keys)
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestS3Unreachable(t *testing.T) {
	ctx := context.Background()
	srv := storetest.Start(t)
	cfg := srv.Config("reports")
	cfg.Endpoint = "http://127.0.0.1:1" // nothing listens there
	cfg.CreateBucket = false
	b, err := store.NewS3(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "k", []byte("v"), "text/plain"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Put to a dead endpoint = %v, want a connection error", err)
	}
}

// A frozen S3 accepts connections and never answers: every operation must
// end within its timeout instead of hanging the caller.
func TestS3FrozenServerTimesOut(t *testing.T) {
	release := make(chan struct{})
	frozen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); frozen.Close() })
	ctx := context.Background()
	b, err := store.NewS3(ctx, store.S3Config{
		Bucket: "reports", Endpoint: frozen.URL, PathStyle: true, AccessKeyID: "k", SecretAccessKey: "s",
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]func() error{
		"get":  func() error { _, err := b.Get(ctx, "k"); return err },
		"list": func() error { _, err := b.List(ctx, "a/", 0); return err },
		"put":  func() error { return b.Put(ctx, "k", []byte("v"), "text/plain") },
		"ping": func() error { return b.Ping(ctx) },
	}
	for name, op := range ops {
		done := make(chan error, 1)
		go func() { done <- op() }()
		select {
		case err := <-done:
			if err == nil || errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s on a frozen server = %v, want a timeout", name, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s on a frozen server still hangs after a minute", name)
		}
	}
}

func TestS3ListAfter(t *testing.T) {
	ctx := context.Background()
	b := storetest.Start(t).Bucket(t, "reports")
	for _, k := range []string{"i/a.json", "i/b.json", "i/c.json", "i/d.json", "j/a.json"} {
		if err := b.Put(ctx, k, []byte("{}"), "application/json"); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := b.ListAfter(ctx, "i/", "i/b.json", 2)
	if err != nil || len(keys) != 2 || keys[0] != "i/c.json" || keys[1] != "i/d.json" {
		t.Fatalf("ListAfter(i/b.json, 2) = %v, %v", keys, err)
	}
	if keys, err := b.ListAfter(ctx, "i/", "", 1); err != nil || len(keys) != 1 || keys[0] != "i/a.json" {
		t.Fatalf("ListAfter(\"\", 1) = %v, %v", keys, err)
	}
	if keys, err := b.ListAfter(ctx, "i/", "i/d.json", 0); err != nil || len(keys) != 0 {
		t.Fatalf("ListAfter(last) = %v, %v", keys, err)
	}
}
