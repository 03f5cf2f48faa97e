package secrets

import (
	"bytes"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What the engine needs to know about a rule's regular expression to run
// it only on the parts of a file around the rule's keywords, with the same
// results as running it on the whole file:
//
//   - every match contains one of the rule's keywords (case-insensitively),
//     so every match lies around a keyword hit;
//   - a match spans at most N newlines, so it lies within the N lines
//     before and after the line of that hit.
//
// Both are proved from the parsed expression; a rule for which either
// cannot be proved is run on the whole file (when its keywords occur).

// unbounded is returned by maxNewlines when a match may span any number of
// lines.
const unbounded = -1

// maxNewlines returns the largest number of '\n' a match of re can
// contain, or unbounded.
func maxNewlines(re *syntax.Regexp) int { return maxOver(re, newlinesOfLeaf) }

// newlinesOfLeaf is maxNewlines of a regexp without sub-expressions.
func newlinesOfLeaf(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			if r == '\n' {
				n++
			}
		}
		return n
	case syntax.OpCharClass:
		if classHas(re.Rune, '\n') {
			return 1
		}
		return 0
	case syntax.OpAnyChar:
		return 1
	case syntax.OpAnyCharNotNL:
		return 0
	}
	return 0 // empty-width assertions, empty match, no match
}

// maxOver is the largest total of leaf over a match of re: repetition
// multiplies, concatenation adds, alternation takes the largest, and an
// unbounded repetition of anything non-zero is unbounded. leaf measures
// the regexps without sub-expressions.
func maxOver(re *syntax.Regexp, leaf func(*syntax.Regexp) int) int {
	switch re.Op {
	case syntax.OpCapture, syntax.OpQuest:
		return maxOver(re.Sub[0], leaf)
	case syntax.OpStar, syntax.OpPlus:
		if maxOver(re.Sub[0], leaf) != 0 {
			return unbounded
		}
		return 0
	case syntax.OpRepeat:
		n := maxOver(re.Sub[0], leaf)
		switch {
		case n == 0:
			return 0
		case n == unbounded || re.Max < 0:
			return unbounded
		}
		return n * re.Max
	case syntax.OpConcat:
		sum := 0
		for _, s := range re.Sub {
			n := maxOver(s, leaf)
			if n == unbounded {
				return unbounded
			}
			sum += n
		}
		return sum
	case syntax.OpAlternate:
		most := 0
		for _, s := range re.Sub {
			n := maxOver(s, leaf)
			if n == unbounded {
				return unbounded
			}
			most = max(most, n)
		}
		return most
	}
	return leaf(re)
}

// hasOp reports whether re uses op anywhere.
func hasOp(re *syntax.Regexp, op syntax.Op) bool {
	if re.Op == op {
		return true
	}
	for _, s := range re.Sub {
		if hasOp(s, op) {
			return true
		}
	}
	return false
}

// withoutOp returns a copy of re where op (an assertion) never holds.
// A window that does not start at the file's start runs the rule with \A
// (and ^ without (?m)) removed this way, one that does not end at the
// file's end with \z ($) removed: inside such a window they cannot hold.
func withoutOp(re *syntax.Regexp, op syntax.Op) *syntax.Regexp {
	if re.Op == op {
		return &syntax.Regexp{Op: syntax.OpNoMatch}
	}
	c := *re
	c.Sub = make([]*syntax.Regexp, len(re.Sub))
	for i, s := range re.Sub {
		c.Sub[i] = withoutOp(s, op)
	}
	return &c
}

// relaxEnds returns a copy of re where the assertions that can look past
// a match's end ($, \z, \b, \B) always hold: it matches wherever re
// does, on any text that starts the same.
func relaxEnds(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpEndLine, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return &syntax.Regexp{Op: syntax.OpEmptyMatch}
	}
	c := *re
	c.Sub = make([]*syntax.Regexp, len(re.Sub))
	for i, s := range re.Sub {
		c.Sub[i] = relaxEnds(s)
	}
	return &c
}

// hasEndOps reports whether re has an assertion relaxEnds changes.
func hasEndOps(re *syntax.Regexp) bool {
	return hasOp(re, syntax.OpEndLine) || hasOp(re, syntax.OpEndText) ||
		hasOp(re, syntax.OpWordBoundary) || hasOp(re, syntax.OpNoWordBoundary)
}

