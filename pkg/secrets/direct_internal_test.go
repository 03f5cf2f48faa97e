package secrets

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// directDoc returns a text for rule r: generated matches in assorted
// contexts, glued to keyword-dense, long-word and non-ASCII filler that
// moves match starts around (prefix walks cut by window starts, U+212A
// and U+017F in words, invalid UTF-8).
func directDoc(rng *rand.Rand, parsed *syntax.Regexp) []byte {
	fillers := []string{
		"", " ", "\n", "key", "api_key", "tokenkeysecret", "x.y-z_", "\u212aey", "\u017fecret",
		"\xe2\x84", "\xc5", "\xff", "é", "=", ": ", "'", "\"", strings.Repeat("a", 60), strings.Repeat("key", 30),
		"password = ", "auth:", "-u ", "curl ",
	}
	var doc bytes.Buffer
	for range 1 + rng.IntN(6) {
		for range rng.IntN(4) {
			doc.WriteString(fillers[rng.IntN(len(fillers))])
		}
		var m strings.Builder
		genMatch(rng, parsed, &m)
		s := m.String()
		if rng.IntN(4) == 0 && len(s) > 2 {
			// A damaged match: cut or doubled somewhere.
			i := rng.IntN(len(s))
			if rng.IntN(2) == 0 {
				s = s[:i] + s[i+1:]
			} else {
				s = s[:i] + s + s[i:]
			}
		}
		fmt.Fprintf(&doc, contexts[rng.IntN(len(contexts))], s, s, s)
	}
	return doc.Bytes()
}

