package harbor_test

import (
	"bytes"
	"context"
	"encoding/json"
	spdxjson "github.com/spdx/tools-golang/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	harborfmt "github.com/customs-scan/customs/pkg/formats/harbor"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/store/storetest"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/pkg/wire"
	"github.com/customs-scan/customs/services/harbor"
)

// fixtureRegistry is the registry the fixture scan request names.
const fixtureRegistry = "harbor-harbor-registry:5000"

// backing is NATS with the streams, and results' bucket, without results:
// the tests store reports the way results does (storeReport).
func backing(t testing.TB) (jetstream.JetStream, store.Bucket) {
	t.Helper()
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	if err := queue.EnsureStreams(context.Background(), js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	return js, storetest.Start(t).Bucket(t, "customs-reports")
}

func startAlone(t testing.TB, cfg harbor.Config, deps harbor.Deps) *adapter {
	t.Helper()
	js, bucket := backing(t)
	if cfg.Registries == nil {
		cfg.Registries = []string{fixtureRegistry}
	}
	return serveAdapter(t, js, bucket, cfg, deps, nil)
}

// sbomStub stands in for the SPDX encoder wired in at merge time.
func sbomStub(w io.Writer, r *report.Report, mediaType string) error {
	return json.NewEncoder(w).Encode(map[string]any{"spdxVersion": "SPDX-2.3", "name": r.Artifact.Digest,
		"mediaType": mediaType, "packages": len(r.Packages)})
}

func TestMetadata(t *testing.T) {
	a := startAlone(t, harbor.Config{}, harbor.Deps{})
	x := a.metadata(t)
	if x.status != http.StatusOK || x.header.Get("Content-Type") != "application/vnd.scanner.adapter.metadata+json; version=1.1" {
		t.Fatalf("metadata: %d %v %s", x.status, x.header, x.body)
	}
	var md struct {
		Scanner      harborfmt.Scanner `json:"scanner"`
		Capabilities []struct {
			Type     string   `json:"type"`
			Consumes []string `json:"consumes_mime_types"`
			Produces []string `json:"produces_mime_types"`
		} `json:"capabilities"`
		Properties map[string]string `json:"properties"`
	}
	if err := json.Unmarshal(x.body, &md); err != nil {
		t.Fatal(err)
	}
	if md.Scanner.Name != "Customs" || md.Scanner.Version == "" || len(md.Capabilities) != 1 || md.Capabilities[0].Type != "vulnerability" ||
		strings.Join(md.Capabilities[0].Produces, ",") != harborfmt.MediaTypeVulnerability+","+harborfmt.MediaTypeHarborVulnerability ||
		len(md.Capabilities[0].Consumes) != 2 {
		t.Errorf("metadata %s", x.body)
	}
	if md.Properties["harbor.scanner-adapter/registry-authorization-type"] != "Bearer" ||
		md.Properties["harbor.scanner-adapter/scanner-type"] != "os-package-vulnerability" {
		t.Errorf("properties %v", md.Properties)
	}
	if _, ok := md.Properties["harbor.scanner-adapter/vulnerability-database-updated-at"]; ok {
		t.Errorf("no database is published, yet properties say %v", md.Properties)
	}

	// Once a database is published, its build time is the property.
	built := time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC)
	db := vulndbtest.Build(t, built, "osv/other/GHSA-35jh-r3h4-6jhm.json")
	if _, _, err := vulndist.Publish(context.Background(), a.js, db); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(a.metadata(t).body, &md)
	if got := md.Properties["harbor.scanner-adapter/vulnerability-database-updated-at"]; got != "2026-11-01T06:00:00Z" ||
		md.Properties["customs/vulnerability-database-version"] != db.Version() {
		t.Errorf("properties after publishing %s: %v", db.Version(), md.Properties)
	}

	// With an SBOM renderer, the sbom capability.
	b := startAlone(t, harbor.Config{}, harbor.Deps{SBOM: sbomStub})
	x = b.metadata(t)
	if !strings.Contains(string(x.body), `"type":"sbom"`) || !strings.Contains(string(x.body), `"sbom_media_types":["application/spdx+json"]`) ||
		!strings.Contains(string(x.body), harborfmt.MediaTypeSBOM) {
		t.Errorf("metadata with SBOM: %s", x.body)
	}
}