func classHas(ranges []rune, r rune) bool {
	for i := 0; i+1 < len(ranges); i += 2 {
		if ranges[i] <= r && r <= ranges[i+1] {
			return true
		}
	}
	return false
}

// Limits of the finite-language expansion used by containsKeyword.
const (
	maxLangStrings = 256
	maxClassRunes  = 16
	maxRepeatExp   = 3
)

// containsKeyword reports whether every string matched by re contains at
// least one of keywords (lower case) when lowercased. It may answer false
// for expressions where this holds (it is a proof attempt, not a decision
// procedure): the caller then falls back to scanning whole files.
func containsKeyword(re *syntax.Regexp, keywords []string) bool {
	if len(keywords) == 0 {
		return false
	}
	if set, ok := language(re); ok {
		return allContain(set, keywords)
	}
	switch re.Op {
	case syntax.OpCapture, syntax.OpPlus:
		return containsKeyword(re.Sub[0], keywords)
	case syntax.OpRepeat:
		return re.Min >= 1 && containsKeyword(re.Sub[0], keywords)
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !containsKeyword(s, keywords) {
				return false
			}
		}
		return true
	case syntax.OpConcat:
		budget := maxExpansions
		return seqContains(flatten(re.Sub), keywords, &budget)
	}
	return false
}

// maxExpansions bounds the alternation branches seqContains distributes
// over a concatenation.
const maxExpansions = 1024

// flatten returns the parts of a concatenation with nested
// concatenations and captures of concatenations inlined.
func flatten(subs []*syntax.Regexp) []*syntax.Regexp {
	var out []*syntax.Regexp
	for _, s := range subs {
		for s.Op == syntax.OpCapture && s.Sub[0].Op == syntax.OpConcat {
			s = s.Sub[0]
		}
		if s.Op == syntax.OpConcat {
			out = append(out, flatten(s.Sub)...)
			continue
		}
		out = append(out, s)
	}
	return out
}

// seqContains reports whether every match of the concatenation seq
// contains a keyword. An alternation inside it is distributed ("a(b|c)d"
// is "abd|acd") so that keywords spelled across its edge are seen.
func seqContains(seq []*syntax.Regexp, keywords []string, budget *int) bool {
	for _, s := range seq {
		if containsKeyword(s, keywords) {
			return true
		}
	}
	// A keyword may be spelled across neighbouring parts with finite
	// languages ("[Aa]" "pi"): try every run of them.
	for i := range seq {
		acc := []string{""}
		for j := i; j < len(seq); j++ {
			set, ok := language(seq[j])
			if !ok {
				break
			}
			if acc, ok = product(acc, set); !ok {
				break
			}
			if allContain(acc, keywords) {
				return true
			}
		}
	}
	for i, s := range seq {
		alt := s
		for alt.Op == syntax.OpCapture {
			alt = alt.Sub[0]
		}
		if alt.Op != syntax.OpAlternate {
			continue
		}
		if *budget -= len(alt.Sub); *budget < 0 {
			return false
		}
		for _, b := range alt.Sub {
			branch := make([]*syntax.Regexp, 0, len(seq)+4)
			branch = append(branch, seq[:i]...)
			branch = append(branch, flatten([]*syntax.Regexp{b})...)
			branch = append(branch, seq[i+1:]...)
			if !seqContains(branch, keywords, budget) {
				return false
			}
		}
		return true
	}
	return false
}

