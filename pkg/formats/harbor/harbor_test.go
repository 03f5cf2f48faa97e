package harbor_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/formats/harbor"
	"github.com/customs-scan/customs/pkg/report"
)

const secretValue = "AKIAQWERTYUIOPASDFGH"

func sample() *report.Report {
	r := &report.Report{
		Artifact: report.Artifact{Registry: "harbor.test", Repository: "library/app", Digest: "sha256:" + strings.Repeat("ab", 32)},
		Status:   report.StatusComplete,
		Verdict:  report.VerdictQuarantine,
		Layers:   []report.Layer{{Digest: "sha256:l1", DiffID: "sha256:d1"}, {Digest: "sha256:l2", DiffID: "sha256:d2"}},
		Vulnerabilities: []report.Vulnerability{
			{ID: "GHSA-35jh-r3h4-6jhm", Aliases: []string{"CVE-2021-23337"}, Package: "lodash", Version: "4.17.20",
				FixedVersion: "4.17.21", Severity: report.SeverityHigh, Ecosystem: "npm", Layer: "sha256:l2"},
			{ID: "GO-2020-0015", Package: "golang.org/x/text", Version: "v0.3.0", Severity: report.SeverityUnknown},
			{ID: "CVE-2024-0727", Package: "openssl", Version: "3.0.11-1", Severity: report.SeverityMedium, Layer: "sha256:l1"},
		},
		IgnoredVulnerabilities: []report.IgnoredVulnerability{{Vulnerability: report.Vulnerability{ID: "CVE-2000-0001", Package: "x"}}},
		Findings: []report.Finding{
			{Kind: report.KindMalware, Rule: "eicar", Severity: report.SeverityCritical, Title: "EICAR test file",
				Path: "srv/eicar.com", Layer: "sha256:l2", SHA256: "275a02", Engine: "signatures"},
			{Kind: report.KindSecret, Rule: "aws access token", Severity: report.SeverityHigh, Title: "AWS access key",
				Path: "etc/app.env", Layer: "sha256:l2", Line: 3, Excerpt: "AKIA****************"},
			{Kind: report.KindMisconfig, Rule: "root-user", Severity: report.SeverityHigh, Title: "runs as root", Path: "(image config)"},
		},
	}
	r.Normalize()
	return r
}

func TestVulnerabilityReport(t *testing.T) {
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.FixedZone("x", 3600))
	a := harbor.Artifact{Repository: "library/app", Digest: "sha256:" + strings.Repeat("ab", 32), Tag: "1.0",
		MimeType: "application/vnd.oci.image.manifest.v1+json"}
	s := harbor.Scanner{Name: "Customs", Vendor: "Customs", Version: "test"}
	got := harbor.NewVulnerabilityReport(sample(), a, s, now)
	if got.Severity != harbor.SeverityCritical || got.Artifact != a || got.Scanner != s || !got.GeneratedAt.Equal(now) ||
		got.GeneratedAt.Location() != time.UTC {
		t.Errorf("header: severity %s artifact %+v scanner %+v generated %v", got.Severity, got.Artifact, got.Scanner, got.GeneratedAt)
	}
	byID := map[string]harbor.VulnerabilityItem{}
	for _, it := range got.Vulnerabilities {
		byID[it.ID] = it
	}
	if len(got.Vulnerabilities) != 5 || len(byID) != 5 {
		t.Fatalf("items %+v: want malware, secret and three vulnerabilities (no misconfig, no ignored)", got.Vulnerabilities)
	}
	m := byID["CUSTOMS-MALWARE-eicar"]
	if m.Package != "srv/eicar.com" || m.Severity != harbor.SeverityCritical || m.Layer == nil || m.Layer.DiffID != "sha256:d2" ||
		m.VendorAttributes["sha256"] != "275a02" {
		t.Errorf("malware item %+v", m)
	}
	sec := byID["CUSTOMS-SECRET-aws-access-token"]
	if sec.Package != "etc/app.env" || sec.Severity != harbor.SeverityCritical || sec.VendorAttributes["customs_severity"] != report.SeverityHigh {
		t.Errorf("secret item %+v", sec)
	}
	l := byID["CVE-2021-23337"]
	if l.Package != "lodash" || l.Version != "4.17.20" || l.FixVersion != "4.17.21" || l.Severity != harbor.SeverityHigh ||
		l.VendorAttributes["osv_id"] != "GHSA-35jh-r3h4-6jhm" || len(l.Links) != 2 ||
		l.Links[0] != "https://osv.dev/vulnerability/GHSA-35jh-r3h4-6jhm" || l.PreferredCVSS != nil {
		t.Errorf("lodash item %+v", l)
	}
	if g := byID["GO-2020-0015"]; g.Severity != harbor.SeverityUnknown || g.Layer != nil || g.VendorAttributes != nil {
		t.Errorf("go item %+v", g)
	}
	if o := byID["CVE-2024-0727"]; o.Severity != harbor.SeverityMedium || o.Layer.Digest != "sha256:l1" {
		t.Errorf("openssl item %+v", o)
	}
	raw, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "AKIA") || strings.Contains(string(raw), secretValue) {
		t.Errorf("the report carries the secret's excerpt: %s", raw)
	}
	if !strings.Contains(string(raw), `"fix_version":""`) || !strings.Contains(string(raw), `"links":[]`) {
		t.Errorf("empty fields are not encoded as the spec's types: %s", raw)
	}
}

func TestEmptyReportSeverity(t *testing.T) {
	r := &report.Report{Status: report.StatusComplete, Verdict: report.VerdictPass}
	r.Normalize()
	got := harbor.NewVulnerabilityReport(r, harbor.Artifact{}, harbor.Scanner{}, time.Now())
	raw, _ := json.Marshal(got)
	if got.Severity != harbor.SeverityUnknown || !strings.Contains(string(raw), `"vulnerabilities":[]`) {
		t.Errorf("empty report: %s", raw)
	}
}

func TestSeverity(t *testing.T) {
	for in, want := range map[string]string{"CRITICAL": "Critical", "HIGH": "High", "MEDIUM": "Medium", "moderate": "Medium",
		"LOW": "Low", "UNKNOWN": "Unknown", "": "Unknown", "bogus": "Unknown"} {
		if got := harbor.Severity(in); got != want {
			t.Errorf("Severity(%q) = %q, want %q", in, got, want)
		}
	}
}