// The fixture request (as Harbor sends it) becomes one job on the jobs
// stream: source harbor, the artifact, and its Authorization sealed, so
// neither the stream nor the request record holds it; the report is
// pending (302, Refresh-After, the same URL).
func TestScanRequestBecomesASealedJob(t *testing.T) {
	a := startAlone(t, harbor.Config{}, harbor.Deps{})
	body, err := os.ReadFile("testdata/scan-request.json")
	if err != nil {
		t.Fatal(err)
	}
	id := a.scanID(t, body)
	if !regexp.MustCompile(`^[a-f0-9]{32}$`).MatchString(id) {
		t.Errorf("id %q", id)
	}
	js, raw := jobs(t, a.js)
	if len(js) != 1 {
		t.Fatalf("%d jobs, want 1", len(js))
	}
	job := js[0]
	const digest = "sha256:917f5b7f4bef1b35ee90f03033f33a81002511c1e0767fd44276d4bd9cd2fa8e"
	if job.GetSource() != "harbor" || job.GetRegistry() != fixtureRegistry || job.GetRepository() != "library/mongo" ||
		job.GetDigest() != digest || job.GetJobId() != fixtureRegistry+"/library/mongo@"+digest || job.GetInsecure() ||
		job.GetEventId() != "harbor-scan:"+id || job.GetRequestedAt() == nil {
		t.Errorf("job %v", job)
	}
	if len(job.GetSealedAuthorization()) == 0 || strings.Contains(string(raw[0]), "JWTTOKENGOESHERE") {
		t.Fatalf("job credentials not sealed: %q", raw[0])
	}
	k, _ := wire.NewJobKey(testJobKey)
	if got, err := k.Open(job, time.Now()); err != nil || got != "Bearer: JWTTOKENGOESHERE" {
		t.Errorf("sealed value opens to %q, %v", got, err)
	}
	if got, err := k.Open(job, time.Now().Add(61*time.Minute)); err == nil {
		t.Errorf("sealed value still opens after an hour: %q", got)
	}
	kv, err := a.js.KeyValue(context.Background(), harbor.ScansBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), id)
	if err != nil || strings.Contains(string(e.Value()), "JWT") || !strings.Contains(string(e.Value()), digest) {
		t.Errorf("request record %s, %v", e.Value(), err)
	}

	for _, accept := range []string{harborfmt.MediaTypeVulnerability, harborfmt.MediaTypeHarborVulnerability, ""} {
		x := a.report(t, id, accept, "")
		if x.status != http.StatusFound || x.header.Get("Refresh-After") != "1" ||
			x.header.Get("Location") != "/api/v1/scan/"+id+"/report" {
			t.Errorf("pending report (Accept %q): %d %v", accept, x.status, x.header)
		}
	}
	if strings.Contains(a.logs.String(), "JWTTOKENGOESHERE") {
		t.Error("the logs carry the registry token")
	}
}

func lodashReport(registry, digest string) *report.Report {
	now := time.Now().UTC()
	return &report.Report{
		Artifact: report.Artifact{Registry: registry, Repository: "library/app", Digest: digest,
			MediaType: "application/vnd.oci.image.manifest.v1+json"},
		Scanner:    report.Scanner{Name: "customs", Version: "test-version"},
		StartedAt:  now.Add(-time.Second),
		FinishedAt: now,
		Status:     report.StatusComplete,
		Verdict:    report.VerdictWarn,
		Layers:     []report.Layer{{Digest: "sha256:l1", DiffID: "sha256:d1"}},
		Packages:   []report.Package{{Name: "lodash", Version: "4.17.20", Ecosystem: "npm"}},
		Vulnerabilities: []report.Vulnerability{{ID: "GHSA-35jh-r3h4-6jhm", Aliases: []string{"CVE-2021-23337"},
			Package: "lodash", Version: "4.17.20", FixedVersion: "4.17.21", Severity: report.SeverityHigh, Layer: "sha256:l1"}},
	}
}