func allContain(set []string, keywords []string) bool {
	for _, s := range set {
		found := false
		for _, k := range keywords {
			if strings.Contains(s, k) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// language returns the lowercased strings re matches when they are few
// and short (ok false otherwise). Empty-width assertions match "".
func language(re *syntax.Regexp) ([]string, bool) { return lang(re, false) }

// exactLanguage is language without lowercasing: the byte strings re
// matches; ok is false when a case-insensitive letter is in it.
func exactLanguage(re *syntax.Regexp) ([]string, bool) { return lang(re, true) }

// lang is language, or exactLanguage when exact.
func lang(re *syntax.Regexp, exact bool) ([]string, bool) {
	fold := foldLower
	if exact {
		fold = func(s string) string { return s }
		if re.Op == syntax.OpLiteral && re.Flags&syntax.FoldCase != 0 {
			for _, r := range re.Rune {
				if unicode.SimpleFold(r) != r {
					return nil, false
				}
			}
		}
	}
	switch re.Op {
	case syntax.OpLiteral:
		return []string{fold(string(re.Rune))}, true
	case syntax.OpCharClass:
		var out []string
		seen := map[string]bool{}
		n := 0
		for i := 0; i+1 < len(re.Rune); i += 2 {
			n += int(re.Rune[i+1]-re.Rune[i]) + 1
			if n > maxClassRunes {
				return nil, false
			}
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				s := fold(string(r))
				if !seen[s] {
					seen[s] = true
					out = append(out, s)
				}
			}
		}
		return out, true
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return []string{""}, true
	case syntax.OpCapture:
		return lang(re.Sub[0], exact)
	case syntax.OpQuest:
		set, ok := lang(re.Sub[0], exact)
		if !ok {
			return nil, false
		}
		return union([]string{""}, set)
	case syntax.OpRepeat:
		if re.Max < 0 || re.Max > maxRepeatExp {
			return nil, false
		}
		sub, ok := lang(re.Sub[0], exact)
		if !ok {
			return nil, false
		}
		var out []string
		acc := []string{""}
		for k := 0; k <= re.Max; k++ {
			if k >= re.Min {
				if out, ok = union(out, acc); !ok {
					return nil, false
				}
			}
			if k < re.Max {
				if acc, ok = product(acc, sub); !ok {
					return nil, false
				}
			}
		}
		return out, true
	case syntax.OpConcat:
		acc := []string{""}
		for _, s := range re.Sub {
			set, ok := lang(s, exact)
			if !ok {
				return nil, false
			}
			if acc, ok = product(acc, set); !ok {
				return nil, false
			}
		}
		return acc, true
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			set, ok := lang(s, exact)
			if !ok {
				return nil, false
			}
			if out, ok = union(out, set); !ok {
				return nil, false
			}
		}
		return out, true
	}
	return nil, false
}

func product(a, b []string) ([]string, bool) {
	if len(a)*len(b) > maxLangStrings {
		return nil, false
	}
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, x+y)
		}
	}
	return out, true
}

func union(a, b []string) ([]string, bool) {
	out := append([]string(nil), a...)
	for _, s := range b {
		dup := false
		for _, t := range out {
			if s == t {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out, len(out) <= maxLangStrings
}

// foldLower lowercases s the way the keyword prefilter compares text:
// ASCII letters, plus the two non-ASCII runes that Go's case-insensitive
// matching folds onto ASCII letters (U+212A KELVIN SIGN onto k, U+017F
// LATIN SMALL LETTER LONG S onto s). Other runes are kept as they are.
func foldLower(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case 'A' <= r && r <= 'Z':
			r += 'a' - 'A'
		case r == '\u212a':
			r = 'k'
		case r == '\u017f':
			r = 's'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// validKeyword reports whether a keyword can anchor windows: non-empty,
// valid UTF-8 and on one line.
func validKeyword(k string) bool {
	return k != "" && utf8.ValidString(k) && !strings.ContainsAny(k, "\r\n")
}

// maxBytes returns the longest match of re in bytes, or unbounded.
func maxBytes(re *syntax.Regexp) int { return maxOver(re, bytesOfLeaf) }

// bytesOfLeaf is maxBytes of a regexp without sub-expressions.
func bytesOfLeaf(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += runeMaxLen(r, re.Flags&syntax.FoldCase != 0)
		}
		return n
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return 0
		}
		return utf8.RuneLen(min(re.Rune[len(re.Rune)-1], utf8.MaxRune))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return utf8.UTFMax
	}
	return 0
}

// runeMaxLen is the longest UTF-8 encoding of r, or of any rune r
// case-folds to when fold is set.
func runeMaxLen(r rune, fold bool) int {
	n := utf8.RuneLen(r)
	if n < 0 {
		n = utf8.UTFMax
	}
	if fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			n = max(n, utf8.RuneLen(f))
		}
	}
	return n
}

func seqMaxBytes(seq []*syntax.Regexp) int {
	sum := 0
	for _, s := range seq {
		n := maxBytes(s)
		if n == unbounded {
			return unbounded
		}
		sum += n
	}
	return sum
}

// nullable reports whether re can match the empty string (conservatively
// true for anything not recognised).
func nullable(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune) == 0
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return false
	case syntax.OpCapture, syntax.OpPlus:
		return nullable(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min == 0 || nullable(re.Sub[0])
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !nullable(s) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if nullable(s) {
				return true
			}
		}
		return false
	case syntax.OpNoMatch:
		return false
	}
	return true
}

