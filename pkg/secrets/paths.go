package secrets

import (
	"regexp"
	"regexp/syntax"

	"github.com/customs-scan/customs/pkg/internal/ahocorasick"
)

// pathSet is a list of path regexes (gitleaks allowlist paths), each
// behind a gate of literals one of which any path it matches contains
// (compared ASCII case-insensitively). One Aho–Corasick pass over the
// path finds the literals it holds, so most paths are decided without a
// regex, and the cost of a path does not grow with the number of
// literals (about 150 for gitleaks' global allowlist).
type pathSet struct {
	pats  []*regexp.Regexp
	open  []bool // open[i]: pattern i has no gate, its regex always runs
	lits  *ahocorasick.Matcher
	gates [][]int32 // gates[l]: the patterns literal l opens
}

func newPathSet(patterns []string) (*pathSet, error) {
	s := &pathSet{}
	index := map[string]int{}
	var lits [][]byte
	for i, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, err
		}
		parsed, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			return nil, err
		}
		s.pats = append(s.pats, re)
		req := requiredLiterals(parsed)
		s.open = append(s.open, len(req) == 0)
		for _, l := range req {
			k, ok := index[l]
			if !ok {
				k = len(lits)
				index[l] = k
				lits = append(lits, []byte(l))
				s.gates = append(s.gates, nil)
			}
			s.gates[k] = append(s.gates[k], int32(i))
		}
	}
	if len(lits) > 0 {
		m, err := ahocorasick.New(lits, ahocorasick.Options{ASCIIFold: true})
		if err != nil {
			return nil, err
		}
		s.lits = m
	}
	return s, nil
}

// match reports whether any pattern matches path.
func (s *pathSet) match(path string) bool {
	found := false
	s.each(path, func(int) bool {
		found = true
		return false
	})
	return found
}

// each calls yield with the index of every pattern matching path, in
// order, until yield returns false.
func (s *pathSet) each(path string, yield func(int) bool) {
	if s == nil {
		return
	}
	var candBuf [64]bool
	cand := candBuf[:0]
	if len(s.pats) > len(candBuf) {
		cand = make([]bool, 0, len(s.pats))
	}
	cand = append(cand, s.open...)
	if s.lits != nil {
		var pathBuf [256]byte
		for m := range s.lits.All(append(pathBuf[:0], path...)) {
			for _, p := range s.gates[m.Pattern] {
				cand[p] = true
			}
		}
	}
	for i, re := range s.pats {
		if cand[i] && re.MatchString(path) && !yield(i) {
			return
		}
	}
}
