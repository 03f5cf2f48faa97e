package rematch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store/storetest"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/services/results/internal/rematch"
	"github.com/customs-scan/customs/services/results/internal/reportstore"
)

// syntheticDB has one advisory per package name of inventory(): every
// tenth package of every image is affected, so re-matching writes events
// as well as reports.
func syntheticDB(b *testing.B, built time.Time, salt int) *vulndb.DB {
	bl := vulndb.NewBuilder()
	bl.Now = func() time.Time { return built }
	for i := 0; i < 2000; i++ {
		eco, name := "Debian:12", fmt.Sprintf("deb-pkg-%d", i%400)
		if i%2 == 1 {
			eco, name = "npm", fmt.Sprintf("npm-pkg-%d", i%400)
		}
		fixed := "9.9.9"
		if i%10 == salt%10 {
			fixed = "1.0.0" // installed 2.0.0 is not affected
		}
		rec := map[string]any{
			"id": fmt.Sprintf("TEST-%d-%d", salt, i), "modified": "2026-01-01T00:00:00Z",
			"affected": []any{map[string]any{
				"package": map[string]any{"ecosystem": eco, "name": name},
				"ranges":  []any{map[string]any{"type": "ECOSYSTEM", "events": []any{map[string]any{"introduced": "0"}, map[string]any{"fixed": fixed}}}},
			}},
		}
		data, _ := json.Marshal(rec)
		bl.AddJSON(data)
	}
	return bl.Build()
}

func inventory(n int) []report.Package {
	var pkgs []report.Package
	for i := 0; i < 100; i++ {
		k := (n*7 + i) % 400
		if i < 90 {
			pkgs = append(pkgs, report.Package{Name: fmt.Sprintf("deb-pkg-%d", k), Version: "2.0.0", SourceName: fmt.Sprintf("deb-pkg-%d", k), SourceVersion: "2.0.0", Ecosystem: "Debian:12", Path: "var/lib/dpkg/status"})
		} else {
			pkgs = append(pkgs, report.Package{Name: fmt.Sprintf("npm-pkg-%d", k), Version: "2.0.0", Ecosystem: "npm", Path: fmt.Sprintf("app/node_modules/npm-pkg-%d/package.json", k)})
		}
	}
	return pkgs
}

// BenchmarkRematch1000Inventories times one full re-match pass over 1,000
// stored inventories (100 packages each) after a database update, against
// a real S3 server over HTTP (gofakes3) and a real JetStream for events.
// Run: go test -run - -bench Rematch -benchtime 3x ./services/results/internal/rematch/
func BenchmarkRematch1000Inventories(b *testing.B) {
	ctx := context.Background()
	ns := queuetest.Start(b)
	_, js := ns.Connect(b)
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		b.Fatal(err)
	}
	st := reportstore.New(storetest.Start(b).Bucket(b, "reports"))
	const images = 1000
	now := time.Now().UTC()
	for n := 0; n < images; n++ {
		r := &report.Report{
			Artifact:   report.Artifact{Registry: "registry.test", Repository: fmt.Sprintf("team/app-%d", n%50), Digest: fmt.Sprintf("sha256:%064x", n+1)},
			FinishedAt: now, Status: report.StatusComplete, Verdict: report.VerdictPass, Packages: inventory(n),
		}
		if _, _, err := st.Put(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	m := &rematch.Rematcher{JS: js, Store: st, Concurrency: 8, Log: zerolog.Nop()}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	dbs := make([]*vulndb.DB, b.N)
	for i := range dbs {
		dbs[i] = syntheticDB(b, t0.Add(time.Duration(i)*time.Hour), i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stats, err := m.All(ctx, dbs[i])
		if err != nil {
			b.Fatal(err)
		}
		if stats.Inventories != images || stats.Updated != images {
			b.Fatalf("stats %+v", stats)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/pass")
}
