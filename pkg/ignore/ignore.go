// Package ignore marks matched vulnerabilities as not affecting an image,
// from OpenVEX documents and from simple ignore files (see README.md).
//
// Ignored vulnerabilities are returned apart from the kept ones, as
// report.IgnoredVulnerability with the status, reason and source that
// ignored them: never dropped, so a report always shows what was set aside
// and why.
//
// Rules are immutable once loaded and safe for concurrent use. A nil
// *Rules is valid and ignores nothing.
package ignore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/customs-scan/customs/pkg/report"
)

// maxFileBytes bounds one file: generous because vendor VEX documents can
// list thousands of statements.
const maxFileBytes = 32 << 20

// Rules are the loaded VEX statements and ignore entries.
type Rules struct {
	statements []*statement
	entries    []*entry
	// Indexes from a lower-cased vulnerability ID (name, alias or @id) to
	// positions in statements or entries, ascending, so that Apply only
	// looks at rules about the vulnerabilities it is given.
	stmtByID  map[string][]int
	entryByID map[string][]int
}

// Len is the number of loaded rules: VEX statements plus ignore entries
// (expired entries included).
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.statements) + len(r.entries)
}

// Load reads each path, a file or a directory whose *.json, *.yaml and
// *.yml files are read in name order (not recursively; names starting with
// "." are skipped, as are the "..data" links of a Kubernetes ConfigMap
// mount). The format is detected per file from its content: an OpenVEX
// document (JSON whose "@context" starts with https://openvex.dev/ns) or an
// ignore file (YAML, or JSON, with a top-level "ignore" list).
//
// Every file is checked; the error lists each file that could not be
// loaded, naming it and what is wrong.
func Load(paths ...string) (*Rules, error) {
	r := newRules()
	var errs []error
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			data, err := readFile(f)
			if err == nil {
				err = r.parse(f, data)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// LoadBytes parses one file's content; name is used in errors and as the
// Source of what its rules ignore.
func LoadBytes(name string, data []byte) (*Rules, error) {
	r := newRules()
	if err := r.parse(name, data); err != nil {
		return nil, err
	}
	return r, nil
}

func newRules() *Rules {
	return &Rules{stmtByID: map[string][]int{}, entryByID: map[string][]int{}}
}

// expand lists the files a path stands for.
func expand(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err // *PathError names the path
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	des, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		switch strings.ToLower(filepath.Ext(name)) {
		case ".json", ".yaml", ".yml":
		default:
			continue
		}
		f := filepath.Join(p, name)
		// Stat, not de.Type: ConfigMap files are symlinks to regular files.
		if fi, err := os.Stat(f); err != nil {
			return nil, err
		} else if fi.IsDir() {
			continue
		}
		files = append(files, f)
	}
	return files, nil
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxFileBytes)
	}
	return data, nil
}

// parse detects the format of one file and adds its rules to r. On error r
// is left unchanged.
func (r *Rules) parse(name string, data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%s: empty file: want an OpenVEX document or an ignore file with a top-level 'ignore' list", name)
	}
	var err error
	switch format(data) {
	case formatOpenVEX:
		err = r.parseOpenVEX(name, data)
	case formatCSAF:
		err = errors.New("CSAF documents are not supported: convert to OpenVEX (vexctl can)")
	case formatCycloneDX:
		err = errors.New("CycloneDX VEX is not supported: convert to OpenVEX")
	case formatOtherLD:
		err = fmt.Errorf("@context %q is not OpenVEX (want %s/v0.2.0)", jsonContext(data), openVEXContext)
	default:
		err = r.parseIgnoreFile(name, data)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

type fileFormat int

const (
	formatIgnore fileFormat = iota
	formatOpenVEX
	formatCSAF
	formatCycloneDX
	formatOtherLD
)

// format sniffs a file. Anything that is not recognisably another format
// is parsed as an ignore file, whose errors then say what is wrong.
func format(data []byte) fileFormat {
	var probe struct {
		Context   *string         `json:"@context"`
		CSAF      json.RawMessage `json:"document"`
		BOMFormat string          `json:"bomFormat"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		// Broken JSON that names the OpenVEX context is a broken VEX
		// document: its JSON error is more useful than a YAML one.
		if bytes.Contains(data, []byte(openVEXContext)) && bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
			return formatOpenVEX
		}
		return formatIgnore
	}
	switch {
	case probe.Context != nil && strings.HasPrefix(*probe.Context, openVEXContext):
		return formatOpenVEX
	case probe.Context != nil:
		return formatOtherLD
	case probe.BOMFormat != "":
		return formatCycloneDX
	case len(probe.CSAF) > 0 && bytes.Contains(probe.CSAF, []byte(`"csaf_version"`)):
		return formatCSAF
	}
	return formatIgnore
}

func jsonContext(data []byte) string {
	var probe struct {
		Context string `json:"@context"`
	}
	_ = json.Unmarshal(data, &probe)
	return probe.Context
}

// Apply splits vulns of the image art into those kept and those ignored,
// each in input order. now decides which ignore entries have expired.
//
// A vulnerability is ignored when the effective OpenVEX statement about it
// for this image (the latest applicable one) says not_affected or fixed;
// otherwise (no statement, affected, under_investigation) when an
// unexpired ignore entry matches it, the first in load order. An ignore
// entry thus overrides a VEX "affected": it is the operator's own decision,
// with a reason and usually an expiry.
func (r *Rules) Apply(art report.Artifact, vulns []report.Vulnerability, now time.Time) (kept []report.Vulnerability, ignored []report.IgnoredVulnerability) {
	if r.Len() == 0 {
		return slices.Clone(vulns), nil
	}
	for _, v := range vulns {
		if iv, ok := r.ignore(art, v, now); ok {
			ignored = append(ignored, iv)
			continue
		}
		kept = append(kept, v)
	}
	return kept, ignored
}

func (r *Rules) ignore(art report.Artifact, v report.Vulnerability, now time.Time) (report.IgnoredVulnerability, bool) {
	if s := r.effectiveStatement(art, v); s != nil && ignoring(s.Status) {
		reason := s.ImpactStatement
		if reason == "" {
			reason = s.StatusNotes
		}
		return report.IgnoredVulnerability{
			Vulnerability: v,
			Status:        string(s.Status),
			Justification: string(s.Justification),
			Reason:        reason,
			Source:        s.source,
		}, true
	}
	for _, i := range candidates(r.entryByID, v) {
		if e := r.entries[i]; e.matches(art, v, now) {
			return report.IgnoredVulnerability{
				Vulnerability: v,
				Status:        statusNotAffected,
				Reason:        e.reason,
				Source:        e.source,
			}, true
		}
	}
	return report.IgnoredVulnerability{}, false
}

// candidates lists, ascending and without repeats, the indexed positions
// filed under v's ID or any of its aliases.
func candidates(index map[string][]int, v report.Vulnerability) []int {
	out := index[idKey(v.ID)]
	if len(v.Aliases) == 0 {
		return out
	}
	out = slices.Clone(out)
	for _, a := range v.Aliases {
		out = append(out, index[idKey(a)]...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// idKey normalises a vulnerability ID for lookup: IDs never differ only by
// case, and a hand-written "cve-2023-1234" should still match.
func idKey(id string) string { return strings.ToLower(strings.TrimSpace(id)) }
