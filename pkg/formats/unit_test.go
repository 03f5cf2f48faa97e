package formats_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/customs-scan/customs/pkg/formats"
	"github.com/customs-scan/customs/pkg/formats/cyclonedx"
	"github.com/customs-scan/customs/pkg/formats/sarif"
	"github.com/customs-scan/customs/pkg/formats/spdx"
	"github.com/customs-scan/customs/pkg/formats/table"
	"github.com/customs-scan/customs/pkg/report"
)

func TestLookupAndContentTypes(t *testing.T) {
	want := map[string]string{
		"json":      "application/json",
		"table":     "text/plain; charset=utf-8",
		"cyclonedx": "application/vnd.cyclonedx+json",
		"spdx-json": "application/spdx+json",
		"sarif":     "application/sarif+json",
		"openvex":   "application/vnd.openvex+json",
	}
	if got := formats.Names(); len(got) != len(want) {
		t.Errorf("Names() = %v", got)
	}
	for name, ct := range want {
		enc, got, ok := formats.Lookup(name)
		if !ok || enc == nil || got != ct {
			t.Errorf("Lookup(%q) = %v, %q", name, ok, got)
		}
	}
	if _, _, ok := formats.Lookup("xml"); ok {
		t.Error("Lookup(xml) succeeded")
	}
}

