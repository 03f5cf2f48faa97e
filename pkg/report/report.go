// Package report defines the scan report, Customs' v1 JSON contract.
//
// Field names are fixed by the v1 contract; fields may be added but never
// renamed or removed. Empty lists must encode as [], never null: call
// Normalize before encoding.
package report

import (
	"fmt"
	"time"
)

// SchemaVersion is written into every report.
const SchemaVersion = "v1"

// Verdicts.
const (
	VerdictPass       = "pass"
	VerdictWarn       = "warn"
	VerdictQuarantine = "quarantine"
)

// Scan statuses.
const (
	StatusComplete = "complete"
	StatusFailed   = "failed"
)

// Report is what one scan of one manifest (or index) produced.
type Report struct {
	SchemaVersion   string          `json:"schema_version"`
	Artifact        Artifact        `json:"artifact"`
	Scanner         Scanner         `json:"scanner"`
	StartedAt       time.Time       `json:"started_at"`
	FinishedAt      time.Time       `json:"finished_at"`
	Status          string          `json:"status"`
	Error           string          `json:"error,omitempty"`
	OS              OS              `json:"os"`
	Layers          []Layer         `json:"layers"`
	Packages        []Package       `json:"packages"`
	Vulnerabilities []Vulnerability `json:"vulnerabilities"`
	// IgnoredVulnerabilities matched but were marked as not affecting this
	// image by a VEX document or ignore file: listed, never dropped.
	IgnoredVulnerabilities []IgnoredVulnerability `json:"ignored_vulnerabilities"`
	// VulnerabilityDB says whether and against which database the packages
	// were matched.
	VulnerabilityDB VulnerabilityDB `json:"vulnerability_db"`
	Findings        []Finding       `json:"findings"`
	Verdict         string          `json:"verdict"`
	// VerdictRule names the rule that decided the verdict (a built-in rule
	// such as "default:malware" or a policy file rule), VerdictReason says
	// why in words.
	VerdictRule   string        `json:"verdict_rule,omitempty"`
	VerdictReason string        `json:"verdict_reason,omitempty"`
	Manifests     []ManifestRef `json:"manifests"`
	// RequestedAt is when the push that caused this scan was received:
	// listings order by it (a slow scan of an older push must not list as
	// newest).
	RequestedAt *time.Time `json:"requested_at,omitempty"`
	// FindingsOmitted counts findings left out of Findings by the per-rule
	// cap (each capped rule ends with an entry saying how many more). The
	// verdict was decided on all of them.
	FindingsOmitted int `json:"findings_omitted,omitempty"`
	// LatestAttempt is set on a complete report when a later scan of the
	// same digest failed: the failure is shown next to the verdict, never
	// instead of it.
	LatestAttempt *Attempt `json:"latest_attempt,omitempty"`
}

// Attempt records a failed scan of a digest that already has a complete
// report.
type Attempt struct {
	Status     string    `json:"status"`
	Error      string    `json:"error"`
	Registry   string    `json:"registry"`
	Repository string    `json:"repository"`
	FinishedAt time.Time `json:"finished_at"`
}

// CapFindings keeps at most perRule findings of each (kind, rule) and
// replaces the rest by one entry per rule saying how many were left out: a
// hostile image with 150,000 planted tokens gets a report of bounded size
// that still shows every rule it tripped. Call it after the verdict.
func (r *Report) CapFindings(perRule int) {
	if perRule <= 0 || len(r.Findings) <= perRule {
		return
	}
	type key struct{ kind, rule string }
	seen := map[key]int{}
	kept := r.Findings[:0:0]
	var order []key
	for _, f := range r.Findings {
		k := key{f.Kind, f.Rule}
		n := seen[k]
		if n == 0 {
			order = append(order, k)
		}
		seen[k] = n + 1
		if n < perRule {
			kept = append(kept, f)
		}
	}
	omitted := 0
	for _, k := range order {
		if extra := seen[k] - perRule; extra > 0 {
			omitted += extra
			var sev string
			for _, f := range kept {
				if f.Kind == k.kind && f.Rule == k.rule {
					sev = f.Severity
					break
				}
			}
			kept = append(kept, Finding{
				Kind: k.kind, Rule: k.rule, Severity: sev,
				Title: fmt.Sprintf("… and %d more %s findings of rule %s (not listed)", extra, k.kind, k.rule),
				Path:  "(omitted)",
			})
		}
	}
	r.Findings = kept
	r.FindingsOmitted += omitted
}

// Artifact identifies what was scanned. Digest is always the manifest (or
// index) digest: Customs scans by digest, never by tag.
type Artifact struct {
	Registry   string   `json:"registry"`
	Repository string   `json:"repository"`
	Digest     string   `json:"digest"`
	Tags       []string `json:"tags"`
	MediaType  string   `json:"media_type"`
	// Platform is os/arch[/variant] from the image config; empty for an index.
	Platform string `json:"platform"`
}

