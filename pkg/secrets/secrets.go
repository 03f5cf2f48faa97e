// Package secrets finds credentials in text with gitleaks' default rule
// set (github.com/zricethezav/gitleaks/v8, MIT): 220-odd rules, each with
// keywords, a regular expression, an optional entropy threshold and
// allowlists, plus gitleaks' global allowlists (paths such as lock files
// and vendored dependencies, placeholder values, stop words). It knows
// nothing of images: pkg/scan/analyzer/secrets runs it over image files
// and the image config.
//
// The rules are loaded from gitleaks' own config package (its embedded
// gitleaks.toml, parsed with gitleaks' ViperConfig.Translate) and run by
// this package's engine, which follows gitleaks' detector for one
// fragment but is built for a registry scanner:
//
//   - One Aho–Corasick pass over a text finds every keyword
//     (case-insensitively, without lowercasing a copy of the text); a text
//     holding no keyword of a rule never reaches that rule's regex, and a
//     text holding none at all never reaches any.
//   - A regex runs only on the lines around its keywords' hits when that
//     provably finds the same matches (every match contains a keyword and
//     spans a bounded number of lines: checked on the parsed expression
//     when the engine is built); otherwise on the whole text. For most
//     rules a hit first has to pass a short anchored regex (the keyword
//     and what must follow it, e.g. "key" then an assignment), so the
//     full regex runs on a few hundred bytes around real candidates only;
//     when nothing before a match matters to it (gitleaks' common
//     `[\w.-]{0,50}?keyword…` shape, generic-api-key included), it runs
//     anchored at the earliest start of each such candidate instead of
//     searching the window. A rule run on whole texts is skipped on a
//     text lacking a string every match holds (curl-auth-user's " -u").
//     Work per hit is bounded and at most 1000 candidate matches of a
//     text are examined: adversarial texts cost linear time.
//   - No logging (gitleaks' trace logs carry secrets), no process-wide
//     state, safe for concurrent use; "gitleaks:allow" comments are not
//     honoured (they would let an image author hide a credential).
//   - Encoded segments (base64, hex, percent-encoding) are decoded and
//     searched, 5 levels deep like gitleaks' CLI, within a work bound
//     (decode.go); such findings say how the secret was encoded.
//   - Two cloud credentials gitleaks only knows as generic-api-key are
//     named when key name and value have their exact shape:
//     aws-secret-access-key (aws_secret_access_key = <40 chars>) and
//     azure-storage-account-key (AccountKey=<86 chars>==).
//
// Severity (see Severity): CRITICAL for private keys, AWS/GCP/Azure
// credentials and GitHub/GitLab tokens, MEDIUM for generic-api-key, HIGH
// for every other rule.
//
// A Finding never carries a whole secret: its excerpt shows the line with
// the secret reduced to at most its first 4 and last 2 characters (see
// Redact), and Seen tells secrets apart by a hash.
package secrets

import (
	"crypto/sha256"
	"slices"
)

// MaxTextSize is the longest text Find looks at (offsets are kept in 32
// bits); the rest of a longer text is not searched.
const MaxTextSize = 1 << 30

// MaxMatchBytes bounds the length of a match: longer ones are not
// findings. Every bounded rule matches at most about 2 KB; the few
// unbounded ones (private keys, Kubernetes secrets, JWTs) match real
// credentials well under it (a 16384-bit RSA key in PEM is 13 KB). A
// text read in windows overlapping by at least this much is searched
// exactly as if it were read whole.
const MaxMatchBytes = 32 << 10

// Finding is one secret found by a rule.
type Finding struct {
	// Rule is the gitleaks rule id (or a refinement's, see Severity).
	Rule string
	// Description is the rule's description.
	Description string
	// Severity is a report severity (CRITICAL, HIGH, MEDIUM).
	Severity string
	// Line is the 1-based line of the match in the text; 0 for a finding
	// of a path-only rule.
	Line int
	// Excerpt is the line of the match around the secret, redacted.
	Excerpt string
	// Offset is the byte offset of the match in the text (0 for a
	// finding of a path-only rule); of its encoded segment for a secret
	// found by decoding.
	Offset int
	// Encoded names the encodings the secret was found under, outermost
	// first ("base64", "percent+base64"); "" when it is in plain text.
	// The excerpt then shows the decoded line.
	Encoded string

	secretSum [sha256.Size]byte // for Seen: not the secret (fmt prints unexported fields)
}