func TestFromAccept(t *testing.T) {
	for header, want := range map[string]string{
		"":                               "json",
		"*/*":                            "json",
		"application/json":               "json",
		"application/vnd.cyclonedx+json": "cyclonedx",
		"application/vnd.cyclonedx+json; version=1.6": "cyclonedx",
		"application/spdx+json":                       "spdx-json",
		"application/sarif+json":                      "sarif",
		"application/vnd.openvex+json":                "openvex",
		"application/openvex+json":                    "openvex",
		"text/plain":                                  "table",
		"text/html, application/xhtml+xml, application/xml;q=0.9, */*;q=0.8": "json", // a browser
		"application/sarif+json;q=0.5, application/spdx+json":                "spdx-json",
		"application/json;q=0.1, application/vnd.cyclonedx+json;q=0.9":       "cyclonedx",
		"text/html, application/spdx+json;q=0.2":                             "spdx-json",
		"application/*, application/sarif+json":                              "sarif", // more specific on a tie
	} {
		got, ok := formats.FromAccept(header)
		if !ok || got != want {
			t.Errorf("FromAccept(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
	for _, header := range []string{"text/html", "application/xml, image/png", "application/json;q=0", "garbage;;"} {
		if got, ok := formats.FromAccept(header); ok {
			t.Errorf("FromAccept(%q) = %q, want not acceptable", header, got)
		}
	}
}

// synthetic is a report of n packages, every third one vulnerable (with
// severities cycling), a few findings, one ignored vulnerability and two
// installs of the same purl: the shape of a real scan, sized at will.
func synthetic(n int) *report.Report {
	t0 := time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC)
	r := &report.Report{
		Artifact:        report.Artifact{Registry: "registry.example.com", Repository: "team/big", Digest: fakeDigest("big"), Platform: "linux/amd64", Tags: []string{"1"}},
		Scanner:         report.Scanner{Name: "customs", Version: "test"},
		StartedAt:       t0,
		FinishedAt:      t0,
		Status:          report.StatusComplete,
		OS:              report.OS{ID: "debian", Version: "12"},
		VulnerabilityDB: report.VulnerabilityDB{Status: report.VulnDBChecked, Version: "sha256:x@2026-11-01T00:00:00Z", MatchedAt: &t0},
		Verdict:         report.VerdictWarn,
	}
	sevs := []string{report.SeverityCritical, report.SeverityHigh, report.SeverityMedium, report.SeverityLow, report.SeverityUnknown}
	score := 7.5
	for i := range n {
		p := report.Package{Name: fmt.Sprintf("pkg%d", i), Version: fmt.Sprintf("1.%d.0", i), Ecosystem: "npm",
			Path: fmt.Sprintf("app/node_modules/pkg%d/package.json", i), Layer: fakeDigest("layer"), Analyzer: "npm"}
		if i%2 == 0 {
			p.Ecosystem, p.Path, p.Analyzer = "Debian:12", "var/lib/dpkg/status", "dpkg"
			p.PURL = fmt.Sprintf("pkg:deb/debian/%s@%s?arch=amd64&distro=debian-12", p.Name, p.Version)
		} else {
			p.PURL = fmt.Sprintf("pkg:npm/%s@%s", p.Name, p.Version)
		}
		r.Packages = append(r.Packages, p)
		if i%3 == 0 {
			v := report.Vulnerability{
				ID: fmt.Sprintf("CVE-2026-%05d", i), Aliases: []string{fmt.Sprintf("GHSA-%04d-xxxx-yyyy", i)},
				Package: p.Name, Version: p.Version, FixedVersion: fmt.Sprintf("1.%d.1", i), Severity: sevs[i%len(sevs)],
				Ecosystem: p.Ecosystem, PURL: p.PURL, Path: p.Path, Layer: p.Layer,
				Summary:    "Something bad in " + p.Name,
				References: []string{"https://example.com/advisory/" + p.Name},
				CWEs:       []string{"CWE-79"},
			}
			if i%2 == 0 {
				v.CVSS = &report.CVSS{Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", Score: &score}
			}
			r.Vulnerabilities = append(r.Vulnerabilities, v)
		}
	}
	// The same package installed twice.
	dup := r.Packages[1]
	dup.Path = "other/node_modules/pkg1/package.json"
	r.Packages = append(r.Packages, dup)
	r.IgnoredVulnerabilities = []report.IgnoredVulnerability{{
		Vulnerability: report.Vulnerability{ID: "CVE-2026-99999", Package: "pkg1", Version: r.Packages[1].Version, PURL: r.Packages[1].PURL, Ecosystem: "npm", Severity: report.SeverityHigh},
		Status:        "not_affected", Justification: "vulnerable_code_not_present", Reason: "not used", Source: "vex.json",
	}}
	r.Findings = []report.Finding{
		{Kind: report.KindSecret, Rule: "generic-api-key", Severity: report.SeverityHigh, Title: "Generic API key", Path: "app/config.yaml", Line: 3, Excerpt: "key: ab…yz", Layer: fakeDigest("layer")},
		{Kind: report.KindMalware, Rule: "eicar", Severity: report.SeverityHigh, Title: "EICAR test file", Path: "app.jar!/x/eicar.com", Layer: fakeDigest("layer")},
		{Kind: report.KindMisconfig, Rule: "config-root-user", Severity: report.SeverityMedium, Title: "Container runs as root", Path: "(image config)"},
	}
	r.Normalize()
	return r
}

// GitHub refuses runs over 25,000 results: beyond the limit the least
// severe results go, a notification says how many, and only the rules of
// kept results are listed.
func TestSARIFLimits(t *testing.T) {
	r := synthetic(300) // 100 vulnerabilities, 3 findings, 1 ignored
	log := sarif.Log(r, sarif.Limits{Results: 10})
	run := log.Runs[0]
	if len(run.Results) != 10 {
		t.Fatalf("%d results", len(run.Results))
	}
	for _, res := range run.Results {
		sev, _ := res.Properties.Properties["severity"].(string)
		if sev != report.SeverityCritical && sev != report.SeverityHigh {
			t.Errorf("kept a %s result over more severe ones", sev)
		}
		if len(res.Suppressions) > 0 {
			t.Error("kept a suppressed result")
		}
	}
	if len(run.Tool.Driver.Rules) > 10 {
		t.Errorf("%d rules for 10 results", len(run.Tool.Driver.Rules))
	}
	notes := run.Invocations[0].ToolExecutionNotifications
	if len(notes) != 1 || !strings.Contains(*notes[0].Message.Text, "94 of 104 results left out") {
		t.Errorf("notifications %+v", notes)
	}
	// Rules are bounded too.
	log = sarif.Log(r, sarif.Limits{Rules: 5})
	if n := len(log.Runs[0].Tool.Driver.Rules); n != 5 {
		t.Errorf("%d rules, want 5", n)
	}
	// Within the limits, nothing is left out and nothing is said.
	log = sarif.Log(r, sarif.Limits{})
	if n := len(log.Runs[0].Results); n != 104 || len(log.Runs[0].Invocations[0].ToolExecutionNotifications) != 0 {
		t.Errorf("%d results, notifications %v", n, log.Runs[0].Invocations[0].ToolExecutionNotifications)
	}
}

// At the limit, a run is still within GitHub's 10 MB (gzip'd) upload.
func TestSARIFAtGitHubLimitFitsUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	r := synthetic(90_000) // 30,000 vulnerabilities
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := sarif.Encode(zw, r); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	if buf.Len() > 10<<20 {
		t.Errorf("%d bytes gzip'd", buf.Len())
	}
	t.Logf("25,000 results: %d bytes gzip'd", buf.Len())
}

func TestTableColorAndPackages(t *testing.T) {
	r := synthetic(30)
	var plain, color bytes.Buffer
	if err := table.Encode(&plain, r, table.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := table.Encode(&color, r, table.Options{Color: true, Packages: true}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "\x1b[") || !strings.Contains(color.String(), "\x1b[1;31mCRITICAL\x1b[0m") {
		t.Error("colour codes only with Color")
	}
	if strings.Contains(plain.String(), "pkg7 ") || !strings.Contains(color.String(), "PACKAGE") {
		t.Error("packages only with Packages")
	}
	// Summary first, then vulnerabilities: CRITICAL before LOW, fixable
	// before unfixable within a severity.
	s := plain.String()
	if i, j := strings.Index(s, "verdict:"), strings.Index(s, "SEVERITY"); i < 0 || j < i {
		t.Error("summary is not first")
	}
	if i, j := strings.Index(s, "CRITICAL  CVE"), strings.Index(s, "LOW       CVE"); i < 0 || j < i {
		t.Errorf("order:\n%s", s)
	}
	// Secrets' excerpts stay out of the table.
	if strings.Contains(s, "ab…yz") {
		t.Error("excerpt in the table")
	}
	// Colour does not break alignment: the same columns without codes.
	stripped := strings.NewReplacer("\x1b[0m", "", "\x1b[1m", "", "\x1b[1;31m", "", "\x1b[31m", "", "\x1b[33m", "", "\x1b[34m", "", "\x1b[90m", "", "\x1b[32m", "").Replace(color.String())
	if !strings.HasPrefix(stripped, strings.Split(plain.String(), "\nSEVERITY")[0]) {
		t.Error("coloured table differs from the plain one beyond the codes")
	}
}

// Two installs of one purl are two components with distinct bom-refs,
// both affected by a vulnerability of that package; SPDX ids are unique.
func TestDuplicatePackages(t *testing.T) {
	r := synthetic(30)
	bom := cyclonedx.BOM(r)
	refs := map[string]int{}
	for _, c := range *bom.Components {
		refs[c.BOMRef]++
	}
	for ref, n := range refs {
		if n > 1 {
			t.Errorf("bom-ref %s %d times", ref, n)
		}
	}
	var ignored *cdx.Vulnerability
	for i, v := range *bom.Vulnerabilities {
		if v.ID == "CVE-2026-99999" {
			ignored = &(*bom.Vulnerabilities)[i]
		}
	}
	if ignored == nil || len(*ignored.Affects) != 2 || ignored.Analysis == nil ||
		ignored.Analysis.State != cdx.IASNotAffected || ignored.Analysis.Justification != cdx.IAJCodeNotPresent {
		t.Errorf("ignored vulnerability: %+v", ignored)
	}
	doc := spdx.Document(r)
	ids := map[string]bool{}
	for _, p := range doc.Packages {
		if ids[string(p.PackageSPDXIdentifier)] {
			t.Errorf("SPDX id %s twice", p.PackageSPDXIdentifier)
		}
		ids[string(p.PackageSPDXIdentifier)] = true
	}
}

// A failed scan still encodes in every format (the exports say it failed).
func TestFailedReportEncodes(t *testing.T) {
	r := &report.Report{Artifact: report.Artifact{Digest: fakeDigest("failed")}, Status: report.StatusFailed, Error: "GET registry: answered 404"}
	r.Normalize()
	for _, name := range formats.Names() {
		enc, _, _ := formats.Lookup(name)
		var buf bytes.Buffer
		if err := enc(&buf, r, formats.Options{}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if name != formats.Table && !json.Valid(buf.Bytes()) {
			t.Errorf("%s: not JSON", name)
		}
	}
	var buf bytes.Buffer
	if err := sarif.Encode(&buf, r); err != nil || !strings.Contains(buf.String(), `"executionSuccessful": false`) || !strings.Contains(buf.String(), "scan failed") {
		t.Errorf("sarif of a failed scan: %v\n%s", err, buf.String())
	}
}

// Size and encode time of each format for a 500-package report:
//
//	go test -run x -bench Formats -benchtime 20x ./pkg/formats/
func BenchmarkFormats500(b *testing.B) {
	r := synthetic(500)
	for _, name := range formats.Names() {
		enc, _, _ := formats.Lookup(name)
		b.Run(name, func(b *testing.B) {
			var size int
			for b.Loop() {
				cw := &countingWriter{}
				if err := enc(cw, r, formats.Options{Packages: true}); err != nil {
					b.Fatal(err)
				}
				size = cw.n
			}
			b.ReportMetric(float64(size), "bytes/doc")
		})
	}
}

type countingWriter struct{ n int }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

var _ io.Writer = (*countingWriter)(nil)

// A development dependency is a CycloneDX component of scope "excluded"
// (used for building and testing, not at runtime); others have none.
func TestCycloneDXDevScope(t *testing.T) {
	r := synthetic(3)
	for i := range r.Packages {
		if r.Packages[i].Name == "pkg1" {
			r.Packages[i].Scope = report.ScopeDev
		}
	}
	bom := cyclonedx.BOM(r)
	n := 0
	for _, c := range *bom.Components {
		if c.Type != cdx.ComponentTypeLibrary {
			continue
		}
		want := cdx.Scope("")
		if c.Name == "pkg1" {
			want = cdx.ScopeExcluded
			n++
		}
		if c.Scope != want {
			t.Errorf("%s: scope %q, want %q", c.BOMRef, c.Scope, want)
		}
	}
	if n == 0 {
		t.Error("no component for the dev package")
	}
	var buf bytes.Buffer
	if err := table.Encode(&buf, r, table.Options{Packages: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "1.1.0 (dev)") || strings.Contains(buf.String(), "1.0.0 (dev)") {
		t.Errorf("the package table does not mark (only) the dev package:\n%s", buf.String())
	}
}
