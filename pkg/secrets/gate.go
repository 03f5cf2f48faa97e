package secrets

import (
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// byteSet is a set of bytes.
type byteSet [4]uint64

func (s *byteSet) add(c byte)      { s[c/64] |= 1 << (c % 64) }
func (s *byteSet) has(c byte) bool { return s[c/64]&(1<<(c%64)) != 0 }

func (s *byteSet) addRange(lo, hi byte) {
	for c := int(lo); c <= int(hi); c++ {
		s.add(byte(c))
	}
}

func (s *byteSet) union(o byteSet) {
	for i := range s {
		s[i] |= o[i]
	}
}

func (s *byteSet) full() bool {
	return s[0]&s[1]&s[2]&s[3] == ^uint64(0)
}

// gate is a byte-level necessary condition for a part's filter: every
// match is a run of skip bytes followed by a byte of first (the start of
// the filter's last element that cannot be empty, e.g. generic-api-key's
// assignment operator). Checking it reads the bytes after a keyword hit
// once, without a call into package regexp: in code most hits (a
// variable named key, a token type) are followed by a byte that can
// neither continue the filter's run nor start its operator.
type gate struct {
	skip, first byteSet
	ok          bool
}

// newGate derives the gate of regexp re (the pre-filter, whose matches
// include the filter's: the zero-width assertions it relaxes add no
// bytes). ok is false when no useful gate exists.
func newGate(re *syntax.Regexp) gate {
	seq := flatten([]*syntax.Regexp{re})
	j := len(seq) - 1
	for j >= 0 && nullable(seq[j]) {
		j--
	}
	if j < 0 {
		return gate{}
	}
	var g gate
	for _, s := range seq[:j] {
		g.skip.union(bytesOf(s))
	}
	g.first = firstBytes(seq[j])
	g.ok = !g.first.full() && !g.skip.full()
	return g
}

// pass reports whether the filter can match at the start of b: false
// only when it cannot (b is what the filter would read).
func (g *gate) pass(b []byte) bool {
	if !g.ok {
		return true
	}
	for _, c := range b {
		if g.first.has(c) {
			return true
		}
		if !g.skip.has(c) {
			return false
		}
	}
	return false
}

// runeBytes adds the bytes of r's UTF-8 encoding (all non-ASCII bytes
// for a non-ASCII rune: invalid bytes decode to U+FFFD), and those of
// the runes it folds to when fold is set.
func runeBytes(s *byteSet, r rune, fold bool) {
	add := func(r rune) {
		if r >= 0 && r < utf8.RuneSelf {
			s.add(byte(r))
		} else {
			s.addRange(utf8.RuneSelf, 0xff)
		}
	}
	add(r)
	if fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			add(f)
		}
	}
}

// classBytes adds the bytes a rune of the class can be made of.
func classBytes(s *byteSet, ranges []rune) {
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		if lo < utf8.RuneSelf {
			s.addRange(byte(lo), byte(min(hi, utf8.RuneSelf-1)))
		}
		if hi >= utf8.RuneSelf {
			s.addRange(utf8.RuneSelf, 0xff)
		}
	}
}

// bytesOf returns every byte a match of re can hold (all bytes for what
// is not recognised).
func bytesOf(re *syntax.Regexp) byteSet {
	var s byteSet
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			runeBytes(&s, r, re.Flags&syntax.FoldCase != 0)
		}
	case syntax.OpCharClass:
		classBytes(&s, re.Rune)
	case syntax.OpEmptyMatch, syntax.OpNoMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat,
		syntax.OpConcat, syntax.OpAlternate:
		for _, sub := range re.Sub {
			s.union(bytesOf(sub))
		}
	default:
		s.addRange(0, 0xff)
	}
	return s
}

// firstBytes returns every byte a non-empty match of re can start with
// (all bytes for what is not recognised).
func firstBytes(re *syntax.Regexp) byteSet {
	var s byteSet
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) > 0 {
			runeBytes(&s, re.Rune[0], re.Flags&syntax.FoldCase != 0)
		}
	case syntax.OpCharClass:
		classBytes(&s, re.Rune)
	case syntax.OpEmptyMatch, syntax.OpNoMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat, syntax.OpAlternate:
		for _, sub := range re.Sub {
			s.union(firstBytes(sub))
		}
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			s.union(firstBytes(sub))
			if !nullable(sub) {
				break
			}
		}
	default:
		s.addRange(0, 0xff)
	}
	return s
}