// TestDirectEquivalent compares, for every rule using anchored runs
// (rule.direct), directMatches with the unanchored regex on every window,
// and the rule's findings with its plain regex over the whole text.
// SECRETS_TEST_SEED varies the documents.
func TestDirectEquivalent(t *testing.T) {
	e := defaultEngine(t)
	rng := rand.New(rand.NewPCG(seed(), 5))
	direct, windowsSeen, matches := 0, 0, 0
	for _, r := range e.rules {
		if !r.direct {
			continue
		}
		direct++
		parsed, err := syntax.Parse(r.re.String(), syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		for range 12 {
			d := directDoc(rng, parsed)
			sc := &scratch{seen: make([]bool, len(e.keywords))}
			sc.hits = e.pf.scan(d, nil, sc.seen)
			sc.lines.reset(d)
			sc.memo.ls = -1

			// Windows: anchored runs against the unanchored regex.
			sc.wins = anchoredWindows(r, e.keywords, &sc.lines, sc.hits, nil, sc)
			if !sc.inexact {
				// Starts: what the pre-filter, the gates and the reuse of
				// the pre-filter's result keep is what the filter alone
				// keeps.
				if want := filterStarts(r, d, &sc.lines, sc.hits); !slices.Equal(sortStarts(sc.starts), want) {
					t.Errorf("rule %s: starts %v in %q, the filter alone gives %v", r.id, sc.starts, d, want)
				}
				slices.SortFunc(sc.starts, func(a, b kStart) int { return int(a.q - b.q) })
				for _, w := range sc.wins {
					k := 0
					if w.start > 0 {
						k |= 1
					}
					if w.end < len(d) {
						k |= 2
					}
					re := r.re
					if r.innerMask&(1<<k) != 0 {
						re = r.innerRe(k)
					}
					want := re.FindAllIndex(d[w.start:w.end], maxMatches)
					got := directMatches(r, r.anchoredRe(k), d, w, sc)
					windowsSeen++
					matches += len(want)
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("rule %s, window %d-%d of %q: anchored runs %v, regex %v", r.id, w.start, w.end, d, got, want)
					}
				}
			}

			// Findings: the rule run as the engine does against its
			// plain regex over the whole text.
			sc.cand, sc.starts, sc.inexact = nil, nil, false
			e.runRule(r, "app/file.txt", d, sc)
			got := candKeys(sc.cand)
			sc.cand = nil
			e.matchIn(r, "app/file.txt", d, window{start: 0, end: len(d)}, sc, false)
			if want := candKeys(sc.cand); !slices.Equal(got, want) {
				t.Errorf("rule %s: findings differ in %q\n--- got\n%s\n--- want\n%s", r.id, d, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	}
	if direct == 0 || matches == 0 {
		t.Fatalf("%d direct rules, %d matches: the test tests nothing", direct, matches)
	}
	t.Logf("%d direct rules, %d windows, %d matches", direct, windowsSeen, matches)
}

// TestRequiredSets checks that generated matches of every rule hold a
// string of each of its required sets, and that curl-auth-user (the rule
// the sets are for) has a set beyond its keyword.
func TestRequiredSets(t *testing.T) {
	e := defaultEngine(t)
	rng := rand.New(rand.NewPCG(seed(), 6))
	for _, r := range e.rules {
		parsed, err := syntax.Parse(r.re.String(), syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		sets := requiredSets(parsed)
		if r.id == "curl-auth-user" && len(sets) < 2 {
			t.Errorf("curl-auth-user: required sets %q", sets)
		}
		for range 50 {
			var m strings.Builder
			genMatch(rng, parsed, &m)
			s := m.String()
			if loc := r.re.FindStringIndex(s); loc == nil || !holdsRequired([]byte(s[loc[0]:loc[1]]), sets) {
				if loc != nil {
					t.Errorf("rule %s: match %q lacks one of %q", r.id, s[loc[0]:loc[1]], sets)
				}
			}
		}
	}
	if !holdsRequired([]byte("curl -u a:b"), [][]string{{"curl"}, {" -u"}}) || holdsRequired([]byte("curl -x"), [][]string{{"curl"}, {" -u"}}) {
		t.Error("holdsRequired")
	}
}

// filterStarts is what anchoredWindows lists in sc.starts, from the
// filter alone: every candidate K start of every hit where it matches.
func filterStarts(r *rule, data []byte, li *lineIndex, hits []hit) []kStart {
	var out []kStart
	for _, h := range hits {
		if r.kwMask[h.kw/64]&(1<<(h.kw%64)) == 0 {
			continue
		}
		winEnd := li.lineEndAfter(int(h.end), r.newlines)
		for _, c := range r.cands[h.kw] {
			q := int(h.start) - c.off
			if q < 0 {
				continue
			}
			p := &r.parts[c.part]
			if p.filter.Match(data[q:min(winEnd, q+p.filterMax+utf8.UTFMax)]) {
				out = append(out, kStart{q: int32(q), part: int32(c.part)})
			}
		}
	}
	return sortStarts(out)
}

func sortStarts(s []kStart) []kStart {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b kStart) int { return cmp.Or(cmp.Compare(a.q, b.q), cmp.Compare(a.part, b.part)) })
	return s
}

// TestFoldSets checks that generated matches of every rule, respelled
// (letters in either case, U+212A for k, U+017F for s), hold a string of
// each of its folded required sets, and that kubernetes-secret-yaml (the
// rule they are for) has some. SECRETS_TEST_SEED varies the matches.
func TestFoldSets(t *testing.T) {
	e := defaultEngine(t)
	rng := rand.New(rand.NewPCG(seed(), 7))
	checked := 0
	for _, r := range e.rules {
		parsed, err := syntax.Parse(r.re.String(), syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		sets := foldSets(parsed)
		if r.id == "kubernetes-secret-yaml" && len(sets) < 2 {
			t.Errorf("kubernetes-secret-yaml: folded required sets %q", sets)
		}
		if len(sets) == 0 {
			continue
		}
		for range 100 {
			var m strings.Builder
			genMatch(rng, parsed, &m)
			var b strings.Builder
			for _, c := range m.String() {
				switch n := rng.IntN(4); {
				case n == 0 && (c == 'k' || c == 'K'):
					c = '\u212a'
				case n == 0 && (c == 's' || c == 'S'):
					c = '\u017f'
				case n == 1:
					c = unicode.ToUpper(c)
				case n == 2:
					c = unicode.ToLower(c)
				}
				b.WriteRune(c)
			}
			for _, s := range []string{m.String(), b.String()} {
				loc := r.re.FindStringIndex(s)
				if loc == nil {
					continue
				}
				checked++
				if !holdsFold([]byte(s[loc[0]:loc[1]]), sets) {
					t.Errorf("rule %s: match %q lacks one of %q", r.id, s[loc[0]:loc[1]], sets)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no match checked")
	}
}

// TestFoldIndex compares foldIndex with a search in a lowercased copy.
func TestFoldIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(), 8))
	alphabet := "aAdDtT:;eE \n\xc5"
	for _, needle := range []string{"data:", "ecret", "ind:", "ata", ":da"} {
		for range 2000 {
			b := make([]byte, rng.IntN(30))
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			if rng.IntN(4) == 0 {
				i := rng.IntN(len(b) + 1)
				b = append(b[:i:i], append([]byte(strings.ToUpper(needle)), b[i:]...)...)
			}
			if got, want := foldIndex(b, needle), bytes.Index(asciiLower(b), []byte(needle)); got != want {
				t.Fatalf("foldIndex(%q, %q) = %d, want %d", b, needle, got, want)
			}
		}
	}
}

func asciiLower(b []byte) []byte {
	out := slices.Clone(b)
	for i, c := range out {
		if 'A' <= c && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return out
}
