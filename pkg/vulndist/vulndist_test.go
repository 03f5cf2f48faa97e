package vulndist_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
	"github.com/customs-scan/customs/pkg/vulndist"
)

func build(t *testing.T, built time.Time, files ...string) *vulndb.DB {
	t.Helper()
	for i := range files {
		files[i] = "osv/" + files[i]
	}
	return vulndbtest.Build(t, built, files...)
}

var lodash = report.Package{Name: "lodash", Version: "4.17.20", Ecosystem: "npm", PURL: "pkg:npm/lodash@4.17.20"}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPublishAndHotSwap(t *testing.T) {
	srv := queuetest.Start(t)
	_, js := srv.Connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v1 := build(t, t0, "go/GO-2020-0015.json")
	v2 := build(t, t0.Add(time.Hour), "go/GO-2020-0015.json", "other/GHSA-35jh-r3h4-6jhm.json")

	w := vulndist.NewWatcher(js, nil, zerolog.Nop())
	var mu sync.Mutex
	var swaps []string
	w.OnSwap = func(_ context.Context, old, new *vulndb.DB) {
		mu.Lock()
		defer mu.Unlock()
		swaps = append(swaps, new.Version())
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-w.Ready()
	if w.Current() != nil {
		t.Fatal("a database before anything was published")
	}

	p, changed, err := vulndist.Publish(ctx, js, v1)
	if err != nil || !changed || p.Version != v1.Version() {
		t.Fatalf("publish v1: %+v %v %v", p, changed, err)
	}
	waitFor(t, "v1", func() bool { return w.Current() != nil && w.Current().Version() == v1.Version() })
	if got := w.Current().Match([]report.Package{lodash}); len(got) != 0 {
		t.Fatalf("v1 has no lodash advisory, matched %v", got)
	}
	held := w.Current() // a scan in progress keeps its database

	if _, changed, err := vulndist.Publish(ctx, js, v2); err != nil || !changed {
		t.Fatalf("publish v2: %v %v", changed, err)
	}
	waitFor(t, "v2", func() bool { return w.Current().Version() == v2.Version() })
	if got := w.Current().Match([]report.Package{lodash}); len(got) != 1 || got[0].ID != "GHSA-35jh-r3h4-6jhm" {
		t.Fatalf("v2 should match lodash 4.17.20: %v", got)
	}
	if held.Version() != v1.Version() || len(held.Match([]report.Package{lodash})) != 0 {
		t.Fatal("the database held by a running scan changed under it")
	}

	// Same content again: no change. Older build: refused.
	if _, changed, err := vulndist.Publish(ctx, js, build(t, t0.Add(2*time.Hour), "go/GO-2020-0015.json", "other/GHSA-35jh-r3h4-6jhm.json")); err != nil || changed {
		t.Fatalf("same content: changed=%v err=%v", changed, err)
	}
	if _, _, err := vulndist.Publish(ctx, js, build(t, t0.Add(-time.Hour), "go/GO-2021-0113.json")); !errors.Is(err, vulndist.ErrStale) {
		t.Fatalf("older build: err=%v, want ErrStale", err)
	}

	// A watcher started later gets the current version straight away.
	late := vulndist.NewWatcher(js, nil, zerolog.Nop())
	go func() { _ = late.Run(ctx) }()
	<-late.Ready()
	if late.Current() == nil || late.Current().Version() != v2.Version() {
		t.Fatalf("late watcher: %v", late.Current())
	}
	mu.Lock()
	if len(swaps) != 2 || swaps[0] != v1.Version() || swaps[1] != v2.Version() {
		t.Fatalf("swaps = %v", swaps)
	}
	mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Concurrent publishers: the compare-and-set lets exactly the newest build
// end up current, whatever the interleaving.
func TestConcurrentPublish(t *testing.T) {
	srv := queuetest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	files := []string{"go/GO-2020-0015.json", "go/GO-2021-0113.json", "go/GO-2022-0617.json", "go/GO-2022-0969.json", "go/GO-2022-1059.json"}
	dbs := make([]*vulndb.DB, len(files))
	for i, f := range files {
		dbs[i] = build(t, t0.Add(time.Duration(i)*time.Minute), f)
	}
	var wg sync.WaitGroup
	for _, db := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := vulndist.Publish(ctx, js, db); err != nil && !errors.Is(err, vulndist.ErrStale) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, err := vulndist.Ensure(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	p, _, ok, err := b.Current(ctx)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	newest := dbs[len(dbs)-1]
	if p.Version != newest.Version() {
		t.Fatalf("current = %s, want the newest build %s", p.Version, newest.Version())
	}
	got, err := b.Fetch(ctx, p)
	if err != nil || got.Version() != newest.Version() {
		t.Fatalf("fetch: %v %v", got, err)
	}
}

// The watcher survives a NATS restart and picks up what is published after.
func TestWatcherAcrossRestart(t *testing.T) {
	srv := queuetest.Start(t)
	_, js := srv.Connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v1 := build(t, t0, "go/GO-2020-0015.json")
	v2 := build(t, t0.Add(time.Hour), "go/GO-2021-0113.json")
	if _, _, err := vulndist.Publish(ctx, js, v1); err != nil {
		t.Fatal(err)
	}
	w := vulndist.NewWatcher(js, nil, zerolog.Nop())
	go func() { _ = w.Run(ctx) }()
	waitFor(t, "v1", func() bool { return w.Current() != nil })
	srv.Restart()
	waitFor(t, "publish v2 after restart", func() bool {
		_, _, err := vulndist.Publish(ctx, js, v2)
		return err == nil
	})
	waitFor(t, "v2 after restart", func() bool { return w.Current().Version() == v2.Version() })
}

// Old blobs are pruned; the current and the previous stay.
func TestPrune(t *testing.T) {
	srv := queuetest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	files := []string{"go/GO-2020-0015.json", "go/GO-2021-0113.json", "go/GO-2022-0617.json", "go/GO-2022-0969.json"}
	for i, f := range files {
		if _, _, err := vulndist.Publish(ctx, js, build(t, t0.Add(time.Duration(i)*time.Minute), f)); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := vulndist.Ensure(ctx, js)
	list, err := b.Objects.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		names := []string{}
		for _, o := range list {
			names = append(names, o.Name)
		}
		t.Fatalf("blobs after 4 publishes: %v, want the last two", names)
	}
}
