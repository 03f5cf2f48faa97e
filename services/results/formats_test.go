package results_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/services/results"
)

// request calls the API with a token, an Accept header ("" for none).
func (e *env) request(t *testing.T, token, accept, path string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.api.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// GET /v1/reports/{digest} serves the stored report in the format ?format=
// names or Accept prefers; the quarantine state joins the JSON only; the
// repository scope of a token applies to every format.
func TestReportFormats(t *testing.T) {
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken, Quarantine: "enforce", APITokensFile: writeTokens(t)})
	now := time.Now().UTC().Truncate(time.Second)
	r := quarantineReport("team-a/app", 1, now)
	r.Packages[0].PURL = "pkg:deb/debian/bash@5.2.15-2%2Bb2?distro=debian-12"
	r.Vulnerabilities = []report.Vulnerability{{ID: "CVE-2026-0001", Aliases: []string{}, Package: "bash", Version: "5.2.15-2+b2", Severity: report.SeverityHigh,
		FixedVersion: "5.2.15-2+b3", Ecosystem: "Debian:12", PURL: r.Packages[0].PURL, Path: "var/lib/dpkg/status", References: []string{}, CWEs: []string{}}}
	e.publish(t, r)
	e.publish(t, newReport("team-b/app", 2, now))
	e.waitReport(t, digest(1))
	e.waitReport(t, digest(2))
	e.waitRecord(t, digest(1), func(rec quarantine.RecordJSON) bool { return rec.State == quarantine.StateQuarantined })

	path := "/v1/reports/" + digest(1)
	for _, c := range []struct {
		query, accept, contentType string
		code                       int
		body                       string // a substring the body must hold
	}{
		{"", "", "application/json", 200, `"quarantine"`},
		{"", "application/json", "application/json", 200, `"quarantine"`},
		{"", "*/*", "application/json", 200, `"schema_version"`},
		{"?format=json", "", "application/json", 200, `"quarantine"`},
		{"", "application/vnd.cyclonedx+json", "application/vnd.cyclonedx+json", 200, `"specVersion": "1.6"`},
		{"?format=cyclonedx", "", "application/vnd.cyclonedx+json", 200, `"bomFormat": "CycloneDX"`},
		{"", "application/spdx+json", "application/spdx+json", 200, `"spdxVersion": "SPDX-2.3"`},
		{"?format=spdx-json", "text/html", "application/spdx+json", 200, `"SPDXRef-DOCUMENT"`}, // ?format= wins over Accept
		{"", "application/sarif+json", "application/sarif+json", 200, `"version": "2.1.0"`},
		{"?format=sarif", "", "application/sarif+json", 200, `"security-severity": "8.0"`},
		{"", "application/vnd.openvex+json", "application/vnd.openvex+json", 200, `"@context": "https://openvex.dev/ns/v0.2.0"`},
		{"", "text/plain", "text/plain; charset=utf-8", 200, "QUARANTINE"},
		{"", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json", 200, `"schema_version"`}, // a browser
		{"?format=xml", "", "application/json", 400, "known formats are json, table, cyclonedx, spdx-json, sarif, openvex"},
		{"?format=", "", "application/json", 400, "unknown format"},
		{"", "application/xml", "application/json", 406, "application/vnd.cyclonedx+json"},
		{"", "image/png, text/csv", "application/json", 406, "?format="},
		// A browser with a token gets the report itself, not a 406.
		{"", "text/html, image/png", "application/json", 200, "\"schema_version\""},
	} {
		code, h, body := e.request(t, testToken, c.accept, path+c.query)
		if code != c.code || h.Get("Content-Type") != c.contentType || !strings.Contains(string(body), c.body) {
			t.Errorf("GET %s%s Accept %q: %d %s\n%.300s", path, c.query, c.accept, code, h.Get("Content-Type"), body)
		}
		if code == 200 && !strings.Contains(h.Get("Vary"), "Accept") {
			t.Errorf("GET %s%s: no Vary: Accept", path, c.query)
		}
		// The quarantine state is Customs' JSON only.
		if code == 200 && c.contentType != "application/json" && bytes.Contains(body, []byte(`"quarantine": {`)) {
			t.Errorf("%s carries the quarantine state", c.contentType)
		}
	}

	// The export is the stored report's: CycloneDX names the image and its
	// vulnerability.
	_, _, body := e.request(t, testToken, "", path+"?format=cyclonedx")
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(body), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	if bom.Metadata.Component.Name != "registry.test:5000/team-a/app@"+digest(1) || bom.Vulnerabilities == nil || (*bom.Vulnerabilities)[0].ID != "CVE-2026-0001" {
		t.Errorf("bom: %+v", bom.Metadata.Component)
	}

	// Scoped tokens: their team's report in any format, 404 for another
	// team's whatever the format, as for a missing report.
	for _, q := range []string{"", "?format=sarif", "?format=spdx-json"} {
		if code, _, body := e.request(t, "team-a-token", "", path+q); code != 200 {
			t.Errorf("team-a, own report%s: %d %s", q, code, body)
		}
		code, _, other := e.request(t, "team-a-token", "", "/v1/reports/"+digest(2)+q)
		_, _, missing := e.request(t, testToken, "", "/v1/reports/"+digest(3)+q)
		if code != 404 || strings.ReplaceAll(string(other), digest(2), "D") != strings.ReplaceAll(string(missing), digest(3), "D") {
			t.Errorf("team-a, team-b's report%s: %d %s (missing: %s)", q, code, other, missing)
		}
	}
	// No token: 401 before anything else.
	if code, _, _ := e.request(t, "", "application/sarif+json", path); code != 401 {
		t.Errorf("no token: %d", code)
	}
	var doc map[string]any
	if _, _, body := e.request(t, "reader-token", "application/vnd.openvex+json", path); json.Unmarshal(body, &doc) != nil || doc["statements"] == nil {
		t.Errorf("openvex: %s", body)
	}
}
