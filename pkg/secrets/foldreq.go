package secrets

import (
	"bytes"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
)

// minFoldLen is the shortest folded required string worth a search.
const minFoldLen = 3

// foldSets returns sets of lowercase ASCII strings such that every match
// of re contains, ASCII case-insensitively, one string of each set: the
// case-insensitive counterpart of requiredSets, for rules such as
// kubernetes-secret-yaml whose regex is (?i) throughout (requiredSets
// finds nothing there, and the rule would run its regex over every text
// holding its keyword). Strings are cut to their longest run of bytes
// that only fold to ASCII (not k or s, which U+212A and U+017F spell), so
// that an ASCII case-insensitive search cannot miss a spelling the regex
// matches.
func foldSets(re *syntax.Regexp) [][]string {
	var out [][]string
	for _, set := range foldSetsRaw(re) {
		if set = safeSet(set); set != nil && len(out) < maxRequiredSets {
			out = append(out, set)
		}
	}
	return out
}

// foldSetsRaw is requiredSets over language (foldLower'd strings), with
// alternations: one set of each alternative, joined, is a set of the
// alternation.
func foldSetsRaw(re *syntax.Regexp) [][]string { return setsOf(re, language, true) }

// joinAlternatives adds, for each set of the first alternative, that set
// joined with one set of each other alternative; nothing when some
// alternative has no set.
func joinAlternatives(subs []*syntax.Regexp, sets func(*syntax.Regexp) [][]string, add func([]string)) {
	var alts [][][]string
	for _, s := range subs {
		ss := sets(s)
		if len(ss) == 0 {
			return
		}
		alts = append(alts, ss)
	}
	// Join the set of each other alternative that shares the most strings
	// with it (any choice is sound; sharing keeps the joined set small).
	for _, first := range alts[0] {
		joined := slices.Clone(first)
		for _, ss := range alts[1:] {
			best, bestShared := ss[0], -1
			for _, set := range ss {
				shared := 0
				for _, s := range set {
					if slices.Contains(first, s) {
						shared++
					}
				}
				if shared > bestShared {
					best, bestShared = set, shared
				}
			}
			for _, s := range best {
				if !slices.Contains(joined, s) {
					joined = append(joined, s)
				}
			}
		}
		add(joined)
	}
}

// foldSafe reports whether c is ASCII and every rune it case-folds to is
// too.
func foldSafe(c byte) bool {
	if c >= 0x80 {
		return false
	}
	for f := unicode.SimpleFold(rune(c)); f != rune(c); f = unicode.SimpleFold(f) {
		if f >= 0x80 {
			return false
		}
	}
	return true
}

// safeSet cuts each string of set to its longest run of foldSafe bytes
// (a match holding the string holds that run) and drops the strings
// holding another one; nil when a run is shorter than minFoldLen.
func safeSet(set []string) []string {
	var cut []string
	for _, s := range set {
		best := ""
		for i := 0; i < len(s); {
			j := i
			for j < len(s) && foldSafe(s[j]) {
				j++
			}
			if j-i > len(best) {
				best = s[i:j]
			}
			i = j + 1
		}
		if len(best) < minFoldLen {
			return nil
		}
		cut = append(cut, strings.ToLower(best))
	}
	var out []string
	for _, s := range cut {
		redundant := false
		for _, t := range cut {
			if t != s && strings.Contains(s, t) || t == s && slices.Contains(out, s) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, s)
		}
	}
	return out
}

// holdsFold reports whether text holds, ASCII case-insensitively, a
// string of each set.
func holdsFold(text []byte, sets [][]string) bool {
	for _, set := range sets {
		if !slices.ContainsFunc(set, func(s string) bool { return foldIndex(text, s) >= 0 }) {
			return false
		}
	}
	return true
}

// foldIndex returns the first offset of lowercase ASCII needle in text,
// ASCII case-insensitively, or -1. It looks for a byte of the needle
// that is not a letter with bytes.IndexByte when there is one.
func foldIndex(text []byte, needle string) int {
	n := len(needle)
	if n == 0 {
		return 0
	}
	j := strings.IndexFunc(needle, func(r rune) bool { return r < 'a' || r > 'z' })
	if j >= 0 {
		c := needle[j]
		for off := j; off < len(text); {
			i := bytes.IndexByte(text[off:], c)
			if i < 0 {
				return -1
			}
			start := off + i - j
			if start+n <= len(text) && asciiFoldEqual(text[start:start+n], needle) {
				return start
			}
			off += i + 1
		}
		return -1
	}
	c := needle[0]
	for i := 0; i+n <= len(text); i++ {
		if text[i]|0x20 == c && asciiFoldEqual(text[i:i+n], needle) {
			return i
		}
	}
	return -1
}

// asciiFoldEqual reports whether b equals lowercase ASCII s up to ASCII
// case.
func asciiFoldEqual(b []byte, s string) bool {
	for i := range len(s) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
