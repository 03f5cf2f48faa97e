package customs_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
	"github.com/customs-scan/customs/pkg/vulndist"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/customs"
)

// osvDir is the real OSV records of pkg/vulndb's tests.
var osvDir = filepath.Join(vulndbtest.TestData(), "osv")

func writeDB(t *testing.T, db *vulndb.DB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vulndb.gob.gz")
	if err := db.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func findVuln(r *report.Report, id string) *report.Vulnerability {
	for i := range r.Vulnerabilities {
		if r.Vulnerabilities[i].ID == id {
			return &r.Vulnerabilities[i]
		}
	}
	return nil
}

// A user's view of issue 3: push an image, read its vulnerabilities; a
// database update re-matches the stored inventory without pulling the
// image again, rewrites the report and announces what is new; scanners
// use the new database without a restart.
func TestVulnerabilityDatabaseUpdateRematches(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	// v1: Go advisories only; v2 adds the lodash advisory.
	db1 := vulndbtest.Build(t, t0, "osv/go/GO-2020-0015.json", "osv/go/GO-2022-0969.json")
	db2 := vulndbtest.Build(t, t0.Add(24*time.Hour), "osv/go/GO-2020-0015.json", "osv/go/GO-2022-0969.json", "osv/other/GHSA-35jh-r3h4-6jhm.json")

	var registryRequests atomic.Int64
	cfg := testConfig(t)
	cfg.DBPath = writeDB(t, db1)
	cfg.RegistryMiddleware = func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			registryRequests.Add(1)
			next.ServeHTTP(w, r)
		})
	}
	st := startStack(t, cfg)

	// Listen for NewVulnerabilities events the way an alerting consumer would.
	nc, err := nats.Connect(st.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	npmLayer := scantest.Layer(t, scantest.Reg("srv/app/node_modules/lodash/package.json",
		`{"name": "lodash", "version": "4.17.20", "license": "MIT"}`))
	img := scantest.Image(t, base, npmLayer)
	digest := push(t, st, "vendor/app:1", img)

	// The same application as a two-platform index.
	arm := withPlatform(t, scantest.Image(t, base, npmLayer), "arm64", "v8")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: withPlatform(t, scantest.Image(t, base), "amd64", ""), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	idxDigest := pushIndex(t, st, "vendor/multi:1", idx)
	if ri := waitReport(t, st.ResultsURL, idxDigest); ri.Verdict != report.VerdictPass || len(ri.Manifests) != 2 {
		t.Fatalf("index before v2: verdict %s manifests %+v", ri.Verdict, ri.Manifests)
	}
	armDigest, _ := arm.Digest()
	waitReport(t, st.ResultsURL, armDigest.String())

	r := waitReport(t, st.ResultsURL, digest)
	if r.VulnerabilityDB.Status != report.VulnDBChecked || r.VulnerabilityDB.Version != db1.Version() {
		t.Fatalf("vulnerability_db = %+v, want checked against %s", r.VulnerabilityDB, db1.Version())
	}
	if len(r.Vulnerabilities) != 0 || r.Verdict != report.VerdictPass {
		t.Fatalf("v1 knows nothing about lodash: vulnerabilities %+v verdict %s", r.Vulnerabilities, r.Verdict)
	}
	if _, ok := pkgMap(r)["lodash"]; !ok {
		t.Fatalf("lodash not in the inventory: %+v", r.Packages)
	}

	// Publish v2 the way `customs db update --publish` does.
	before := registryRequests.Load()
	if _, changed, err := vulndist.Publish(context.Background(), js, db2); err != nil || !changed {
		t.Fatalf("publish v2: changed=%v err=%v", changed, err)
	}

	waitUntil(t, "the stored report to be re-matched against v2", 60*time.Second, func() bool {
		r = waitReport(t, st.ResultsURL, digest)
		return r.VulnerabilityDB.Version == db2.Version()
	})
	v := findVuln(r, "GHSA-35jh-r3h4-6jhm")
	if v == nil {
		t.Fatalf("re-matched report lacks GHSA-35jh-r3h4-6jhm: %+v", r.Vulnerabilities)
	}
	if v.Package != "lodash" || v.Version != "4.17.20" || v.FixedVersion != "4.17.21" || v.Severity != report.SeverityHigh ||
		v.Ecosystem != "npm" || v.Layer != layerDigest(t, npmLayer) || !slices.Contains(v.Aliases, "CVE-2021-23337") {
		t.Errorf("vulnerability = %+v", v)
	}
	if r.Verdict != report.VerdictWarn {
		t.Errorf("verdict after a HIGH vulnerability appeared = %s (%s), want warn", r.Verdict, r.VerdictRule)
	}
	if n := registryRequests.Load() - before; n != 0 {
		t.Errorf("the re-match made %d registry requests, want none", n)
	}

	// The index follows its arm64 platform, which gained the vulnerability.
	waitUntil(t, "the index report to be refreshed", 30*time.Second, func() bool {
		return waitReport(t, st.ResultsURL, idxDigest).VulnerabilityDB.Version == db2.Version()
	})
	ri := waitReport(t, st.ResultsURL, idxDigest)
	if ri.Verdict != report.VerdictWarn {
		t.Errorf("index verdict after v2 = %s, want warn (its arm64 image has a HIGH vulnerability): %+v", ri.Verdict, ri.Manifests)
	}
	for _, m := range ri.Manifests {
		want := report.VerdictPass
		if m.Digest == armDigest.String() {
			want = report.VerdictWarn
		}
		if m.Verdict != want {
			t.Errorf("index lists %s (%s) as %s, want %s", m.Digest, m.Platform, m.Verdict, want)
		}
	}

	// Exactly one event per manifest that gained something, naming what is new.
	cons, err := js.OrderedConsumer(context.Background(), queue.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{queue.NewVulnerabilitiesSubject + ">"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var events []*customsv1.NewVulnerabilities
	waitUntil(t, "NewVulnerabilities events", 30*time.Second, func() bool {
		msgs, err := cons.Fetch(10, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			return false
		}
		for m := range msgs.Messages() {
			ev := &customsv1.NewVulnerabilities{}
			if err := proto.Unmarshal(m.Data(), ev); err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
		}
		return len(events) >= 2
	})
	byDigest := map[string]*customsv1.NewVulnerabilities{}
	for _, ev := range events {
		if byDigest[ev.GetDigest()] != nil {
			t.Fatalf("two events for %s", ev.GetDigest())
		}
		byDigest[ev.GetDigest()] = ev
	}
	if byDigest[armDigest.String()] == nil {
		t.Errorf("no event for the arm64 platform image: %v", events)
	}
	ev := byDigest[digest]
	if len(events) != 2 || ev == nil || ev.GetDigest() != digest || ev.GetRepository() != "vendor/app" ||
		ev.GetDbVersion() != db2.Version() || ev.GetPreviousDbVersion() != db1.Version() ||
		ev.GetVerdict() != report.VerdictWarn || ev.GetPreviousVerdict() != report.VerdictPass {
		t.Fatalf("events = %v", events)
	}
	if nv := ev.GetNewVulnerabilities(); len(nv) != 1 || nv[0].GetId() != "GHSA-35jh-r3h4-6jhm" || nv[0].GetFixedVersion() != "4.17.21" {
		t.Fatalf("new_vulnerabilities = %v", nv)
	}

	// The scanner swapped too: a new push is matched against v2 at once,
	// without a restart.
	img2 := scantest.Image(t, base, npmLayer, scantest.Layer(t, scantest.Reg("srv/app/VERSION", "2\n")))
	digest2 := push(t, st, "vendor/app:2", img2)
	r2 := waitReport(t, st.ResultsURL, digest2)
	if r2.VulnerabilityDB.Version != db2.Version() || findVuln(r2, "GHSA-35jh-r3h4-6jhm") == nil {
		t.Fatalf("new scan: db %+v vulnerabilities %+v", r2.VulnerabilityDB, r2.Vulnerabilities)
	}

	// The inventory the re-match read is served next to the report.
	resp, err := http.Get(st.ResultsURL + "/v1/reports/" + digest + "/inventory")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET inventory: %d", resp.StatusCode)
	}
}

// With no database anywhere, reports list packages and say so.
func TestNoDatabaseSaysNotChecked(t *testing.T) {
	st := startStack(t, testConfig(t))
	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	digest := push(t, st, "testbed/nodb:1", scantest.Image(t, base))
	r := waitReport(t, st.ResultsURL, digest)
	if r.VulnerabilityDB.Status != report.VulnDBNotChecked || r.VulnerabilityDB.Note == "" || len(r.Packages) == 0 {
		t.Fatalf("vulnerability_db = %+v, %d packages", r.VulnerabilityDB, len(r.Packages))
	}
}

// A database file named explicitly (customs up --db) must exist; the
// default place (without --db: $CUSTOMS_DB or the user cache dir,
// DBOptional) may be empty.
func TestMissingDatabaseFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.gob.gz")
	cfg := testConfig(t)
	cfg.RegistryAddr, cfg.Workers = "", 0
	cfg.DBPath = missing
	if st, err := customs.Start(context.Background(), cfg); err == nil {
		_ = st.Stop()
		t.Fatal("Start with a missing database file succeeded")
	} else if !errors.Is(err, vulndb.ErrNoDatabase) {
		t.Fatalf("Start: %v, want ErrNoDatabase", err)
	}
	cfg.DataDir = t.TempDir()
	cfg.DBOptional = true
	startStack(t, cfg)
}

