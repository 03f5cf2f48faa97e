package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store/storetest"
	"github.com/customs-scan/customs/services/results/internal/alerts"
	"github.com/customs-scan/customs/services/results/internal/reportstore"
	"github.com/customs-scan/customs/services/results/internal/web"
)

// benchHandler mounts the pages on a store backed by gofakes3 over HTTP
// (real S3 requests on loopback), with reads open.
func benchHandler(b *testing.B, st *reportstore.Store) http.Handler {
	b.Helper()
	auth, err := apiauth.New(apiauth.Config{Anonymous: apiauth.RoleRead})
	if err != nil {
		b.Fatal(err)
	}
	return web.Mount(chi.NewRouter(), web.Deps{Store: st, Auth: auth, QuarantineMode: "off",
		NewSince: (&alerts.Publisher{Store: st}).NewSince, SessionKey: signingKey, Log: zerolog.Nop()})
}

func get(b *testing.B, h http.Handler, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String()[:min(rec.Body.Len(), 300)])
	}
	return rec
}

// The 3,000-package report page: read and decode the report, filter,
// page, compare with the previous image, render 100 rows of each table.
func BenchmarkImagePage3000Packages(b *testing.B) {
	st := reportstore.New(storetest.Start(b).Bucket(b, "reports"))
	f := newFixtures(report.VulnerabilityDB{Status: report.VulnDBChecked, Version: "bench"})
	if _, _, err := st.Put(context.Background(), f.big); err != nil {
		b.Fatal(err)
	}
	h := benchHandler(b, st)
	for _, c := range []struct{ name, query string }{
		{"first-page", ""},
		{"filtered-page-20", "?severity=HIGH&fixable=1&page=20"},
		{"package-search", "?q=pkg-29"},
	} {
		b.Run(c.name, func(b *testing.B) {
			path := "/images/" + f.big.Artifact.Digest + c.query
			size := get(b, h, path).Body.Len()
			for b.Loop() {
				get(b, h, path)
			}
			b.ReportMetric(float64(size)/1024, "KiB/page")
		})
	}
}

// The overview of 10,000 repositories: a page of 50 from the repository
// index, a page deep in the alphabet, and a name search over every index
// key.
func BenchmarkOverview10000Repositories(b *testing.B) {
	ctx := context.Background()
	st := reportstore.New(storetest.Start(b).Bucket(b, "reports"))
	const repos = 10_000
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range repos {
		g.Go(func() error {
			pushed := base.Add(time.Duration(i) * time.Second)
			r := &report.Report{
				Artifact: report.Artifact{Registry: registry, Repository: fmt.Sprintf("team-%02d/service-%05d", i%40, i),
					Digest: digest(100_000 + i), Tags: []string{"latest"}, MediaType: "application/vnd.oci.image.manifest.v1+json", Platform: "linux/amd64"},
				FinishedAt: pushed.Add(time.Second), RequestedAt: &pushed, Status: report.StatusComplete, Verdict: report.VerdictPass,
				Vulnerabilities: []report.Vulnerability{{ID: "CVE-1", Package: "openssl", Severity: "HIGH"}},
			}
			if i%97 == 0 {
				r.Verdict = report.VerdictQuarantine
			}
			_, _, err := st.Put(gctx, r)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d repositories in %v", repos, time.Since(start).Round(time.Millisecond))
	h := benchHandler(b, st)
	for _, c := range []struct{ name, query string }{
		{"first-page", "/"},
		{"deep-page", "/?after=team-30/service-05000"},
		{"search", "/?q=service-0999"},
	} {
		b.Run(c.name, func(b *testing.B) {
			body := get(b, h, c.query).Body.String()
			if !strings.Contains(body, "service-") {
				b.Fatalf("%s lists no repository", c.query)
			}
			for b.Loop() {
				get(b, h, c.query)
			}
		})
	}
}
