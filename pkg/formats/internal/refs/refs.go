// Package refs holds what the export formats share: how an image is named
// and identified, severity order, deterministic document ids.
package refs

import (
	"strings"

	"github.com/google/uuid"
	"github.com/package-url/packageurl-go"

	"github.com/customs-scan/customs/pkg/report"
)

// ImageName is registry/repository@digest, as much of it as is known.
func ImageName(a report.Artifact) string {
	repo := Repository(a)
	switch {
	case repo == "":
		return a.Digest
	case a.Digest == "":
		return repo
	}
	return repo + "@" + a.Digest
}

// Repository is registry/repository ("" when neither is known).
func Repository(a report.Artifact) string {
	switch {
	case a.Repository == "":
		return ""
	case a.Registry == "":
		return a.Repository
	}
	return a.Registry + "/" + a.Repository
}

// ImagePURL is the image's OCI purl, pkg:oci/<name>@<digest>?arch=…&repository_url=…:
// the form OpenVEX products and Customs' ignore rules match images by.
// Tags are left out: they move, the digest does not.
func ImagePURL(a report.Artifact) string {
	name := "image"
	if a.Repository != "" {
		name = strings.ToLower(a.Repository[strings.LastIndexByte(a.Repository, '/')+1:])
	}
	q := map[string]string{}
	if repo := Repository(a); repo != "" {
		q["repository_url"] = repo
	}
	if parts := strings.Split(a.Platform, "/"); len(parts) >= 2 && parts[1] != "" {
		q["arch"] = parts[1]
	}
	return packageurl.NewPackageURL("oci", "", name, a.Digest, packageurl.QualifiersFromMap(q), "").ToString()
}

// DigestHex is the hex part of a sha256:… digest ("" for anything else).
func DigestHex(digest string) string {
	if h, ok := strings.CutPrefix(digest, "sha256:"); ok {
		return h
	}
	return ""
}

// SeverityRank orders report severities: UNKNOWN (and anything else) 0,
// LOW 1, MEDIUM 2, HIGH 3, CRITICAL 4.
func SeverityRank(s string) int {
	switch s {
	case report.SeverityLow:
		return 1
	case report.SeverityMedium:
		return 2
	case report.SeverityHigh:
		return 3
	case report.SeverityCritical:
		return 4
	}
	return 0
}

// DocumentUUID derives a stable UUID (v5) for a document about r in a
// given format: the same report always gives the same document, a new
// scan or re-match (another finished or matched time) a new one.
func DocumentUUID(format string, r *report.Report) uuid.UUID {
	key := format + "\x00" + ImageName(r.Artifact) + "\x00" + r.FinishedAt.UTC().Format("2006-01-02T15:04:05.999999999Z")
	if m := r.VulnerabilityDB.MatchedAt; m != nil {
		key += "\x00" + m.UTC().Format("2006-01-02T15:04:05.999999999Z")
	}
	ns := uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/customs-scan/customs"))
	return uuid.NewSHA1(ns, []byte(key))
}
