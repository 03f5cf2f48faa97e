// Package cyclonedx writes a Customs report as a CycloneDX 1.6 JSON BOM
// with vulnerabilities (VEX): the image as metadata component, one
// component per installed package, every matched vulnerability with its
// ratings, affected components and fix, and the ignored ones with their
// analysis.
//
// 1.6, not the library's default 1.7: Dependency-Track and other
// consumers still refuse 1.7 documents.
package cyclonedx

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/customs-scan/customs/pkg/formats/internal/refs"
	"github.com/customs-scan/customs/pkg/report"
)

// ContentType is the IANA media type of CycloneDX JSON.
const ContentType = "application/vnd.cyclonedx+json"

// SpecVersion is the CycloneDX version Encode writes.
const SpecVersion = cdx.SpecVersion1_6

// Property names Customs adds to components and vulnerabilities.
const (
	PropLayer         = "customs:layer"
	PropPath          = "customs:path"
	PropEcosystem     = "customs:ecosystem"
	PropAnalyzer      = "customs:analyzer"
	PropSourceName    = "customs:source_name"
	PropSourceVersion = "customs:source_version"
	PropFixedVersion  = "customs:fixed_version"
)

// Encode writes r as CycloneDX 1.6 JSON.
func Encode(w io.Writer, r *report.Report) error {
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON).SetPretty(true).SetEscapeHTML(false)
	if err := enc.EncodeVersion(BOM(r), SpecVersion); err != nil {
		return fmt.Errorf("cyclonedx: %w", err)
	}
	return nil
}

// BOM converts r into a CycloneDX BOM (of the library's default version;
// Encode writes it as SpecVersion).
func BOM(r *report.Report) *cdx.BOM {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + refs.DocumentUUID("cyclonedx", r).String()
	image := imageComponent(r)
	tool := cdx.Component{Type: cdx.ComponentTypeApplication, Name: r.Scanner.Name, Version: r.Scanner.Version}
	if tool.Name == "" {
		tool.Name = "customs"
	}
	bom.Metadata = &cdx.Metadata{
		Tools:      &cdx.ToolsChoice{Components: &[]cdx.Component{tool}},
		Component:  &image,
		Properties: props(metadataProperties(r)...),
	}
	if !r.FinishedAt.IsZero() {
		bom.Metadata.Timestamp = r.FinishedAt.UTC().Format(time.RFC3339)
	}

	b := newBuilder(r, image.BOMRef)
	if len(b.components) > 0 {
		bom.Components = &b.components
	}
	if deps := b.dependencies(); len(deps) > 0 {
		bom.Dependencies = &deps
	}
	var vulns []cdx.Vulnerability
	for _, v := range r.Vulnerabilities {
		vulns = append(vulns, b.vulnerability(v))
	}
	for _, iv := range r.IgnoredVulnerabilities {
		cv := b.vulnerability(iv.Vulnerability)
		cv.Analysis = analysis(iv)
		vulns = append(vulns, cv)
	}
	if len(vulns) > 0 {
		bom.Vulnerabilities = &vulns
	}
	return bom
}

func imageComponent(r *report.Report) cdx.Component {
	a := r.Artifact
	c := cdx.Component{
		BOMRef:     refs.ImagePURL(a),
		Type:       cdx.ComponentTypeContainer,
		Name:       refs.ImageName(a),
		PackageURL: refs.ImagePURL(a),
	}
	if h := refs.DigestHex(a.Digest); h != "" {
		c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: h}}
	}
	return c
}