// anchoredPart is one way a rule's matches can be split around the part
// that spells a keyword: prefix · K · suffix, where K is a run of parts
// with a small finite language all of whose strings contain a keyword.
// Every match of the rule is a match of one of its anchoredParts.
type anchoredPart struct {
	// kstrings is K's language, lowercased as the prefilter folds.
	kstrings []string
	// prefixMax bounds the bytes a match has before K (unbounded: no
	// bound).
	prefixMax int
	// filter is a regex (K and the first parts after it, at most
	// filterMax bytes long) that matches at the start of K in every
	// match: a cheap necessary condition.
	filter    string
	filterMax int
	// pre is filter with relaxEnds applied, "" when that changes
	// nothing.
	pre string
	// tail is K · suffix: where a match of the rule can end, given where
	// its K starts.
	tail string
	// prefixOK: the prefix is nothing or one bounded repetition of a
	// character class, class{0,prefixRunes} (lazy or greedy), so the
	// earliest start of a match whose K starts at q is found by walking
	// back from q over runes of the class (see prefixStart).
	prefixOK    bool
	class       []rune
	prefixRunes int
}

// filterBudget bounds filterMax: the filter runs on that many bytes.
const (
	filterBudget    = 96
	maxAnchorSplits = 16
)

// anchoredParts splits re (see anchoredPart); ok is false when it cannot.
func anchoredParts(re *syntax.Regexp, keywords []string) ([]anchoredPart, bool) {
	budget := maxAnchorSplits
	return splitSeq(flatten([]*syntax.Regexp{re}), keywords, &budget)
}

func splitSeq(seq []*syntax.Regexp, keywords []string, budget *int) ([]anchoredPart, bool) {
	for i := range seq {
		if nullable(seq[i]) {
			continue // K starts with a character: no assertion at its start
		}
		acc := []string{""}
		for j := i; j < len(seq); j++ {
			set, ok := language(seq[j])
			if !ok {
				break
			}
			if acc, ok = product(acc, set); !ok {
				break
			}
			if !allContain(acc, keywords) {
				continue
			}
			k := seq[i : j+1]
			p := anchoredPart{kstrings: acc, prefixMax: seqMaxBytes(seq[:i])}
			filter := append([]*syntax.Regexp(nil), k...)
			p.filterMax = seqMaxBytes(k)
			if p.filterMax == unbounded {
				return nil, false
			}
			for _, s := range seq[j+1:] {
				n := maxBytes(s)
				if n == unbounded || p.filterMax+n > filterBudget {
					break
				}
				filter = append(filter, s)
				p.filterMax += n
			}
			p.filter = concatString(filter)
			if f := (&syntax.Regexp{Op: syntax.OpConcat, Sub: filter}); hasEndOps(f) {
				p.pre = relaxEnds(f).String()
			}
			p.tail = concatString(seq[i:])
			p.class, p.prefixRunes, p.prefixOK = prefixClass(seq[:i])
			return []anchoredPart{p}, true
		}
	}
	// No run spells a keyword: try each branch of the first alternation.
	for i, s := range seq {
		alt := s
		for alt.Op == syntax.OpCapture {
			alt = alt.Sub[0]
		}
		if alt.Op != syntax.OpAlternate {
			continue
		}
		if *budget -= len(alt.Sub); *budget < 0 {
			return nil, false
		}
		var out []anchoredPart
		for _, b := range alt.Sub {
			branch := make([]*syntax.Regexp, 0, len(seq)+4)
			branch = append(branch, seq[:i]...)
			branch = append(branch, flatten([]*syntax.Regexp{b})...)
			branch = append(branch, seq[i+1:]...)
			parts, ok := splitSeq(branch, keywords, budget)
			if !ok {
				return nil, false
			}
			out = append(out, parts...)
		}
		return out, true
	}
	return nil, false
}

// prefixClass returns the class and the bound of a prefix that is nothing
// (n = 0) or one bounded repetition of a character class without U+FFFD
// (C{0,n}, C?), possibly captured; ok is false for any other prefix.
// U+FFFD is left out because invalid UTF-8 decodes to it: walking back
// over such bytes could count runes differently from the regex, which
// decodes forwards.
func prefixClass(seq []*syntax.Regexp) (class []rune, n int, ok bool) {
	if len(seq) == 0 {
		return nil, 0, true
	}
	if len(seq) > 1 {
		return nil, 0, false
	}
	re := seq[0]
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	switch {
	case re.Op == syntax.OpRepeat && re.Min == 0 && re.Max >= 0:
		n = re.Max
	case re.Op == syntax.OpQuest:
		n = 1
	default:
		return nil, 0, false
	}
	c := re.Sub[0]
	if c.Op != syntax.OpCharClass || classHas(c.Rune, utf8.RuneError) {
		return nil, 0, false
	}
	return c.Rune, n, true
}