// pending → an older failure (not this request's) → still pending → this
// request's failure: 500 with the reason → a complete report: 200 in
// either media type.
func TestReportFollowsTheStoredReports(t *testing.T) {
	a := startAlone(t, harbor.Config{}, harbor.Deps{})
	digest := digestN(7)
	old := lodashReport(fixtureRegistry, digest)
	old.Status, old.Verdict, old.Error = report.StatusFailed, "", "an older failure"
	old.FinishedAt = time.Now().Add(-time.Hour)
	storeReport(t, a.js, a.bucket, old)

	id := a.scanID(t, scanRequest("https://"+fixtureRegistry, "Basic cm9ib3Q6cGFzcw==", "library/app", digest, "1.0"))
	if x := a.report(t, id, harborfmt.MediaTypeVulnerability, ""); x.status != http.StatusFound {
		t.Fatalf("an older failure answered the request: %d %s", x.status, x.body)
	}
	job, _ := jobs(t, a.js)
	if len(job) != 1 {
		t.Fatalf("%d jobs", len(job))
	}
	// What the scanner's failed report of this job looks like.
	requested := job[0].GetRequestedAt().AsTime()
	failed := lodashReport(fixtureRegistry, digest)
	failed.Status, failed.Verdict, failed.Vulnerabilities = report.StatusFailed, "", nil
	failed.Error = "get manifest: GET " + fixtureRegistry + ": answered 401 Unauthorized (UNAUTHORIZED)"
	failed.RequestedAt = &requested
	failed.FinishedAt = requested // a skewed scanner clock: the request time still matches
	storeReport(t, a.js, a.bucket, failed)
	x := a.report(t, id, harborfmt.MediaTypeVulnerability, "")
	if x.status != http.StatusInternalServerError || !strings.Contains(errorMessage(t, x.body), "answered 401 Unauthorized") {
		t.Fatalf("failed scan: %d %s", x.status, x.body)
	}

	storeReport(t, a.js, a.bucket, lodashReport(fixtureRegistry, digest))
	for _, accept := range []string{harborfmt.MediaTypeVulnerability, harborfmt.MediaTypeHarborVulnerability, "*/*"} {
		x := a.report(t, id, accept, "")
		want := accept
		if accept == "*/*" {
			want = harborfmt.MediaTypeHarborVulnerability
		}
		if x.status != http.StatusOK || x.header.Get("Content-Type") != want {
			t.Fatalf("report (Accept %q): %d %v %s", accept, x.status, x.header, x.body)
		}
		var rep harborfmt.VulnerabilityReport
		if err := json.Unmarshal(x.body, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Severity != "High" || len(rep.Vulnerabilities) != 1 || rep.Vulnerabilities[0].ID != "CVE-2021-23337" ||
			rep.Artifact.Repository != "library/app" || rep.Artifact.Digest != digest || rep.Artifact.Tag != "1.0" ||
			rep.Scanner.Name != "Customs" || rep.Scanner.Version != "test-version" {
			t.Errorf("report %s", x.body)
		}
	}
}

// A digest with a complete stored report answers at once: no job.
func TestStoredDigestAnswersWithoutAScan(t *testing.T) {
	a := startAlone(t, harbor.Config{}, harbor.Deps{})
	digest := digestN(8)
	storeReport(t, a.js, a.bucket, lodashReport("another.registry:5000", digest))
	id := a.scanID(t, scanRequest(fixtureRegistry, "Basic cm9ib3Q6cGFzcw==", "library/app", digest, ""))
	x := a.report(t, id, harborfmt.MediaTypeVulnerability, "")
	if x.status != http.StatusOK {
		t.Fatalf("report of a stored digest: %d %s", x.status, x.body)
	}
	if j, _ := jobs(t, a.js); len(j) != 0 {
		t.Errorf("%d jobs for a digest already scanned", len(j))
	}
	if !strings.Contains(a.logs.String(), `"result":"stored"`) {
		t.Errorf("the answer from the stored report is not logged:\n%s", a.logs.String())
	}
}

// What a scan request must not be: each refused with the spec's status and
// a reason, no job queued, no credential in the answer or the logs.
func TestScanRequestValidation(t *testing.T) {
	a := startAlone(t, harbor.Config{Registries: []string{fixtureRegistry}, InsecureRegistries: []string{"plain.test:5000"}}, harbor.Deps{})
	const secret = "cm9ib3Q6dG9wLXNlY3JldA==" // robot:top-secret
	good := func(mutate func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(scanRequest("https://"+fixtureRegistry, "Basic "+secret, "library/app", digestN(1), "1"), &m)
		mutate(m)
		b, _ := json.Marshal(m)
		return b
	}
	reg := func(m map[string]any) map[string]any { return m["registry"].(map[string]any) }
	art := func(m map[string]any) map[string]any { return m["artifact"].(map[string]any) }
	for _, tc := range []struct {
		name   string
		body   []byte
		valid  bool // follows the spec's schema
		status int
		want   string
	}{
		{"not JSON", []byte(`{"registry":`), false, 400, "not a scan request"},
		{"wrong type", []byte(`{"registry":"x","artifact":{}}`), false, 400, "not a scan request"},
		{"no registry url", good(func(m map[string]any) { delete(reg(m), "url") }), true, 422, "registry.url: required"},
		{"registry url with a path", good(func(m map[string]any) { reg(m)["url"] = "https://" + fixtureRegistry + "/api" }), true, 422, "base URL"},
		{"registry url with credentials", good(func(m map[string]any) { reg(m)["url"] = "https://u:p@" + fixtureRegistry }), true, 422, "registry.url"},
		{"registry not listed", good(func(m map[string]any) { reg(m)["url"] = "https://169.254.169.254" }), true, 422, "not in CUSTOMS_REGISTRIES"},
		{"plain HTTP to an HTTPS registry", good(func(m map[string]any) { reg(m)["url"] = "http://" + fixtureRegistry }), true, 422, "plain HTTP"},
		{"no repository", good(func(m map[string]any) { delete(art(m), "repository") }), true, 422, "artifact.repository is required"},
		{"bad repository", good(func(m map[string]any) { art(m)["repository"] = "Library/../x" }), true, 422, "not a repository name"},
		{"tag digest", good(func(m map[string]any) { art(m)["digest"] = "latest" }), true, 422, "artifact.digest"},
		{"bad tag", good(func(m map[string]any) { art(m)["tag"] = "a b" }), true, 422, "artifact.tag"},
		{"index", good(func(m map[string]any) { art(m)["mime_type"] = "application/vnd.oci.image.index.v1+json" }), true, 501, "mime_type"},
		{"authorization scheme", good(func(m map[string]any) { reg(m)["authorization"] = "Digest " + secret }), true, 422, "unsupported scheme"},
		{"authorization not base64", good(func(m map[string]any) { reg(m)["authorization"] = "Basic %%" + secret }), true, 422, "not base64"},
		{"capability type", good(func(m map[string]any) { m["enabled_capabilities"] = []any{map[string]any{"type": "malware"}} }), false, 422, "want vulnerability or sbom"},
		{"report type", good(func(m map[string]any) {
			m["enabled_capabilities"] = []any{map[string]any{"type": "vulnerability", "produces_mime_types": []string{"application/vnd.scanner.adapter.vuln.report.raw"}}}
		}), true, 501, "is not produced"},
		{"sbom without a renderer", good(func(m map[string]any) { m["enabled_capabilities"] = []any{map[string]any{"type": "sbom"}} }), true, 501, "no sbom capability"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := a.scan(t, tc.body, tc.valid)
			if x.status != tc.status {
				t.Fatalf("status %d %s, want %d", x.status, x.body, tc.status)
			}
			if msg := errorMessage(t, x.body); !strings.Contains(msg, tc.want) || strings.Contains(msg, secret) {
				t.Errorf("message %q, want it to contain %q and no credential", msg, tc.want)
			}
		})
	}
	// Not the scan request media type.
	req := a.request(t, http.MethodPost, "/api/v1/scan")
	req.Header.Set("Content-Type", "text/plain")
	if x := do(t, a.client, req, scanRequest(fixtureRegistry, "", "a", digestN(1), ""), false); x.status != 400 {
		t.Errorf("text/plain: %d %s", x.status, x.body)
	}
	// Accepted forms: no scheme, plain HTTP to an insecure registry, no
	// credentials, no capabilities (the vulnerability report).
	for _, body := range [][]byte{
		scanRequest(fixtureRegistry, "", "library/app", digestN(2), ""),
		scanRequest("http://plain.test:5000/v2/", "Bearer tok", "library/app", digestN(3), ""),
		[]byte(`{"registry":{"url":"` + fixtureRegistry + `"},"artifact":{"repository":"a/b","digest":"` + digestN(4) + `"}}`),
	} {
		a.scanID(t, body)
	}
	all, _ := jobs(t, a.js)
	if len(all) != 3 || !all[1].GetInsecure() || all[0].GetInsecure() || len(all[0].GetSealedAuthorization()) != 0 {
		t.Errorf("jobs %v: want the three accepted requests only, the plain-HTTP one insecure", all)
	}
	if strings.Contains(a.logs.String(), secret) {
		t.Error("the logs carry a credential")
	}
}