// Scanner names the software that produced the report.
type Scanner struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// OS is the distribution found in /etc/os-release (empty when none).
type OS struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	Name    string `json:"name,omitempty"`
}

// Layer is one layer of the image, bottom first.
type Layer struct {
	Digest string `json:"digest"`
	DiffID string `json:"diff_id"`
	Size   int64  `json:"size"`
	// CreatedBy is the build step that made the layer (the config history's
	// created_by), with build-argument values and secrets redacted and cut
	// to MaxCreatedBy bytes; empty when the history does not say.
	CreatedBy string `json:"created_by,omitempty"`
}

// MaxCreatedBy bounds Layer.CreatedBy: a report of 256 layers stays small
// whatever the build wrote into its history.
const MaxCreatedBy = 1024

// Package is one installed package. Layer is the digest of the layer that
// added it.
type Package struct {
	Name          string `json:"name"`
	Version       string `json:"version"`
	Ecosystem     string `json:"ecosystem"`
	PURL          string `json:"purl"`
	Path          string `json:"path"`
	Layer         string `json:"layer"`
	SourceName    string `json:"source_name,omitempty"`
	SourceVersion string `json:"source_version,omitempty"`
	Arch          string `json:"arch,omitempty"`
	Analyzer      string `json:"analyzer,omitempty"`
	// GOOS and GOARCH are, for a Go module read from an executable, the
	// platform it was built for (its build settings): Go advisories
	// restricted to other platforms do not apply.
	GOOS   string `json:"goos,omitempty"`
	GOARCH string `json:"goarch,omitempty"`
	// GoSymbols fingerprints which packages and functions of this module
	// the executable contains (pkg/gosyms), so that matching, now or
	// after a database update, can tell whether a vulnerable function is
	// in it. Empty when the executable has no symbol table.
	GoSymbols string `json:"go_symbols,omitempty"`
	// Scope is ScopeDev for a development dependency of a lockfile (npm
	// "dev", pnpm devDependencies, Pipfile "develop", poetry/pdm/uv dev
	// groups, composer packages-dev, bun devDependencies): locked for
	// building and testing, not needed to run the application. Empty when
	// the package is a runtime dependency or the source does not say.
	Scope string `json:"scope,omitempty"`
}

// ScopeDev is Package.Scope of development dependencies.
const ScopeDev = "dev"

// Vulnerability is a known vulnerability affecting a package.
type Vulnerability struct {
	ID           string   `json:"id"`
	Aliases      []string `json:"aliases"`
	Package      string   `json:"package"`
	Version      string   `json:"version"`
	FixedVersion string   `json:"fixed_version"`
	Severity     string   `json:"severity"`
	// Ecosystem, PURL, Path and Layer are those of the affected package
	// (the first one when several installs share name and version).
	Ecosystem string `json:"ecosystem,omitempty"`
	PURL      string `json:"purl,omitempty"`
	Path      string `json:"path,omitempty"`
	Layer     string `json:"layer,omitempty"`
	// SourceName and SourceVersion are the source package the advisory
	// names, when it differs from the installed package (libssl3 is built
	// from openssl): distributions' advisories and VEX documents use it.
	SourceName    string `json:"source_name,omitempty"`
	SourceVersion string `json:"source_version,omitempty"`
	// Summary, CVSS, References, Published, Modified and CWEs come from the
	// advisory (OSV record) at match time, for the export formats (SARIF
	// rules, CycloneDX ratings) and for people. Reports matched before
	// they existed lack them until re-matched.
	Summary string `json:"summary,omitempty"`
	// CVSS is the advisory's CVSS v3 (else v4) vector, nil when it has none.
	CVSS       *CVSS      `json:"cvss,omitempty"`
	References []string   `json:"references"`
	Published  *time.Time `json:"published,omitempty"`
	Modified   *time.Time `json:"modified,omitempty"`
	// CWEs are weakness ids such as "CWE-79".
	CWEs []string `json:"cwes"`
	// Reachable, for a Go vulnerability, says whether the executable
	// contains a function the advisory names as vulnerable ("true",
	// "false") or that this cannot be told ("unknown": stripped binary,
	// or an advisory without symbols). Empty for other ecosystems. The
	// default policy does not count "false" toward the verdict.
	Reachable string `json:"reachable,omitempty"`
}

// Values of Vulnerability.Reachable.
const (
	ReachableTrue    = "true"
	ReachableFalse   = "false"
	ReachableUnknown = "unknown"
)

// CVSS is one CVSS vector and its base score.
type CVSS struct {
	// Version is "3.0", "3.1" or "4.0".
	Version string `json:"version"`
	Vector  string `json:"vector"`
	// Score is the base score computed from Vector; nil when the vector
	// could not be scored.
	Score *float64 `json:"score,omitempty"`
}

// Key identifies a vulnerability of one installed package version, for
// comparing two matches of the same image.
func (v Vulnerability) Key() string { return v.ID + "\x00" + v.Package + "\x00" + v.Version }

