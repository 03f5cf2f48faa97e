package secrets

import (
	"bytes"
	"regexp"
	"regexp/syntax"
)

// pathSet is a list of path regexes (gitleaks allowlist paths), each
// behind a gate of literals one of which any path it matches contains:
// most paths are decided with a few substring tests instead of a regex.
type pathSet struct {
	pats []gatedPath
}

type gatedPath struct {
	re   *regexp.Regexp
	lits [][]byte // nil: no gate
}

func newPathSet(patterns []string) (*pathSet, error) {
	s := &pathSet{}
	for _, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, err
		}
		parsed, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			return nil, err
		}
		g := gatedPath{re: re}
		for _, l := range requiredLiterals(parsed) {
			g.lits = append(g.lits, []byte(l))
		}
		s.pats = append(s.pats, g)
	}
	return s, nil
}

// match reports whether any pattern matches path.
func (s *pathSet) match(path string) bool {
	if s == nil {
		return false
	}
	var buf [256]byte
	lower := buf[:0]
	if len(path) > len(buf) {
		lower = make([]byte, 0, len(path))
	}
	for i := 0; i < len(path); i++ {
		lower = append(lower, toLowerASCII(path[i]))
	}
	for i := range s.pats {
		p := &s.pats[i]
		if p.lits != nil && !containsAny(lower, p.lits) {
			continue
		}
		if p.re.MatchString(path) {
			return true
		}
	}
	return false
}

// containsAny reports whether s contains one of lits.
func containsAny(s []byte, lits [][]byte) bool {
	for _, l := range lits {
		if bytes.Contains(s, l) {
			return true
		}
	}
	return false
}

func toLowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
