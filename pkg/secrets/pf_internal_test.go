package secrets

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestPrefilter compares the automaton with a plain search for every
// keyword in a folded copy of the text.
func TestPrefilter(t *testing.T) {
	keywords := []string{"key", "api", "-----begin", "ghp_", "sk", "s.", "ey", "q~", "akia", "passwd", "password", "\u00e9t\u00e9"}
	p, err := newPrefilter(keywords)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"k", "K", "e", "E", "y", "a", "p", "i", "s", "S", ".", "-", "b", "g", "h", "_", "q", "~", " ", "\n", "\u212a", "\u017f", "w", "o", "r", "d", "\u00e9", "t", "\u00c9"}
	for n := 0; n < 300; n++ {
		var b strings.Builder
		for range rng.IntN(200) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		if n%3 == 0 {
			b.WriteString("-----BEGIN PRIVATE KEY----- GHP_x ApI pAsSwOrD \u212aey \u017f.")
		}
		text := b.String()
		seen := make([]bool, len(keywords))
		var got []string
		for _, h := range p.scan([]byte(text), nil, seen) {
			got = append(got, strings.Join([]string{keywords[h.kw], text[h.start:h.end]}, "@")+string(rune('0'+h.start%10)))
		}
		var want []string
		for ki, k := range keywords {
			for _, sp := range spellings(k) {
				for i := 0; i+len(sp) <= len(text); i++ {
					if asciiFoldEq(text[i:i+len(sp)], sp) {
						want = append(want, strings.Join([]string{keywords[ki], text[i : i+len(sp)]}, "@")+string(rune('0'+i%10)))
					}
				}
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("text %q:\ngot  %q\nwant %q", text, got, want)
		}
	}
}

func asciiFoldEq(a, lower string) bool {
	if len(a) != len(lower) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if toLowerASCII(a[i]) != lower[i] {
			return false
		}
	}
	return true
}

func toLowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
