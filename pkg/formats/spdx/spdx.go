// Package spdx writes a Customs report as an SPDX 2.3 JSON document: the
// image as the described package, which CONTAINS its OS and every
// installed package (each with its purl as a PACKAGE-MANAGER external
// reference). It is also what Harbor's SBOM endpoint serves (Harbor asks
// for application/spdx+json only): call Document or Encode.
package spdx

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/customs-scan/customs/pkg/formats/internal/refs"
	"github.com/customs-scan/customs/pkg/report"
)

// ContentType is the IANA media type of SPDX JSON.
const ContentType = "application/spdx+json"

// NamespacePrefix starts every document namespace Customs writes; the rest
// is unique per report (SPDX asks for a unique URI, not a resolvable one).
const NamespacePrefix = "https://github.com/customs-scan/customs/spdx/"

const noAssertion = "NOASSERTION"

// Encode writes r as SPDX 2.3 JSON.
func Encode(w io.Writer, r *report.Report) error {
	if err := spdxjson.Write(Document(r), w, spdxjson.Indent("  ")); err != nil {
		return fmt.Errorf("spdx: %w", err)
	}
	return nil
}

// Document converts r into an SPDX 2.3 document.
func Document(r *report.Report) *v2_3.Document {
	a := r.Artifact
	created := r.FinishedAt
	if created.IsZero() {
		created = r.StartedAt
	}
	tool := r.Scanner.Name
	if tool == "" {
		tool = "customs"
	}
	if r.Scanner.Version != "" {
		tool += "-" + r.Scanner.Version
	}
	doc := &v2_3.Document{
		SPDXVersion:       v2_3.Version,
		DataLicense:       v2_3.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      refs.ImageName(a),
		DocumentNamespace: NamespacePrefix + refs.DocumentUUID("spdx", r).String(),
		CreationInfo: &v2_3.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: tool}},
			// SPDX wants seconds and Z, nothing finer.
			Created: created.UTC().Format(time.RFC3339),
		},
	}
	if doc.DocumentName == "" {
		doc.DocumentName = "image"
	}
	ids := idSet{}
	image := &v2_3.Package{
		PackageName:               doc.DocumentName,
		PackageSPDXIdentifier:     ids.make("Image", a.Digest),
		PackageVersion:            a.Digest,
		PackageDownloadLocation:   noAssertion,
		FilesAnalyzed:             false,
		IsFilesAnalyzedTagPresent: true,
		PrimaryPackagePurpose:     "CONTAINER",
		PackageExternalReferences: purlRef(refs.ImagePURL(a)),
		PackageComment:            imageComment(r),
	}
	if h := refs.DigestHex(a.Digest); h != "" {
		image.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: h}}
	}
	doc.Packages = append(doc.Packages, image)
	doc.Relationships = append(doc.Relationships, &v2_3.Relationship{
		RefA:         common.MakeDocElementID("", "DOCUMENT"),
		RefB:         common.MakeDocElementID("", string(image.PackageSPDXIdentifier)),
		Relationship: common.TypeRelationshipDescribe,
	})
	contains := func(p *v2_3.Package) {
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, &v2_3.Relationship{
			RefA:         common.MakeDocElementID("", string(image.PackageSPDXIdentifier)),
			RefB:         common.MakeDocElementID("", string(p.PackageSPDXIdentifier)),
			Relationship: common.TypeRelationshipContains,
		})
	}
	if r.OS.ID != "" {
		contains(&v2_3.Package{
			PackageName:               r.OS.ID,
			PackageSPDXIdentifier:     ids.make("OperatingSystem", r.OS.ID+"@"+r.OS.Version),
			PackageVersion:            r.OS.Version,
			PackageDownloadLocation:   noAssertion,
			FilesAnalyzed:             false,
			IsFilesAnalyzedTagPresent: true,
			PrimaryPackagePurpose:     "OPERATING_SYSTEM",
			PackageDescription:        r.OS.Name,
		})
	}
	for _, p := range r.Packages {
		pkg := &v2_3.Package{
			PackageName:               p.Name,
			PackageSPDXIdentifier:     ids.make("Package-"+p.Name, p.PURL+"\x00"+p.Path+"\x00"+p.Layer),
			PackageVersion:            p.Version,
			PackageDownloadLocation:   noAssertion,
			FilesAnalyzed:             false,
			IsFilesAnalyzedTagPresent: true,
			PrimaryPackagePurpose:     "LIBRARY",
			PackageExternalReferences: purlRef(p.PURL),
			PackageSourceInfo:         sourceInfo(p),
		}
		contains(pkg)
	}
	for _, m := range r.Manifests {
		ma := a
		ma.Digest, ma.Platform = m.Digest, m.Platform
		pkg := &v2_3.Package{
			PackageName:               refs.ImageName(ma),
			PackageSPDXIdentifier:     ids.make("Image-"+m.Platform, m.Digest),
			PackageVersion:            m.Digest,
			PackageDownloadLocation:   noAssertion,
			FilesAnalyzed:             false,
			IsFilesAnalyzedTagPresent: true,
			PrimaryPackagePurpose:     "CONTAINER",
			PackageExternalReferences: purlRef(refs.ImagePURL(ma)),
			PackageComment:            strings.TrimSpace("platform " + m.Platform + " verdict " + m.Verdict),
		}
		if h := refs.DigestHex(m.Digest); h != "" {
			pkg.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: h}}
		}
		contains(pkg)
	}
	return doc
}

func purlRef(purl string) []*v2_3.PackageExternalReference {
	if purl == "" {
		return nil
	}
	return []*v2_3.PackageExternalReference{{Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: purl}}
}

// sourceInfo says where in the image the package was found.
func sourceInfo(p report.Package) string {
	var b strings.Builder
	b.WriteString("found")
	if p.Analyzer != "" {
		b.WriteString(" by " + p.Analyzer)
	}
	if p.Path != "" {
		b.WriteString(" in " + p.Path)
	}
	if p.Layer != "" {
		b.WriteString(" (layer " + p.Layer + ")")
	}
	if p.SourceName != "" {
		b.WriteString("; source package " + p.SourceName)
		if p.SourceVersion != "" {
			b.WriteString(" " + p.SourceVersion)
		}
	}
	return b.String()
}

func imageComment(r *report.Report) string {
	parts := []string{}
	if r.Artifact.Platform != "" {
		parts = append(parts, "platform "+r.Artifact.Platform)
	}
	if r.Verdict != "" {
		parts = append(parts, "Customs verdict "+r.Verdict)
	}
	if r.Status == report.StatusFailed {
		parts = append(parts, "scan failed: "+r.Error)
	}
	return strings.Join(parts, "; ")
}

// idSet makes SPDX ids: letters, digits, '.' and '-' only, unique in the
// document, stable for the same input (a short hash of what identifies
// the element).
type idSet map[string]bool

var idUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func (s idSet) make(label, key string) common.ElementID {
	sum := sha256.Sum256([]byte(key))
	label = strings.Trim(idUnsafe.ReplaceAllString(label, "-"), "-")
	if len(label) > 64 {
		label = label[:64]
	}
	id := label + "-" + hex.EncodeToString(sum[:8])
	for n := 2; s[id]; n++ {
		id = fmt.Sprintf("%s-%s-%d", label, hex.EncodeToString(sum[:8]), n)
	}
	s[id] = true
	return common.ElementID(id)
}