// Option configures New.
type Option func(*Engine)

// WithDecodeDepth sets how many nested encodings (base64, hex, percent)
// Find decodes to look for secrets (default DefaultDecodeDepth; 0: none).
func WithDecodeDepth(n int) Option { return func(e *Engine) { e.decodeDepth = max(n, 0) } }

// New compiles gitleaks' default rules. Build one Engine per process
// (compiling takes a moment) and share it: it is safe for concurrent use.
func New(opts ...Option) (*Engine, error) {
	cfg, err := loadDefaultConfig()
	if err != nil {
		return nil, err
	}
	e, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		if o != nil {
			o(e)
		}
	}
	return e, nil
}

// Rules returns the ids of the rules in use, in gitleaks' order.
func (e *Engine) Rules() []string {
	var ids []string
	for _, r := range e.rules {
		ids = append(ids, r.id)
	}
	for _, r := range e.pathRules {
		ids = append(ids, r.id)
	}
	return ids
}

// PathAllowed reports whether gitleaks' global allowlists skip the file
// at path (whatever it holds).
func (e *Engine) PathAllowed(path string) bool { return e.pathAllowed(path) }

// PathFindings returns a finding for each path-only rule (e.g.
// pkcs12-file: the file's name is the finding) that path matches.
func (e *Engine) PathFindings(path string) []Finding {
	var out []Finding
	for _, r := range e.pathFindings(path) {
		out = append(out, Finding{Rule: r.id, Description: r.desc, Severity: r.severity})
	}
	return out
}

// Find runs the rules over text (a file's content, or any string) and
// returns at most limit findings, in order of rule then position. path
// is the file's path, for the rules and allowlists that look at paths;
// "" for a text that is not a file.
//
// Encoded segments are decoded and searched too (see WithDecodeDepth):
// those findings come after the plain ones, with Encoded set. A generic
// finding whose secret is an encoded segment in which a specific rule
// found a secret is left out (the specific one says more).
func (e *Engine) Find(path string, text []byte, limit int) []Finding {
	text = text[:min(len(text), MaxTextSize)]
	cands := e.detect(path, text, limit)
	dec := e.detectEncoded(path, text, limit-len(cands), cands)
	if len(cands) == 0 && len(dec) == 0 {
		return nil
	}
	// Encoded segments holding a finding are redacted from the plain
	// excerpts like secrets (decoding them is no harder).
	all := cands
	if len(dec) > 0 {
		all = slices.Clone(cands)
		for _, d := range dec {
			all = append(all, candidate{secret: d.encodedS, secretStart: d.start, secretEnd: d.end})
		}
	}
	out := make([]Finding, 0, len(cands)+len(dec))
	for i := range cands {
		c := &cands[i]
		if c.r.generic && slices.ContainsFunc(dec, func(d decoded) bool {
			return !d.c.r.generic && d.start >= c.secretStart && d.end <= c.secretEnd
		}) {
			continue
		}
		id, desc, sev := refine(text, c)
		out = append(out, Finding{
			Rule:        id,
			Description: desc,
			Severity:    sev,
			Line:        c.line,
			Offset:      c.matchStart,
			Excerpt:     excerpt(text, c, all),
			secretSum:   sha256.Sum256([]byte(c.secret)),
		})
	}
	for i := range dec {
		d := &dec[i]
		id, desc, sev := refine(d.snippet, &d.c)
		out = append(out, Finding{
			Rule:        id,
			Description: desc,
			Severity:    sev,
			Line:        d.line,
			Offset:      d.start,
			Excerpt:     excerpt(d.snippet, &d.c, d.cands),
			Encoded:     d.encoded,
			secretSum:   sha256.Sum256([]byte(d.c.secret)),
		})
	}
	return out
}

// Seen remembers the secrets of findings, by rule, to report each secret
// once among many texts (a build argument repeated by every later history
// step). The zero value is empty and ready.
type Seen struct {
	m map[seenKey]bool
}

type seenKey struct {
	rule   string
	secret [sha256.Size]byte
}

// Add records f's rule and secret and reports whether they are new.
func (s *Seen) Add(f *Finding) bool {
	k := seenKey{f.Rule, f.secretSum}
	if s.m[k] {
		return false
	}
	if s.m == nil {
		s.m = map[seenKey]bool{}
	}
	s.m[k] = true
	return true
}