func metadataProperties(r *report.Report) []cdx.Property {
	a := r.Artifact
	ps := []cdx.Property{
		{Name: "customs:status", Value: r.Status},
		{Name: "customs:verdict", Value: r.Verdict},
		{Name: "customs:verdict_rule", Value: r.VerdictRule},
		{Name: "customs:verdict_reason", Value: r.VerdictReason},
		{Name: "customs:platform", Value: a.Platform},
		{Name: "customs:media_type", Value: a.MediaType},
		{Name: "customs:tags", Value: strings.Join(a.Tags, ",")},
		{Name: "customs:vulnerability_db", Value: r.VulnerabilityDB.Status},
		{Name: "customs:vulnerability_db_version", Value: r.VulnerabilityDB.Version},
		{Name: "customs:vulnerability_db_note", Value: r.VulnerabilityDB.Note},
		{Name: "customs:error", Value: r.Error},
	}
	// Findings are not vulnerabilities: counted here, listed by SARIF.
	counts := map[string]int{}
	for _, f := range r.Findings {
		counts[f.Kind]++
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		ps = append(ps, cdx.Property{Name: "customs:findings:" + k, Value: strconv.Itoa(counts[k])})
	}
	return ps
}

// props drops empty values; nil when none is left.
func props(ps ...cdx.Property) *[]cdx.Property {
	var out []cdx.Property
	for _, p := range ps {
		if p.Value != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &out
}

type nameVersion struct{ ecosystem, name, version string }

// builder holds the components and what vulnerabilities refer to.
type builder struct {
	imageRef   string
	osRef      string
	components []cdx.Component
	osPkgs     []string // refs of distribution packages: the OS component depends on them
	others     []string // refs the image depends on directly
	byPackage  map[nameVersion][]string
}

func newBuilder(r *report.Report, imageRef string) *builder {
	b := &builder{imageRef: imageRef, byPackage: map[nameVersion][]string{}}
	if r.OS.ID != "" {
		b.osRef = "os:" + r.OS.ID + "@" + r.OS.Version
		b.components = append(b.components, cdx.Component{
			BOMRef:      b.osRef,
			Type:        cdx.ComponentTypeOS,
			Name:        r.OS.ID,
			Version:     r.OS.Version,
			Description: r.OS.Name,
		})
		b.others = append(b.others, b.osRef)
	}
	// A bom-ref must be unique; the same purl installed at two paths
	// (two node_modules copies) gets the path as purl subpath.
	seen := map[string]int{}
	for _, p := range r.Packages {
		seen[packageRef(p)]++
	}
	used := map[string]bool{}
	for _, p := range r.Packages {
		ref := packageRef(p)
		// The source package only when it says something.
		srcName, srcVersion := p.SourceName, p.SourceVersion
		if srcName == p.Name && srcVersion == p.Version {
			srcName, srcVersion = "", ""
		}
		if seen[ref] > 1 || used[ref] {
			ref += "#" + p.Path
			for n := 2; used[ref]; n++ {
				ref = fmt.Sprintf("%s#%s~%d", packageRef(p), p.Path, n)
			}
		}
		used[ref] = true
		// A development dependency is for building and testing, not
		// reachable at runtime: CycloneDX's "excluded" ("component usage
		// for test and other non-runtime purposes"). Others are left
		// without a scope (CycloneDX's default, required).
		var scope cdx.Scope
		if p.Scope == report.ScopeDev {
			scope = cdx.ScopeExcluded
		}
		b.components = append(b.components, cdx.Component{
			BOMRef:     ref,
			Type:       cdx.ComponentTypeLibrary,
			Scope:      scope,
			Name:       p.Name,
			Version:    p.Version,
			PackageURL: p.PURL,
			Properties: props(
				cdx.Property{Name: PropEcosystem, Value: p.Ecosystem},
				cdx.Property{Name: PropPath, Value: p.Path},
				cdx.Property{Name: PropLayer, Value: p.Layer},
				cdx.Property{Name: PropAnalyzer, Value: p.Analyzer},
				cdx.Property{Name: PropSourceName, Value: srcName},
				cdx.Property{Name: PropSourceVersion, Value: srcVersion},
			),
		})
		k := nameVersion{p.Ecosystem, p.Name, p.Version}
		b.byPackage[k] = append(b.byPackage[k], ref)
		if b.osRef != "" && isDistroPURL(p.PURL) {
			b.osPkgs = append(b.osPkgs, ref)
		} else {
			b.others = append(b.others, ref)
		}
	}
	// An index: its platform images.
	for _, m := range r.Manifests {
		a := r.Artifact
		a.Digest, a.Platform = m.Digest, m.Platform
		ref := refs.ImagePURL(a)
		b.components = append(b.components, cdx.Component{
			BOMRef:     ref,
			Type:       cdx.ComponentTypeContainer,
			Name:       refs.ImageName(a),
			PackageURL: ref,
			Properties: props(
				cdx.Property{Name: "customs:platform", Value: m.Platform},
				cdx.Property{Name: "customs:verdict", Value: m.Verdict},
				cdx.Property{Name: "customs:status", Value: m.Status},
				cdx.Property{Name: "customs:error", Value: m.Error},
			),
		})
		b.others = append(b.others, ref)
	}
	return b
}

// packageRef is a package's purl, else a name for it.
func packageRef(p report.Package) string {
	if p.PURL != "" {
		return p.PURL
	}
	return "customs:package:" + p.Ecosystem + "/" + p.Name + "@" + p.Version
}

func isDistroPURL(purl string) bool {
	for _, t := range []string{"pkg:deb/", "pkg:apk/", "pkg:rpm/"} {
		if strings.HasPrefix(purl, t) {
			return true
		}
	}
	return false
}

// dependencies records what is known: the image contains its OS and its
// other packages, the OS its distribution packages. Nothing is claimed
// about dependencies between packages.
func (b *builder) dependencies() []cdx.Dependency {
	var deps []cdx.Dependency
	if len(b.others) > 0 {
		deps = append(deps, cdx.Dependency{Ref: b.imageRef, Dependencies: &b.others})
	}
	if b.osRef != "" && len(b.osPkgs) > 0 {
		deps = append(deps, cdx.Dependency{Ref: b.osRef, Dependencies: &b.osPkgs})
	}
	return deps
}

func (b *builder) vulnerability(v report.Vulnerability) cdx.Vulnerability {
	cv := cdx.Vulnerability{
		ID:          v.ID,
		Source:      source(v.ID),
		Description: v.Summary,
		Ratings:     ratings(v),
		Properties: props(
			cdx.Property{Name: PropFixedVersion, Value: v.FixedVersion},
			cdx.Property{Name: PropSourceName, Value: v.SourceName},
			cdx.Property{Name: PropSourceVersion, Value: v.SourceVersion},
		),
	}
	if len(v.Aliases) > 0 {
		rs := make([]cdx.VulnerabilityReference, 0, len(v.Aliases))
		for _, a := range v.Aliases {
			rs = append(rs, cdx.VulnerabilityReference{ID: a, Source: source(a)})
		}
		cv.References = &rs
	}
	if cwes := cweNumbers(v.CWEs); len(cwes) > 0 {
		cv.CWEs = &cwes
	}
	if v.FixedVersion != "" {
		cv.Recommendation = fmt.Sprintf("Upgrade %s to %s or later.", v.Package, v.FixedVersion)
	}
	if len(v.References) > 0 {
		adv := make([]cdx.Advisory, 0, len(v.References))
		for _, u := range v.References {
			adv = append(adv, cdx.Advisory{URL: u})
		}
		cv.Advisories = &adv
	}
	if v.Published != nil {
		cv.Published = v.Published.UTC().Format(time.RFC3339)
	}
	if v.Modified != nil {
		cv.Updated = v.Modified.UTC().Format(time.RFC3339)
	}
	// Every install of the affected name and version is affected.
	targets := b.byPackage[nameVersion{v.Ecosystem, v.Package, v.Version}]
	if len(targets) == 0 && v.PURL != "" {
		targets = []string{v.PURL}
	}
	if len(targets) > 0 {
		affects := make([]cdx.Affects, 0, len(targets))
		for _, ref := range targets {
			versions := []cdx.AffectedVersions{{Version: v.Version, Status: cdx.VulnerabilityStatusAffected}}
			if v.FixedVersion != "" {
				versions = append(versions, cdx.AffectedVersions{Version: v.FixedVersion, Status: cdx.VulnerabilityStatusNotAffected})
			}
			affects = append(affects, cdx.Affects{Ref: ref, Range: &versions})
		}
		cv.Affects = &affects
	}
	return cv
}

// source names the database an id belongs to, as Dependency-Track and
// other consumers expect it.
func source(id string) *cdx.Source {
	switch {
	case strings.HasPrefix(id, "CVE-"):
		return &cdx.Source{Name: "NVD", URL: "https://nvd.nist.gov/vuln/detail/" + id}
	case strings.HasPrefix(id, "GHSA-"):
		return &cdx.Source{Name: "GitHub", URL: "https://github.com/advisories/" + id}
	}
	return &cdx.Source{Name: "OSV", URL: "https://osv.dev/vulnerability/" + id}
}

// ratings gives the CVSS rating when there is a vector, and Customs'
// severity (from the advisory's ecosystem data when it has no CVSS, or
// when the two disagree) as a rating of method "other".
func ratings(v report.Vulnerability) *[]cdx.VulnerabilityRating {
	var rs []cdx.VulnerabilityRating
	own := severity(v.Severity)
	if c := v.CVSS; c != nil {
		r := cdx.VulnerabilityRating{Vector: c.Vector, Method: method(c.Version)}
		if c.Score != nil {
			score := *c.Score
			r.Score = &score
			r.Severity = band(score)
		}
		rs = append(rs, r)
		if r.Severity == own {
			return &rs
		}
	}
	rs = append(rs, cdx.VulnerabilityRating{Severity: own, Method: cdx.ScoringMethodOther})
	return &rs
}

func method(version string) cdx.ScoringMethod {
	switch version {
	case "3.1":
		return cdx.ScoringMethodCVSSv31
	case "3.0":
		return cdx.ScoringMethodCVSSv3
	case "4.0":
		return cdx.ScoringMethodCVSSv4
	}
	return cdx.ScoringMethodOther
}

func severity(s string) cdx.Severity {
	switch s {
	case report.SeverityCritical:
		return cdx.SeverityCritical
	case report.SeverityHigh:
		return cdx.SeverityHigh
	case report.SeverityMedium:
		return cdx.SeverityMedium
	case report.SeverityLow:
		return cdx.SeverityLow
	case "NONE":
		return cdx.SeverityNone
	}
	return cdx.SeverityUnknown
}

// band is the CVSS qualitative rating of a base score (v3 and v4 agree).
func band(score float64) cdx.Severity {
	switch {
	case score >= 9:
		return cdx.SeverityCritical
	case score >= 7:
		return cdx.SeverityHigh
	case score >= 4:
		return cdx.SeverityMedium
	case score > 0:
		return cdx.SeverityLow
	}
	return cdx.SeverityNone
}

func cweNumbers(cwes []string) []int {
	var out []int
	for _, c := range cwes {
		if n, err := strconv.Atoi(strings.TrimPrefix(c, "CWE-")); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// analysis is the VEX analysis of an ignored vulnerability: the OpenVEX
// status and justification that ignored it, in CycloneDX's words.
func analysis(iv report.IgnoredVulnerability) *cdx.VulnerabilityAnalysis {
	a := &cdx.VulnerabilityAnalysis{State: cdx.IASNotAffected, Justification: justification(iv.Justification)}
	switch iv.Status {
	case "fixed":
		a.State, a.Justification = cdx.IASResolved, ""
	case "under_investigation":
		a.State, a.Justification = cdx.IASInTriage, ""
	}
	detail := iv.Reason
	if iv.Source != "" {
		if detail != "" {
			detail += " "
		}
		detail += "(ignored by " + iv.Source + ")"
	}
	a.Detail = detail
	return a
}

// justification maps an OpenVEX justification to CycloneDX's (the CISA
// mapping); "" when there is none or it has no counterpart.
func justification(j string) cdx.ImpactAnalysisJustification {
	switch j {
	case "component_not_present", "vulnerable_code_not_present":
		return cdx.IAJCodeNotPresent
	case "vulnerable_code_not_in_execute_path":
		return cdx.IAJCodeNotReachable
	case "vulnerable_code_cannot_be_controlled_by_adversary":
		return cdx.IAJRequiresEnvironment
	case "inline_mitigations_already_exist":
		return cdx.IAJProtectedByMitigatingControl
	}
	return ""
}