// An ignore file marks a vulnerability as not affecting a repository's
// images: it is listed as ignored, with the reason, and the verdict
// no longer counts it.
func TestIgnoreFileListsIgnoredVulnerabilities(t *testing.T) {
	db := vulndbtest.Build(t, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "osv/other/GHSA-35jh-r3h4-6jhm.json")
	ignoreFile := filepath.Join(t.TempDir(), "ignore.yaml")
	if err := os.WriteFile(ignoreFile, []byte(`ignore:
  - id: CVE-2021-23337
    repository: "vendor/*"
    reason: "template() is never called with user input"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.DBPath = writeDB(t, db)
	cfg.Engine.IgnoreFiles = []string{ignoreFile}
	st := startStack(t, cfg)

	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	img := scantest.Image(t, base, scantest.Layer(t, scantest.Reg("srv/app/node_modules/lodash/package.json",
		`{"name": "lodash", "version": "4.17.20"}`)))
	vendored := push(t, st, "vendor/app:1", img)
	// A different image (one report per digest) in a repository the entry
	// does not cover.
	img2 := scantest.Image(t, base, scantest.Layer(t, scantest.Reg("opt/x/node_modules/lodash/package.json",
		`{"name": "lodash", "version": "4.17.20"}`)))
	teamDigest := push(t, st, "team/app:2", img2)
	rv := waitReport(t, st.ResultsURL, vendored)
	rt := waitReport(t, st.ResultsURL, teamDigest)
	if len(rv.Vulnerabilities) != 0 || len(rv.IgnoredVulnerabilities) != 1 {
		t.Fatalf("vendor/app: vulnerabilities %+v ignored %+v", rv.Vulnerabilities, rv.IgnoredVulnerabilities)
	}
	ig := rv.IgnoredVulnerabilities[0]
	if ig.ID != "GHSA-35jh-r3h4-6jhm" || ig.Reason != "template() is never called with user input" || ig.Source == "" || ig.Status == "" {
		t.Errorf("ignored = %+v", ig)
	}
	if rv.Verdict != report.VerdictPass {
		t.Errorf("verdict with the only vulnerability ignored = %s", rv.Verdict)
	}
	if findVuln(rt, "GHSA-35jh-r3h4-6jhm") == nil || len(rt.IgnoredVulnerabilities) != 0 {
		t.Fatalf("team/app is not covered by the ignore entry: vulnerabilities %+v ignored %+v", rt.Vulnerabilities, rt.IgnoredVulnerabilities)
	}
}
