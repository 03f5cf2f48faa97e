// Package openvex writes what a report ignored, and why, as an OpenVEX
// v0.2.0 document (github.com/openvex/go-vex): one statement per ignored
// vulnerability, about the image (its OCI purl and digest) with the
// package as subcomponent. Customs reads such documents back as ignore
// rules (pkg/ignore), so an export can be reviewed and fed to another
// Customs.
package openvex

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/openvex/go-vex/pkg/vex"

	"github.com/customs-scan/customs/pkg/formats/internal/refs"
	"github.com/customs-scan/customs/pkg/report"
)

// ContentType is the media type OpenVEX tooling uses for OpenVEX JSON
// (not IANA-registered).
const ContentType = "application/vnd.openvex+json"

// Encode writes r's ignored vulnerabilities as OpenVEX JSON.
func Encode(w io.Writer, r *report.Report) error {
	doc, err := Document(r)
	if err != nil {
		return err
	}
	if err := doc.ToJSON(w); err != nil {
		return fmt.Errorf("openvex: %w", err)
	}
	return nil
}

// Document converts r's ignored vulnerabilities into an OpenVEX document.
// Its @id is the canonical hash of its statements (go-vex), so the same
// decisions give the same id.
func Document(r *report.Report) (*vex.VEX, error) {
	// The decisions date from the match that applied them.
	ts := r.FinishedAt.UTC()
	if m := r.VulnerabilityDB.MatchedAt; m != nil {
		ts = m.UTC()
	}
	tool := r.Scanner.Name
	if tool == "" {
		tool = "customs"
	}
	if r.Scanner.Version != "" {
		tool += " " + r.Scanner.Version
	}
	doc := &vex.VEX{
		Metadata: vex.Metadata{
			Context:   vex.ContextLocator(),
			Author:    "Customs",
			Timestamp: &ts,
			Version:   1,
			Tooling:   tool,
		},
		Statements: []vex.Statement{},
	}
	image := vex.Component{
		ID:          refs.ImagePURL(r.Artifact),
		Identifiers: map[vex.IdentifierType]string{vex.PURL: refs.ImagePURL(r.Artifact)},
	}
	if h := refs.DigestHex(r.Artifact.Digest); h != "" {
		image.Hashes = map[vex.Algorithm]vex.Hash{vex.SHA256: vex.Hash(h)}
	}
	for _, iv := range r.IgnoredVulnerabilities {
		product := vex.Product{Component: image}
		if iv.PURL != "" {
			product.Subcomponents = []vex.Subcomponent{{Component: vex.Component{
				ID:          iv.PURL,
				Identifiers: map[vex.IdentifierType]string{vex.PURL: iv.PURL},
			}}}
		}
		s := vex.Statement{
			Vulnerability: vex.Vulnerability{Name: vex.VulnerabilityID(iv.ID)},
			Products:      []vex.Product{product},
			Status:        status(iv.Status),
		}
		for _, a := range iv.Aliases {
			s.Vulnerability.Aliases = append(s.Vulnerability.Aliases, vex.VulnerabilityID(a))
		}
		if iv.Source != "" {
			s.StatusNotes = "ignored by " + iv.Source
		}
		if s.Status == vex.StatusNotAffected {
			if j := vex.Justification(iv.Justification); j.Valid() {
				s.Justification = j
			}
			s.ImpactStatement = iv.Reason
			// not_affected needs a justification or an impact statement.
			if s.Justification == "" && s.ImpactStatement == "" {
				s.ImpactStatement = "Ignored without a stated reason"
				if iv.Source != "" {
					s.ImpactStatement += " by " + iv.Source
				}
			}
		} else if iv.Reason != "" {
			s.StatusNotes = joinNotes(iv.Reason, s.StatusNotes)
		}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("openvex: statement for %s: %w", iv.ID, err)
		}
		doc.Statements = append(doc.Statements, s)
	}
	// Stable order: the same decisions, the same document.
	slices.SortStableFunc(doc.Statements, func(a, b vex.Statement) int {
		if c := strings.Compare(string(a.Vulnerability.Name), string(b.Vulnerability.Name)); c != 0 {
			return c
		}
		return strings.Compare(subcomponent(a), subcomponent(b))
	})
	if _, err := doc.GenerateCanonicalID(); err != nil {
		return nil, fmt.Errorf("openvex: %w", err)
	}
	return doc, nil
}

func subcomponent(s vex.Statement) string {
	if len(s.Products) > 0 && len(s.Products[0].Subcomponents) > 0 {
		return s.Products[0].Subcomponents[0].ID
	}
	return ""
}

func joinNotes(a, b string) string {
	if b == "" {
		return a
	}
	return a + " (" + b + ")"
}

// status maps the report's ignore status to OpenVEX's.
func status(s string) vex.Status {
	switch vex.Status(s) {
	case vex.StatusNotAffected, vex.StatusFixed, vex.StatusUnderInvestigation:
		return vex.Status(s)
	}
	// Ignored for a reason OpenVEX has no word for: not_affected with the
	// reason as impact statement is what was decided.
	return vex.StatusNotAffected
}