func TestReportErrors(t *testing.T) {
	a := startAlone(t, harbor.Config{}, harbor.Deps{})
	for _, id := range []string{strings.Repeat("ab", 16), "not-an-id"} {
		if x := a.report(t, id, harborfmt.MediaTypeVulnerability, ""); x.status != http.StatusNotFound {
			t.Errorf("unknown id %s: %d %s", id, x.status, x.body)
		}
	}
	digest := digestN(9)
	storeReport(t, a.js, a.bucket, lodashReport(fixtureRegistry, digest))
	id := a.scanID(t, scanRequest(fixtureRegistry, "", "library/app", digest, ""))
	for accept, want := range map[string]int{
		"application/vnd.scanner.adapter.vuln.report.raw":                      501,
		"application/vnd.security.vulnerability.report; version=2.0":           501,
		harborfmt.MediaTypeSBOM:                                                501, // no renderer
		"text/html, " + harborfmt.MediaTypeVulnerability:                       200,
		"application/vnd.security.vulnerability.report;version=1.1;q=0.9":      200,
		"application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0": 200,
	} {
		if x := a.report(t, id, accept, ""); x.status != want {
			t.Errorf("Accept %q: %d %s, want %d", accept, x.status, x.body, want)
		}
	}

	// The SBOM seam: the renderer's document inside Harbor's envelope.
	b := startAlone(t, harbor.Config{}, harbor.Deps{SBOM: sbomStub})
	storeReport(t, b.js, b.bucket, lodashReport(fixtureRegistry, digest))
	id = b.scanID(t, scanRequest(fixtureRegistry, "", "library/app", digest, ""))
	for query, want := range map[string]int{"": 400, "?sbom_media_type=text/plain": 400, "?sbom_media_type=application/vnd.cyclonedx+json": 400} {
		if x := b.report(t, id, harborfmt.MediaTypeSBOM, query); x.status != want {
			t.Errorf("SBOM %q: %d %s, want %d", query, x.status, x.body, want)
		}
	}
	// Encoded as Harbor's client encodes it; an unencoded "+" (a space once
	// decoded) is read the same way.
	if x := b.report(t, id, harborfmt.MediaTypeSBOM, "?sbom_media_type=application/spdx+json"); x.status != 200 {
		t.Errorf("SBOM with an unencoded +: %d %s", x.status, x.body)
	}
	x := b.report(t, id, harborfmt.MediaTypeSBOM, "?sbom_media_type="+url.QueryEscape(harborfmt.SBOMSPDX))
	var sb harborfmt.SBOMReport
	if x.status != 200 || x.header.Get("Content-Type") != harborfmt.MediaTypeSBOM || json.Unmarshal(x.body, &sb) != nil ||
		sb.MediaType != harborfmt.SBOMSPDX || !strings.Contains(string(sb.SBOM), `"spdxVersion":"SPDX-2.3"`) ||
		!strings.Contains(string(sb.SBOM), `"packages":1`) || sb.Artifact.Digest != digest {
		t.Errorf("SBOM report: %d %s", x.status, x.body)
	}
}

