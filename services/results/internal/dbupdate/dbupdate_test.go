package dbupdate_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/osvfeed"
	"github.com/customs-scan/customs/pkg/osvfeed/osvfeedtest"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/services/results/internal/dbupdate"
)

// Two results processes share a cluster: one takes the lease and
// publishes, the other leaves it be; after the interval the next check
// asks the mirror again and publishes only what changed; a corrupt dump
// publishes nothing and frees the lease.
func TestLeaseAndPublish(t *testing.T) {
	ctx := context.Background()
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	m := osvfeedtest.New(t, map[string][]string{"npm": {"osv/other/GHSA-p6mc-m468-83gw.json"}})
	newUpdater := func(name string) *dbupdate.Updater {
		return &dbupdate.Updater{JS: js, Interval: 2 * time.Second, Holder: name, Log: zerolog.Nop(),
			Cache: &osvfeed.Cache{Dir: t.TempDir(), Mirror: m.URL, Ecosystems: []string{"Go", "npm"}}}
	}
	a, b := newUpdater("a"), newUpdater("b")
	if out, err := a.Once(ctx); err != nil || out != dbupdate.Published {
		t.Fatalf("a: %s %v", out, err)
	}
	if out, err := b.Once(ctx); err != nil || out != dbupdate.Held {
		t.Fatalf("b: %s %v", out, err)
	}
	if m.Downloads("npm") != 1 {
		t.Errorf("npm downloaded %d times", m.Downloads("npm"))
	}
	bk, err := vulndist.Ensure(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	current := func() string {
		p, _, ok, err := bk.Current(ctx)
		if err != nil || !ok {
			t.Fatalf("current: %v %v", ok, err)
		}
		return p.Version
	}
	first := current()

	// The lease expires with the interval; nothing changed upstream: a
	// conditional request, no download, nothing published.
	waitFree := func(u *dbupdate.Updater) string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			out, err := u.Once(ctx)
			if err != nil {
				return dbupdate.Failed
			}
			if out != dbupdate.Held {
				return out
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatal("the lease never expired")
		return ""
	}
	if out := waitFree(a); out != dbupdate.Unchanged || current() != first || m.Downloads("npm") != 1 {
		t.Fatalf("unchanged: %s, downloads %d", out, m.Downloads("npm"))
	}

	// A corrupt dump: failed, the database stays, the lease is free at
	// once for the next try.
	m.SetRaw("npm", []byte("not a zip"))
	if out := waitFree(b); out != dbupdate.Failed || current() != first {
		t.Fatalf("corrupt: %s", out)
	}
	m.Set(t, "npm", "osv/other/GHSA-p6mc-m468-83gw.json", "osv/other/GHSA-35jh-r3h4-6jhm.json")
	if out, err := b.Once(ctx); err != nil || out != dbupdate.Published || current() == first {
		t.Fatalf("after the corrupt dump: %s %v", out, err)
	}
	p, _, _, _ := bk.Current(ctx)
	db, err := bk.Fetch(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := db.Match([]report.Package{{Name: "lodash", Version: "4.17.15", Ecosystem: "npm"}}); len(got) != 2 {
		t.Errorf("published database: %+v", got)
	}
}