func concatString(seq []*syntax.Regexp) string {
	if len(seq) == 1 {
		return seq[0].String()
	}
	return (&syntax.Regexp{Op: syntax.OpConcat, Sub: seq}).String()
}

// requiredLiterals returns strings (lowercased as foldLower does) one of
// which every match of re contains, or nil when it finds none. It is the
// cheap gate in front of path allowlist regexes.
func requiredLiterals(re *syntax.Regexp) []string {
	if set, ok := language(re); ok {
		if slices.Contains(set, "") {
			return nil
		}
		return set
	}
	switch re.Op {
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiterals(re.Sub[0])
		}
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			lits := requiredLiterals(s)
			if lits == nil {
				return nil
			}
			out = append(out, lits...)
		}
		return out
	case syntax.OpConcat:
		seq := flatten(re.Sub)
		var best []string
		better := func(c []string) {
			if c != nil && !slices.Contains(c, "") && (best == nil || minLen(c) > minLen(best)) {
				best = c
			}
		}
		for i := range seq {
			better(requiredLiterals(seq[i]))
			acc := []string{""}
			for j := i; j < len(seq); j++ {
				set, ok := language(seq[j])
				if !ok {
					break
				}
				if acc, ok = product(acc, set); !ok {
					break
				}
				better(acc)
			}
		}
		return best
	}
	return nil
}

// maxRequiredSets bounds the sets requiredSets returns.
const maxRequiredSets = 8

// requiredSets returns sets of byte strings such that every match of re
// contains one string of each set (case-sensitively: parts matching
// letters in either case give none). A text lacking every string of one
// set holds no match.
func requiredSets(re *syntax.Regexp) [][]string { return setsOf(re, exactLanguage, false) }

// setsOf is requiredSets over the strings lang gives (exactLanguage, or
// language for foldSets), joining alternatives when alternate is set.
func setsOf(re *syntax.Regexp, lang func(*syntax.Regexp) ([]string, bool), alternate bool) [][]string {
	var out [][]string
	add := func(set []string) {
		if len(set) > 0 && !slices.Contains(set, "") && len(out) < maxRequiredSets {
			out = append(out, set)
		}
	}
	if set, ok := lang(re); ok {
		add(set)
		return out
	}
	sub := func(re *syntax.Regexp) [][]string { return setsOf(re, lang, alternate) }
	switch re.Op {
	case syntax.OpCapture, syntax.OpPlus:
		return sub(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return sub(re.Sub[0])
		}
	case syntax.OpAlternate:
		if alternate {
			joinAlternatives(re.Sub, sub, add)
		}
	case syntax.OpConcat:
		// Runs of parts with small languages are multiplied out ("-"
		// then "u|-user" is "-u|--user"); other parts give their own
		// sets.
		concatSets(re.Sub, lang, sub, add)
	}
	return out
}

// concatSets gives add the required sets of a concatenation of subs:
// runs of parts whose language (lang) is small are multiplied out into
// one set, other parts give the sets sets finds in them.
func concatSets(subs []*syntax.Regexp, lang func(*syntax.Regexp) ([]string, bool), sets func(*syntax.Regexp) [][]string, add func([]string)) {
	acc := []string{""}
	for _, s := range flatten(subs) {
		if set, ok := lang(s); ok {
			if next, ok := product(acc, set); ok {
				acc = next
				continue
			}
			add(acc)
			acc = set
			continue
		}
		add(acc)
		acc = []string{""}
		for _, r := range sets(s) {
			add(r)
		}
	}
	add(acc)
}

// holdsRequired reports whether text holds a string of each set.
func holdsRequired(text []byte, sets [][]string) bool {
	for _, set := range sets {
		found := false
		for _, s := range set {
			if bytes.Contains(text, []byte(s)) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func minLen(set []string) int {
	n := -1
	for _, s := range set {
		if n < 0 || len(s) < n {
			n = len(s)
		}
	}
	return n
}
