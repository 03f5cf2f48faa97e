// Package harbor renders a Customs report in the report formats of
// Harbor's Pluggable Scanner API v1.2 (goharbor/pluggable-scanner-spec):
// the vulnerability report Harbor shows and enforces "Prevent vulnerable
// images from running" with, and the SBOM report envelope.
//
// Malware and secret findings become items of the vulnerability report
// with ids CUSTOMS-MALWARE-<rule> and CUSTOMS-SECRET-<rule>, severity
// Critical and the file as package: Harbor then blocks pulls of such an
// image in a project that prevents Critical vulnerabilities, and its CVE
// allowlist releases one by that id. A finding's excerpt (even redacted)
// is never part of an item.
package harbor

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/customs-scan/customs/pkg/report"
)

// Report media types (the Accept values Harbor asks for).
const (
	// MediaTypeVulnerability is the v1.1 vulnerability report; Harbor's
	// default.
	MediaTypeVulnerability = "application/vnd.security.vulnerability.report; version=1.1"
	// MediaTypeHarborVulnerability is the v1.0 report, the same schema.
	MediaTypeHarborVulnerability = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
	// MediaTypeSBOM is the SBOM report envelope; the document's own format
	// is the request's sbom_media_type.
	MediaTypeSBOM = "application/vnd.security.sbom.report+json; version=1.0"
)

// SBOM document formats (sbom_media_type); Harbor itself only asks for SPDX.
const (
	SBOMSPDX      = "application/spdx+json"
	SBOMCycloneDX = "application/vnd.cyclonedx+json"
)

// Severities of the spec, lowest first. Harbor knows "None" too, but the
// spec's enum does not, so a report without items says Unknown (as
// harbor-scanner-trivy does).
const (
	SeverityUnknown    = "Unknown"
	SeverityNegligible = "Negligible"
	SeverityLow        = "Low"
	SeverityMedium     = "Medium"
	SeverityHigh       = "High"
	SeverityCritical   = "Critical"
)

var severityRank = map[string]int{
	SeverityUnknown: 0, SeverityNegligible: 1, SeverityLow: 2, SeverityMedium: 3, SeverityHigh: 4, SeverityCritical: 5,
}

// Severity maps a Customs severity (report.SeverityHigh, …) to Harbor's.
func Severity(s string) string {
	switch strings.ToUpper(s) {
	case report.SeverityCritical:
		return SeverityCritical
	case report.SeverityHigh:
		return SeverityHigh
	case report.SeverityMedium, "MODERATE":
		return SeverityMedium
	case report.SeverityLow:
		return SeverityLow
	case "NEGLIGIBLE":
		return SeverityNegligible
	}
	return SeverityUnknown
}

// ID prefixes of the items made from findings.
const (
	MalwarePrefix = "CUSTOMS-MALWARE-"
	SecretPrefix  = "CUSTOMS-SECRET-"
)

// Scanner names the scanner in a report.
type Scanner struct {
	Name    string `json:"name"`
	Vendor  string `json:"vendor"`
	Version string `json:"version"`
}

// Artifact is what Harbor asked to scan, echoed in the report.
type Artifact struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	Tag        string `json:"tag,omitempty"`
	MimeType   string `json:"mime_type,omitempty"`
}

// VulnerabilityReport is the spec's HarborVulnerabilityReport.
type VulnerabilityReport struct {
	GeneratedAt     time.Time           `json:"generated_at"`
	Artifact        Artifact            `json:"artifact"`
	Scanner         Scanner             `json:"scanner"`
	Severity        string              `json:"severity"`
	Vulnerabilities []VulnerabilityItem `json:"vulnerabilities"`
}

// VulnerabilityItem is the spec's VulnerabilityItem, plus the layer that
// Harbor's own model reads.
type VulnerabilityItem struct {
	ID          string   `json:"id"`
	Package     string   `json:"package"`
	Version     string   `json:"version"`
	FixVersion  string   `json:"fix_version"`
	Severity    string   `json:"severity"`
	Description string   `json:"description,omitempty"`
	Links       []string `json:"links"`
	Layer       *Layer   `json:"layer,omitempty"`
	// PreferredCVSS is set when the report carries CVSS data (see
	// preferredCVSS).
	PreferredCVSS    *CVSS          `json:"preferred_cvss,omitempty"`
	CWEIDs           []string       `json:"cwe_ids,omitempty"`
	VendorAttributes map[string]any `json:"vendor_attributes,omitempty"`
}

// Layer is the layer that added the package or file.
type Layer struct {
	Digest string `json:"digest,omitempty"`
	DiffID string `json:"diff_id,omitempty"`
}

// CVSS is the spec's CVSSDetails.
type CVSS struct {
	ScoreV3  *float64 `json:"score_v3,omitempty"`
	ScoreV2  *float64 `json:"score_v2,omitempty"`
	VectorV3 string   `json:"vector_v3,omitempty"`
	VectorV2 string   `json:"vector_v2,omitempty"`
}

