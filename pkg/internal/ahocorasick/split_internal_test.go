package ahocorasick

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// allOneStream is All as it was before the text was split in several
// streams: the reference TestSplitDifferential compares All with.
func (m *Matcher) allOneStream(text []byte, limit int) []Match {
	var out []Match
	var s uint32
	for i, b := range text {
		s = m.delta[s+uint32(m.class[b])]
		if s < m.outStart {
			continue
		}
		for _, p := range m.out[(s-m.outStart)/m.stride] {
			if len(out) == limit {
				return out
			}
			out = append(out, Match{Pattern: int(p), Start: i + 1 - int(m.lens[p]), End: i + 1})
		}
	}
	return out
}

// TestSplitDifferential compares All with one stream over texts around
// minSplit and longer, with patterns up to longer than the later
// streams' warm-up matters for (matches across the quarters' boundaries,
// long patterns whose states are deep there), and with the caller
// stopping early at every point (in the first quarter, in the buffered
// later ones, in the remainder).
func TestSplitDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	alphabets := []string{"ab", "abcAB", "aaaaab", "kKsS\u212a\u017f-_."}
	for round := range 3000 {
		alpha := alphabets[round%len(alphabets)]
		word := func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = alpha[rng.IntN(len(alpha))]
			}
			return b
		}
		var pats [][]byte
		for range 1 + rng.IntN(8) {
			n := 1 + rng.IntN(6)
			if rng.IntN(4) == 0 {
				n = 1 + rng.IntN(300) // deep states at the middle
			}
			pats = append(pats, word(n))
		}
		m, err := New(pats, Options{ASCIIFold: round%2 == 0})
		if err != nil {
			t.Fatal(err)
		}
		text := word(minSplit - 3 + rng.IntN(700))
		if round%3 == 0 {
			// Patterns across the quarters' boundaries, where the later
			// streams start, and the text of one letter.
			for k := 1; k <= 3; k++ {
				p := pats[rng.IntN(len(pats))]
				at := max(0, k*(len(text)/4)-rng.IntN(len(p)+1))
				copy(text[at:], p)
			}
		}
		want := m.allOneStream(text, -1)
		var got []Match
		for x := range m.All(text) {
			got = append(got, x)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("patterns %q text %q:\ngot  %v\nwant %v", pats, text, got, want)
		}
		// Several blocks: the state carried from block to block, blocks
		// that leave a remainder.
		for _, part := range []int{minSplit / 4, 150, 201, 333} {
			var blocks []Match
			m.all(text, part, func(x Match) bool { blocks = append(blocks, x); return true })
			if !slices.Equal(blocks, want) {
				t.Fatalf("part %d, patterns %q text %q:\ngot  %v\nwant %v", part, pats, text, blocks, want)
			}
			if len(want) > 0 {
				limit := rng.IntN(len(want) + 1)
				var some []Match
				m.all(text, part, func(x Match) bool {
					if len(some) == limit {
						return false
					}
					some = append(some, x)
					return true
				})
				if w := m.allOneStream(text, limit); !slices.Equal(some, w) {
					t.Fatalf("part %d, stopped at %d: got %v, want %v", part, limit, some, w)
				}
			}
		}
		if len(want) > 0 {
			limit := rng.IntN(len(want) + 1)
			got = got[:0]
			for x := range m.All(text) {
				if len(got) == limit {
					break
				}
				got = append(got, x)
			}
			if w := m.allOneStream(text, limit); !slices.Equal(got, w) {
				t.Fatalf("stopped at %d: got %v, want %v", limit, got, w)
			}
		}
	}
}
