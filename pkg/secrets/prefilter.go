package secrets

import (
	"fmt"
	"strings"

	"github.com/customs-scan/customs/pkg/internal/ahocorasick"
)

// prefilter finds every occurrence of the rules' keywords in a text,
// case-insensitively, in one pass of an Aho–Corasick automaton, built
// once and read-only afterwards (safe for concurrent use).
//
// Case folding matches foldLower: ASCII letters, and the UTF-8 spellings
// of U+212A (K) and U+017F (s), which Go's (?i) matching folds onto k and
// s, are inserted as extra spellings of keywords containing k or s.
type prefilter struct {
	m *ahocorasick.Matcher
	// kw[p] is the keyword that pattern p spells.
	kw []int32
}

// hit is one keyword occurrence: data[start:end] spells keyword kw.
type hit struct {
	start, end int32
	kw         int32
}

func newPrefilter(keywords []string) (*prefilter, error) {
	p := &prefilter{}
	var pats [][]byte
	for i, k := range keywords {
		for _, v := range spellings(k) {
			pats = append(pats, []byte(v))
			p.kw = append(p.kw, int32(i))
		}
	}
	m, err := ahocorasick.New(pats, ahocorasick.Options{ASCIIFold: true})
	if err != nil {
		return nil, fmt.Errorf("secrets: keywords: %w", err)
	}
	p.m = m
	return p, nil
}

// spellings returns the byte spellings of a lower-case keyword that
// foldLower maps onto it: each k may also be U+212A, each s U+017F.
func spellings(k string) []string {
	out := []string{""}
	for i := 0; i < len(k); i++ {
		alts := []string{k[i : i+1]}
		switch k[i] {
		case 'k':
			alts = append(alts, "\u212a")
		case 's':
			alts = append(alts, "\u017f")
		}
		if len(out)*len(alts) > 64 {
			alts = alts[:1] // absurdly many k/s: keep ASCII only
		}
		next := make([]string, 0, len(out)*len(alts))
		for _, o := range out {
			for _, a := range alts {
				next = append(next, o+a)
			}
		}
		out = next
	}
	return out
}

// scan appends every keyword occurrence in data to hits, in order of end
// position, and sets seen[kw] for each keyword found. data is at most
// MaxTextSize bytes.
func (p *prefilter) scan(data []byte, hits []hit, seen []bool) []hit {
	for h := range p.m.All(data) {
		kw := p.kw[h.Pattern]
		hits = append(hits, hit{start: int32(h.Start), end: int32(h.End), kw: kw})
		seen[kw] = true
	}
	return hits
}

// lowerKeyword normalizes a gitleaks keyword as gitleaks does.
func lowerKeyword(k string) string { return strings.ToLower(k) }
