package ignore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/openvex/go-vex/pkg/vex"
	"github.com/package-url/packageurl-go"

	"github.com/customs-scan/customs/pkg/report"
)

// openVEXContext prefixes the @context of every OpenVEX version.
const openVEXContext = vex.Context

const statusNotAffected = string(vex.StatusNotAffected)

// statement is one OpenVEX statement with what Apply needs around it.
type statement struct {
	*vex.Statement
	at     time.Time // the statement's timestamp, else the document's
	source string
}

func ignoring(s vex.Status) bool {
	return s == vex.StatusNotAffected || s == vex.StatusFixed
}

// parseOpenVEX adds the statements of an OpenVEX document.
func (r *Rules) parseOpenVEX(name string, data []byte) error {
	ctx := jsonContext(data)
	// Only v0.2.x is read: go-vex converts v0.0.1 only when reading from a
	// file path itself, and v0.0.1 has a different statement shape.
	if v := strings.TrimPrefix(ctx, openVEXContext); ctx != "" && !strings.HasPrefix(v, "/v0.2") {
		return fmt.Errorf("OpenVEX %s is not supported (want @context %s)", displayVersion(v), vex.ContextLocator())
	}
	var doc vex.VEX
	// vex.Parse is json.Unmarshal with an "error:" prefix; this gives the
	// same result with a clearer message.
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("invalid OpenVEX JSON: %w", err)
	}
	// ExtractStatements copies each statement with the document's
	// timestamp filled in where the statement has none.
	stmts := doc.ExtractStatements()
	var errs []error
	for i, s := range stmts {
		if err := checkStatement(s); err != nil {
			where := fmt.Sprintf("statements[%d]", i)
			if s.Vulnerability.Name != "" {
				where += fmt.Sprintf(" (%s)", s.Vulnerability.Name)
			}
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, s := range stmts {
		st := &statement{Statement: s, at: *s.Timestamp, source: name}
		n := len(r.statements)
		r.statements = append(r.statements, st)
		keys := []string{string(s.Vulnerability.Name), s.Vulnerability.ID}
		for _, a := range s.Vulnerability.Aliases {
			keys = append(keys, string(a))
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if k = idKey(k); k != "" && !seen[k] {
				seen[k] = true
				r.stmtByID[k] = append(r.stmtByID[k], n)
			}
		}
	}
	return nil
}

func displayVersion(v string) string {
	if v = strings.TrimPrefix(v, "/"); v == "" {
		return "v0.0.1 (unversioned @context)"
	}
	return v
}

// checkStatement rejects what the OpenVEX spec forbids (vex.Statement's own
// Validate) and what would make a statement silently useless here.
func checkStatement(s *vex.Statement) error {
	if s.Vulnerability.Name == "" {
		return errors.New("vulnerability name is required")
	}
	if len(s.Products) == 0 {
		return errors.New("no products: the statement would apply to nothing")
	}
	if s.Timestamp == nil || s.Timestamp.IsZero() {
		return errors.New("no timestamp, and the document has none: the latest statement cannot be told")
	}
	return s.Validate()
}

// effectiveStatement returns the latest statement about v that applies to
// the image, nil when none does.
//
// vex.SortStatements and VEX.EffectiveStatement are not used: they order by
// vulnerability name before time, so a statement naming the CVE and a later
// one naming its GHSA alias would not be compared by time; and they take a
// single product string, while an image is named here by digest, oci purl
// or repository. Ties go to the statement loaded last (later file, or later
// in its document), as a document's statements are read in order.
func (r *Rules) effectiveStatement(art report.Artifact, v report.Vulnerability) *statement {
	var best *statement
	for _, i := range candidates(r.stmtByID, v) {
		s := r.statements[i]
		if !s.appliesTo(art, v) {
			continue
		}
		if best == nil || !s.at.Before(best.at) {
			best = s
		}
	}
	return best
}

// appliesTo reports whether one of the statement's products is the image
// and, when that product lists subcomponents, one of them is v's package.
func (s *statement) appliesTo(art report.Artifact, v report.Vulnerability) bool {
	for i := range s.Products {
		p := &s.Products[i]
		if !productIsImage(&p.Component, art) {
			continue
		}
		if len(p.Subcomponents) == 0 {
			return true
		}
		for j := range p.Subcomponents {
			if subcomponentIsPackage(&p.Subcomponents[j].Component, v) {
				return true
			}
		}
	}
	return false
}

// productIsImage reports whether a VEX product names the scanned image:
//
//   - by digest: @id (or an identifier) equal to art.Digest, or a
//     "sha-256"/"sha-512" hash equal to its hex part;
//   - by an oci purl with a version, pkg:oci/<name>@sha256:…, whose digest
//     is art.Digest (the name is not compared: the digest is the content);
//   - by an image reference <name>@sha256:…, likewise;
//   - for every image of a repository: an oci purl without version whose
//     repository_url qualifier is the repository, or a plain reference with
//     neither tag nor digest, "registry.example.com/team/app" or
//     "team/app". This lets a team state once that a repository is not
//     affected, for its future builds too. Tags are never matched: they
//     move.
func productIsImage(c *vex.Component, art report.Artifact) bool {
	if art.Digest != "" {
		if c.Matches(art.Digest) { // @id or identifier equal to the digest
			return true
		}
		if algo, hex, ok := strings.Cut(art.Digest, ":"); ok {
			switch algo {
			case "sha256":
				if string(c.Hashes[vex.SHA256]) == hex {
					return true
				}
			case "sha512":
				if string(c.Hashes[vex.SHA512]) == hex {
					return true
				}
			}
		}
	}
	if c.ID != "" && idIsImage(c.ID, art) {
		return true
	}
	if id := c.Identifiers[vex.PURL]; id != "" && idIsImage(id, art) {
		return true
	}
	return false
}

func idIsImage(id string, art report.Artifact) bool {
	if strings.HasPrefix(id, "pkg:") {
		p, err := packageurl.FromString(id)
		if err != nil || p.Type != packageurl.TypeOCI {
			return false
		}
		if p.Version != "" {
			return art.Digest != "" && p.Version == art.Digest
		}
		u := p.Qualifiers.Map()["repository_url"]
		u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
		return u != "" && namesRepository(strings.TrimSuffix(u, "/"), art)
	}
	if _, dgst, ok := strings.Cut(id, "@"); ok {
		return art.Digest != "" && dgst == art.Digest
	}
	return namesRepository(id, art)
}

// namesRepository reports whether ref is the repository, with or without
// its registry. A reference with a tag never is.
func namesRepository(ref string, art report.Artifact) bool {
	if art.Repository == "" {
		return false
	}
	return ref == art.Repository || (art.Registry != "" && ref == art.Registry+"/"+art.Repository)
}

// subcomponentIsPackage reports whether a subcomponent's purl (@id or purl
// identifier) is v's package: type, namespace and name equal, and version
// too when the subcomponent's purl has one. Qualifiers are ignored on both
// sides (arch and distro are spelled differently by different tools).
// Without a purl on either side nothing matches, so the vulnerability is
// kept.
func subcomponentIsPackage(c *vex.Component, v report.Vulnerability) bool {
	pkgs := packagePURLs(v)
	for _, id := range []string{c.ID, c.Identifiers[vex.PURL]} {
		sub, ok := barePURL(id)
		if !ok {
			continue
		}
		for _, pkg := range pkgs {
			if vex.PurlMatches(sub, pkg) {
				return true
			}
		}
	}
	return false
}

// packagePURLs are the bare purls v's package answers to: its own and,
// for a distribution binary package built from another source package,
// the source's (pkg:deb/debian/openssl@3.0.11-1 for libssl3), which is
// what distributions' VEX documents name.
func packagePURLs(v report.Vulnerability) []string {
	own, ok := barePURL(v.PURL)
	if !ok {
		return nil
	}
	out := []string{own}
	if v.SourceName == "" {
		return out
	}
	p, err := packageurl.FromString(own)
	if err != nil {
		return out
	}
	p.Name = v.SourceName
	p.Version = v.SourceVersion
	if src := p.ToString(); src != own {
		out = append(out, src)
	}
	return out
}

// barePURL returns s without qualifiers and subpath.
func barePURL(s string) (string, bool) {
	if !strings.HasPrefix(s, "pkg:") {
		return "", false
	}
	p, err := packageurl.FromString(s)
	if err != nil {
		return "", false
	}
	p.Qualifiers, p.Subpath = nil, ""
	return p.ToString(), true
}
