package ignore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/openvex/go-vex/pkg/vex"
	"go.yaml.in/yaml/v3"

	"github.com/customs-scan/customs/pkg/report"
)

// fileSpec is the ignore file's schema. Ignore is a pointer so that a file
// without the key (some other YAML file) is told apart from an empty list.
type fileSpec struct {
	Ignore *[]entrySpec `yaml:"ignore"`
}

type entrySpec struct {
	ID         string `yaml:"id"`
	Package    string `yaml:"package"`
	PURL       string `yaml:"purl"`
	Repository string `yaml:"repository"`
	Digest     string `yaml:"digest"`
	Reason     string `yaml:"reason"`
	Expires    string `yaml:"expires"`
}

// entry is one compiled ignore entry; empty optional fields match anything.
type entry struct {
	id         string
	pkg        string
	purl       string // without qualifiers or subpath
	repository string // path.Match pattern
	digest     string
	reason     string
	expires    time.Time // zero: never
	source     string
}

// digestRe is the OCI image-spec digest grammar.
var digestRe = regexp.MustCompile(`^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)

func (r *Rules) parseIgnoreFile(name string, data []byte) error {
	var spec fileSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("not an OpenVEX document nor a valid ignore file: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	present, lines := ignoreKey(data)
	if !present {
		return errors.New("no top-level 'ignore' list: want an OpenVEX document or an ignore file")
	}
	var specs []entrySpec
	if spec.Ignore != nil { // nil for "ignore:" with every entry commented out
		specs = *spec.Ignore
	}
	var entries []*entry
	var errs []error
	for i, es := range specs {
		e, err := compileEntry(es, name)
		if err != nil {
			where := fmt.Sprintf("ignore[%d]", i)
			if l := lines[i]; l > 0 {
				where = fmt.Sprintf("line %d: %s", l, where)
			}
			if id := strings.TrimSpace(es.ID); id != "" {
				where += fmt.Sprintf(" (%s)", id)
			}
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		entries = append(entries, e)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, e := range entries {
		k := idKey(e.id)
		r.entryByID[k] = append(r.entryByID[k], len(r.entries))
		r.entries = append(r.entries, e)
	}
	return nil
}

func compileEntry(es entrySpec, source string) (*entry, error) {
	e := &entry{
		id:         strings.TrimSpace(es.ID),
		pkg:        strings.TrimSpace(es.Package),
		repository: strings.TrimSpace(es.Repository),
		digest:     strings.TrimSpace(es.Digest),
		reason:     strings.TrimSpace(es.Reason),
		source:     source,
	}
	if e.id == "" {
		return nil, errors.New("id is required")
	}
	if e.reason == "" {
		return nil, errors.New("reason is required: say why, so the entry can be revisited")
	}
	if p := strings.TrimSpace(es.PURL); p != "" {
		bare, ok := barePURL(p)
		if !ok {
			return nil, fmt.Errorf("purl %q is not a package URL (pkg:type/namespace/name)", p)
		}
		e.purl = bare
	}
	if e.repository != "" {
		if _, err := path.Match(e.repository, ""); err != nil {
			return nil, fmt.Errorf("repository pattern %q: %w", e.repository, err)
		}
	}
	if e.digest != "" && !digestRe.MatchString(e.digest) {
		return nil, fmt.Errorf("digest %q: want algorithm:hex, e.g. sha256:…", e.digest)
	}
	if x := strings.TrimSpace(es.Expires); x != "" {
		t, err := parseExpires(x)
		if err != nil {
			return nil, err
		}
		e.expires = t
	}
	return e, nil
}

// parseExpires returns the first instant at which the entry no longer
// applies. A date is inclusive: "2027-01-01" applies through that day (UTC).
func parseExpires(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.AddDate(0, 0, 1), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("expires %q: want a date (2027-01-01) or an RFC 3339 time (2027-01-01T00:00:00Z)", s)
}

func (e *entry) matches(art report.Artifact, v report.Vulnerability, now time.Time) bool {
	if !e.expires.IsZero() && !now.Before(e.expires) {
		return false
	}
	if e.pkg != "" && e.pkg != v.Package && e.pkg != v.SourceName {
		return false
	}
	if e.purl != "" && !slices.ContainsFunc(packagePURLs(v), func(pkg string) bool { return vex.PurlMatches(e.purl, pkg) }) {
		return false
	}
	if e.repository != "" {
		if ok, _ := path.Match(e.repository, art.Repository); !ok {
			return false
		}
	}
	if e.digest != "" && e.digest != art.Digest {
		return false
	}
	return true
}

// ignoreKey reports whether the document has a top-level "ignore" key and
// finds the line of each entry of its list, for error messages (best
// effort: missing entries have line 0).
func ignoreKey(data []byte) (present bool, lines map[int]int) {
	lines = map[int]int{}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return false, lines
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return false, lines
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "ignore" {
			continue
		}
		present = true
		for j, item := range top.Content[i+1].Content {
			if top.Content[i+1].Kind == yaml.SequenceNode {
				lines[j] = item.Line
			}
		}
	}
	return present, lines
}