func TestAuthentication(t *testing.T) {
	a := startAlone(t, harbor.Config{}, harbor.Deps{})
	for _, auth := range []string{"", "Bearer wrong", "Basic " + testToken, "bearer " + testToken} {
		req := a.request(t, http.MethodGet, "/api/v1/metadata")
		req.Header.Del("Authorization")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		x := do(t, a.client, req, nil, false)
		want := http.StatusUnauthorized
		if auth == "bearer "+testToken { // the scheme is case-insensitive
			want = http.StatusOK
		}
		if x.status != want {
			t.Errorf("Authorization %q: %d, want %d", auth, x.status, want)
		}
		if want == http.StatusUnauthorized && (x.header.Get("WWW-Authenticate") == "" || errorMessage(t, x.body) == "") {
			t.Errorf("401 without a challenge or a reason: %v %s", x.header, x.body)
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := a.client.Get(a.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d without a token", p, resp.StatusCode)
		}
	}

	// Off, said explicitly: open, and warned about.
	b := startAlone(t, harbor.Config{Auth: "off"}, harbor.Deps{})
	b.token = ""
	// Without Authorization the request is outside the spec (which
	// requires one): not validated.
	if x := do(t, b.client, b.request(t, http.MethodGet, "/api/v1/metadata"), nil, false); x.status != http.StatusOK {
		t.Errorf("auth off: %d", x.status)
	}
	if !strings.Contains(b.logs.String(), "scanner API authentication is off") {
		t.Errorf("auth off is not warned about:\n%s", b.logs.String())
	}
}

// The real SBOM: SPDX 2.3 of the stored report, read back with the SPDX
// library, inside Harbor's envelope (validated against the spec like every
// response here).
func TestSPDXSBOM(t *testing.T) {
	b := startAlone(t, harbor.Config{}, harbor.Deps{SBOM: harbor.SPDX})
	digest := "sha256:" + strings.Repeat("5", 64)
	storeReport(t, b.js, b.bucket, lodashReport(fixtureRegistry, digest))
	id := b.scanID(t, scanRequest(fixtureRegistry, "", "library/app", digest, ""))
	x := b.report(t, id, harborfmt.MediaTypeSBOM, "?sbom_media_type="+url.QueryEscape(harborfmt.SBOMSPDX))
	var sb harborfmt.SBOMReport
	if x.status != 200 || json.Unmarshal(x.body, &sb) != nil {
		t.Fatalf("SBOM report: %d %s", x.status, x.body)
	}
	doc, err := spdxjson.Read(bytes.NewReader(sb.SBOM))
	if err != nil {
		t.Fatalf("read SPDX: %v\n%s", err, sb.SBOM)
	}
	var names []string
	for _, p := range doc.Packages {
		names = append(names, p.PackageName)
	}
	if doc.SPDXVersion != "SPDX-2.3" || !slices.Contains(names, "lodash") {
		t.Errorf("SPDX %s packages %v", doc.SPDXVersion, names)
	}
}