// IgnoredVulnerability is a match that an ignore rule (VEX statement or
// ignore file entry) declared not to affect the image.
type IgnoredVulnerability struct {
	Vulnerability
	// Status is the VEX status that ignored it: not_affected or fixed.
	Status string `json:"status"`
	// Justification is the VEX justification, when given.
	Justification string `json:"justification,omitempty"`
	// Reason is the statement's impact statement or the ignore entry's reason.
	Reason string `json:"reason,omitempty"`
	// Source names the document that ignored it (file name or URL).
	Source string `json:"source"`
}

// Vulnerability database statuses.
const (
	VulnDBChecked    = "checked"
	VulnDBNotChecked = "not_checked"
)

// VulnerabilityDB records the database packages were matched against.
type VulnerabilityDB struct {
	// Status is "checked" or "not_checked" (no database was available, or
	// package scanning was off: Vulnerabilities is then empty, not clean).
	Status string `json:"status"`
	// Version identifies the database content and build.
	Version string `json:"version,omitempty"`
	// BuiltAt is when the database was built.
	BuiltAt *time.Time `json:"built_at,omitempty"`
	// MatchedAt is when the packages were last matched (a re-match after a
	// database update changes it without a new scan).
	MatchedAt *time.Time `json:"matched_at,omitempty"`
	// AgeSeconds is how old the database was when the packages were
	// matched (MatchedAt − BuiltAt).
	AgeSeconds int64 `json:"age_seconds,omitempty"`
	// Stale says the database was older than the staleness threshold
	// (CUSTOMS_DB_STALE_AFTER, 72 h by default) when matched: advisories
	// published since are missing.
	Stale bool `json:"stale,omitempty"`
	// Note explains a not_checked status.
	Note string `json:"note,omitempty"`
}

// Finding kinds.
const (
	KindMalware   = "malware"
	KindSecret    = "secret"
	KindMisconfig = "misconfig"
)

// Severities, lowest first.
const (
	SeverityUnknown  = "UNKNOWN"
	SeverityLow      = "LOW"
	SeverityMedium   = "MEDIUM"
	SeverityHigh     = "HIGH"
	SeverityCritical = "CRITICAL"
)

// Finding is a non-package observation: malware, a secret, a misconfiguration.
type Finding struct {
	Kind     string `json:"kind"`
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Title    string `json:"title"`
	// Path is the file (inside archives: "app.jar!/BOOT-INF/x.class"), or
	// "(image config)" for findings in the image config.
	Path  string `json:"path"`
	Layer string `json:"layer"`
	// Line is the 1-based line of a text match, 0 when not applicable.
	Line int `json:"line,omitempty"`
	// Excerpt is a redacted excerpt: never a whole secret.
	Excerpt string `json:"excerpt,omitempty"`
	// SHA256 of the file, for malware matched by content or hash.
	SHA256 string `json:"sha256,omitempty"`
	// Engine says what found it ("signatures", "yara", "clamav", "gitleaks", …).
	Engine string `json:"engine,omitempty"`
	// Encoded names the encodings a secret was found under, outermost
	// first ("base64", "hex", "percent", "percent+base64"); empty when it
	// is in plain text. Excerpt then shows the decoded line, redacted.
	Encoded string `json:"encoded,omitempty"`
}

// ManifestRef is one child of an index.
type ManifestRef struct {
	Digest   string `json:"digest"`
	Platform string `json:"platform"`
	Verdict  string `json:"verdict,omitempty"`
	// Status and Error are set when this platform's scan failed.
	Status string `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Normalize replaces nil slices by empty ones so they encode as [].
func (r *Report) Normalize() {
	if r.SchemaVersion == "" {
		r.SchemaVersion = SchemaVersion
	}
	if r.Artifact.Tags == nil {
		r.Artifact.Tags = []string{}
	}
	if r.Layers == nil {
		r.Layers = []Layer{}
	}
	if r.Packages == nil {
		r.Packages = []Package{}
	}
	if r.Vulnerabilities == nil {
		r.Vulnerabilities = []Vulnerability{}
	}
	for i := range r.Vulnerabilities {
		r.Vulnerabilities[i].normalize()
	}
	if r.IgnoredVulnerabilities == nil {
		r.IgnoredVulnerabilities = []IgnoredVulnerability{}
	}
	for i := range r.IgnoredVulnerabilities {
		r.IgnoredVulnerabilities[i].normalize()
	}
	if r.VulnerabilityDB.Status == "" {
		r.VulnerabilityDB.Status = VulnDBNotChecked
	}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	if r.Manifests == nil {
		r.Manifests = []ManifestRef{}
	}
}

func (v *Vulnerability) normalize() {
	if v.Aliases == nil {
		v.Aliases = []string{}
	}
	if v.References == nil {
		v.References = []string{}
	}
	if v.CWEs == nil {
		v.CWEs = []string{}
	}
}