// NewVulnerabilityReport renders r for Harbor: findings that stop an image
// (malware, secrets) first, then the vulnerabilities (ignored ones, which
// a VEX document or ignore file declared not affecting, are left out);
// severity is the highest of the items.
func NewVulnerabilityReport(r *report.Report, a Artifact, s Scanner, generated time.Time) *VulnerabilityReport {
	diffIDs := map[string]string{}
	for _, l := range r.Layers {
		diffIDs[l.Digest] = l.DiffID
	}
	layer := func(digest string) *Layer {
		if digest == "" {
			return nil
		}
		return &Layer{Digest: digest, DiffID: diffIDs[digest]}
	}
	out := &VulnerabilityReport{
		GeneratedAt: generated.UTC(), Artifact: a, Scanner: s,
		Severity: SeverityUnknown, Vulnerabilities: []VulnerabilityItem{},
	}
	for _, f := range r.Findings {
		var prefix string
		switch f.Kind {
		case report.KindMalware:
			prefix = MalwarePrefix
		case report.KindSecret:
			prefix = SecretPrefix
		default:
			continue
		}
		attrs := map[string]any{"kind": f.Kind, "rule": f.Rule, "path": f.Path, "customs_severity": f.Severity}
		if f.Engine != "" {
			attrs["engine"] = f.Engine
		}
		if f.SHA256 != "" {
			attrs["sha256"] = f.SHA256
		}
		if f.Line > 0 {
			attrs["line"] = f.Line
		}
		out.Vulnerabilities = append(out.Vulnerabilities, VulnerabilityItem{
			ID: prefix + ruleID(f.Rule), Package: f.Path, Severity: SeverityCritical,
			Description: f.Title, Links: []string{}, Layer: layer(f.Layer), VendorAttributes: attrs,
		})
	}
	for _, v := range r.Vulnerabilities {
		id := harborID(v)
		attrs := map[string]any{}
		if id != v.ID {
			attrs["osv_id"] = v.ID
		}
		if len(v.Aliases) > 0 {
			attrs["aliases"] = v.Aliases
		}
		for k, val := range map[string]string{"ecosystem": v.Ecosystem, "purl": v.PURL, "path": v.Path,
			"source_name": v.SourceName, "source_version": v.SourceVersion} {
			if val != "" {
				attrs[k] = val
			}
		}
		item := VulnerabilityItem{
			ID: id, Package: v.Package, Version: v.Version, FixVersion: v.FixedVersion,
			Severity: Severity(v.Severity), Links: links(v, id), Layer: layer(v.Layer),
			PreferredCVSS: preferredCVSS(v), VendorAttributes: attrs, Description: v.Summary, CWEIDs: v.CWEs,
		}
		if len(attrs) == 0 {
			item.VendorAttributes = nil
		}
		out.Vulnerabilities = append(out.Vulnerabilities, item)
	}
	for _, it := range out.Vulnerabilities {
		if severityRank[it.Severity] > severityRank[out.Severity] {
			out.Severity = it.Severity
		}
	}
	return out
}

// preferredCVSS is where CVSS scores and vectors enter the Harbor report.
// report.Vulnerability carries none yet (pkg/vulndb keeps the OSV
// severity only), so there is nothing to map; once it has scores and
// vectors, this is the one function to fill in.
func preferredCVSS(v report.Vulnerability) *CVSS {
	// Harbor's CVSSDetails knows v2 and v3 only: a v4 vector has no slot.
	if v.CVSS == nil || !strings.HasPrefix(v.CVSS.Version, "3") {
		return nil
	}
	return &CVSS{ScoreV3: v.CVSS.Score, VectorV3: v.CVSS.Vector}
}

// harborID is the id Harbor shows and its CVE allowlist matches: the CVE
// when the advisory has one (Harbor's allowlists are lists of CVEs), else
// the OSV id.
func harborID(v report.Vulnerability) string {
	if strings.HasPrefix(v.ID, "CVE-") {
		return v.ID
	}
	var cves []string
	for _, a := range v.Aliases {
		if strings.HasPrefix(a, "CVE-") {
			cves = append(cves, a)
		}
	}
	if len(cves) == 0 {
		return v.ID
	}
	slices.Sort(cves)
	return cves[0]
}

func links(v report.Vulnerability, id string) []string {
	out := []string{"https://osv.dev/vulnerability/" + v.ID}
	if strings.HasPrefix(id, "CVE-") {
		out = append(out, "https://nvd.nist.gov/vuln/detail/"+id)
	}
	for _, ref := range v.References {
		if len(out) >= 8 {
			break
		}
		if !slices.Contains(out, ref) {
			out = append(out, ref)
		}
	}
	return out
}

// ruleID keeps a rule name usable inside an id: no spaces, nothing that
// would need quoting in an allowlist.
func ruleID(rule string) string {
	if rule == "" {
		return "unknown"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == ':':
			return r
		}
		return '-'
	}, rule)
}

// SBOMReport is the spec's HarborSbomReport: the document (SPDX or
// CycloneDX JSON, as MediaType says) inside Harbor's envelope.
type SBOMReport struct {
	GeneratedAt      time.Time       `json:"generated_at"`
	Artifact         Artifact        `json:"artifact"`
	Scanner          Scanner         `json:"scanner"`
	VendorAttributes map[string]any  `json:"vendor_attributes,omitempty"`
	MediaType        string          `json:"media_type"`
	SBOM             json.RawMessage `json:"sbom"`
}

// NewSBOMReport wraps document, a JSON object of format mediaType.
func NewSBOMReport(a Artifact, s Scanner, mediaType string, document json.RawMessage, generated time.Time) *SBOMReport {
	return &SBOMReport{GeneratedAt: generated.UTC(), Artifact: a, Scanner: s, MediaType: mediaType, SBOM: document}
}
