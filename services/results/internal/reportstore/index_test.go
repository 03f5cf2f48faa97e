package reportstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/store/storetest"
	"github.com/customs-scan/customs/services/results/internal/reportstore"
)

func testReport(repo string, n int, pushed time.Time, tags []string, vulns ...report.Vulnerability) *report.Report {
	r := &report.Report{
		Artifact:   report.Artifact{Registry: "registry.test", Repository: repo, Digest: fmt.Sprintf("sha256:%064x", n), Tags: tags},
		FinishedAt: pushed.Add(time.Second), RequestedAt: &pushed,
		Status: report.StatusComplete, Verdict: report.VerdictPass, Vulnerabilities: vulns,
	}
	r.Normalize()
	return r
}

// plainBucket hides store.S3's ListAfter: Repositories must work on any
// bucket.
type plainBucket struct{ store.Bucket }

func TestRepositoriesIndexPagesAndFilters(t *testing.T) {
	ctx := context.Background()
	s3 := storetest.Start(t).Bucket(t, "reports")
	for _, b := range []struct {
		name   string
		bucket store.Bucket
	}{{"s3", s3}, {"plain", plainBucket{s3}}} {
		t.Run(b.name, func(t *testing.T) {
			st := reportstore.New(b.bucket)
			base := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
			if b.name == "s3" {
				for i, repo := range []string{"team-b/api", "team-a/app", "team-a/web", "lib"} {
					if _, _, err := st.Put(ctx, testReport(repo, i+1, base, []string{"latest"})); err != nil {
						t.Fatal(err)
					}
				}
			}
			var got []string
			after := ""
			for {
				page, err := st.Repositories(ctx, after, 3, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range page.Repositories {
					got = append(got, r.Repository)
				}
				if page.Next == "" {
					break
				}
				after = page.Next
			}
			if want := "lib team-a/app team-a/web team-b/api"; strings.Join(got, " ") != want {
				t.Fatalf("paged repositories = %v; want %s", got, want)
			}
			page, err := st.Repositories(ctx, "", 10, func(r string) bool { return strings.HasPrefix(r, "team-a/") })
			if err != nil || len(page.Repositories) != 2 || page.Next != "" || page.Repositories[1].Repository != "team-a/web" {
				t.Fatalf("filtered page = %+v, %v", page, err)
			}
			// A filter that skips the first listing request's keys: the
			// listing goes on.
			page, err = st.Repositories(ctx, "", 1, func(r string) bool { return r == "team-b/api" })
			if err != nil || len(page.Repositories) != 1 || page.Next != "" || page.Repositories[0].Repository != "team-b/api" {
				t.Fatalf("page filtered to the last repository = %+v, %v", page, err)
			}
		})
	}
}

func TestRepositoryIndexNamesTheNewestPush(t *testing.T) {
	ctx := context.Background()
	st := reportstore.New(storetest.Start(t).Bucket(t, "reports"))
	base := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	newer := testReport("demo/app", 2, base.Add(time.Hour), []string{"latest"},
		report.Vulnerability{ID: "CVE-1", Package: "openssl", Severity: "HIGH"},
		report.Vulnerability{ID: "CVE-2", Package: "zlib", Severity: ""})
	if _, _, err := st.Put(ctx, newer); err != nil {
		t.Fatal(err)
	}
	// A slow scan of an older push arrives later: the index keeps the newer.
	if _, _, err := st.Put(ctx, testReport("demo/app", 1, base, []string{"latest"})); err != nil {
		t.Fatal(err)
	}
	page, err := st.Repositories(ctx, "", 10, nil)
	if err != nil || len(page.Repositories) != 1 {
		t.Fatalf("Repositories = %+v, %v", page, err)
	}
	got := page.Repositories[0]
	if got.Digest != newer.Artifact.Digest || got.Severities["HIGH"] != 1 || got.Severities["UNKNOWN"] != 1 {
		t.Fatalf("index entry = %+v; want the newer push with its severities", got)
	}
	// A re-match of the newest image changes its verdict in the index.
	newer.Verdict = report.VerdictQuarantine
	newer.FinishedAt = newer.FinishedAt.Add(time.Minute)
	if _, err := st.Update(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if page, _ := st.Repositories(ctx, "", 10, nil); page.Repositories[0].Verdict != report.VerdictQuarantine {
		t.Fatalf("index after re-match = %+v", page.Repositories[0])
	}
}

func TestNewVulnerabilitiesBetweenListedImages(t *testing.T) {
	ctx := context.Background()
	st := reportstore.New(storetest.Start(t).Bucket(t, "reports"))
	base := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	old := testReport("demo/app", 1, base, []string{"latest"},
		report.Vulnerability{ID: "DSA-1", Aliases: []string{"CVE-1"}, Package: "openssl"},
		report.Vulnerability{ID: "CVE-9", Package: "zlib"})
	cur := testReport("demo/app", 2, base.Add(time.Hour), []string{"latest"},
		report.Vulnerability{ID: "CVE-1", Package: "openssl"}, // known under its alias
		report.Vulnerability{ID: "CVE-2", Package: "openssl"},
		report.Vulnerability{ID: "CVE-9", Package: "curl"}) // same id, another package: new
	for _, r := range []*report.Report{old, cur} {
		if _, _, err := st.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	images, err := st.Images(ctx, "demo/app", 10)
	if err != nil || len(images) != 2 {
		t.Fatalf("Images = %v, %v", images, err)
	}
	if n := reportstore.NewVulnerabilities(images[0], images[1]); n != 2 {
		t.Fatalf("new vulnerabilities = %d; want 2", n)
	}
	if n := reportstore.NewVulnerabilities(images[1], reportstore.Image{}); n != 2 {
		t.Fatalf("new vulnerabilities of a first image = %d; want 2", n)
	}
	// The API listing does not carry the keys.
	list, err := st.List(ctx, "demo/app", 10)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(list)
	if strings.Contains(string(body), "vuln_keys") || !strings.Contains(string(body), `"severities"`) {
		t.Fatalf("listing JSON: %s", body)
	}
}
