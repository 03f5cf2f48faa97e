package ahocorasick_test

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/internal/ahocorasick"
)

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// naive finds every occurrence with plain comparisons, in the order All
// promises: by end offset, then longest first, then pattern index.
func naive(pats [][]byte, text []byte, fold bool) []ahocorasick.Match {
	eq := func(a, b []byte) bool {
		if !fold {
			return bytes.Equal(a, b)
		}
		for i := range a {
			if lower(a[i]) != lower(b[i]) {
				return false
			}
		}
		return true
	}
	var out []ahocorasick.Match
	for end := 1; end <= len(text); end++ {
		var at []ahocorasick.Match
		for i, p := range pats {
			if s := end - len(p); s >= 0 && eq(text[s:end], p) {
				at = append(at, ahocorasick.Match{Pattern: i, Start: s, End: end})
			}
		}
		slices.SortStableFunc(at, func(a, b ahocorasick.Match) int { return a.Start - b.Start })
		out = append(out, at...)
	}
	return out
}

func collect(m *ahocorasick.Matcher, text []byte) []ahocorasick.Match {
	var out []ahocorasick.Match
	for h := range m.All(text) {
		out = append(out, h)
	}
	return out
}

func TestAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{"ab", "abcAB", "kKsS\u212a\u017f-_.", "\x00\x01\xff\xfeaA"}
	for round := range 400 {
		alpha := alphabets[round%len(alphabets)]
		word := func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = alpha[rng.IntN(len(alpha))]
			}
			return b
		}
		fold := round%2 == 0
		var pats [][]byte
		for range 1 + rng.IntN(12) {
			pats = append(pats, word(1+rng.IntN(5)))
		}
		if round%5 == 0 {
			pats = append(pats, slices.Clone(pats[0])) // a repeated pattern
		}
		m, err := ahocorasick.New(pats, ahocorasick.Options{ASCIIFold: fold})
		if err != nil {
			t.Fatal(err)
		}
		if m.Len() != len(pats) {
			t.Fatalf("Len = %d, want %d", m.Len(), len(pats))
		}
		text := word(rng.IntN(300))
		got, want := collect(m, text), naive(pats, text, fold)
		if !slices.Equal(got, want) {
			t.Fatalf("patterns %q fold %v text %q:\ngot  %v\nwant %v", pats, fold, text, got, want)
		}
	}
}

func TestAllBytes(t *testing.T) {
	// Every byte value in some pattern: no column is left for "in no
	// pattern", and bytes above 127 must not fold.
	var pats [][]byte
	for b := range 256 {
		pats = append(pats, []byte{byte(b), byte(255 - b)})
	}
	for _, fold := range []bool{false, true} {
		m, err := ahocorasick.New(pats, ahocorasick.Options{ASCIIFold: fold})
		if err != nil {
			t.Fatal(err)
		}
		text := make([]byte, 2048)
		for i := range text {
			text[i] = byte(i * 7)
		}
		if got, want := collect(m, text), naive(pats, text, fold); !slices.Equal(got, want) {
			t.Fatalf("fold %v: %d matches, want %d", fold, len(got), len(want))
		}
	}
}

func TestStop(t *testing.T) {
	m, err := ahocorasick.New([][]byte{[]byte("a"), []byte("aa")}, ahocorasick.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range m.All([]byte(strings.Repeat("a", 100))) {
		n++
		if n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("n = %d", n)
	}
}

func TestEmptyPattern(t *testing.T) {
	if _, err := ahocorasick.New([][]byte{[]byte("x"), nil}, ahocorasick.Options{}); err == nil {
		t.Fatal("empty pattern accepted")
	}
	m, err := ahocorasick.New(nil, ahocorasick.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(m, []byte("anything")); len(got) != 0 {
		t.Fatalf("no patterns, got %v", got)
	}
}

// BenchmarkAll runs 300 keywords of 3–12 letters over 8 MB of text with a
// hit about every 100 bytes.
func BenchmarkAll(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	const letters = "abcdefghijklmnopqrstuvwxyz_-"
	var pats [][]byte
	for range 300 {
		p := make([]byte, 3+rng.IntN(10))
		for i := range p {
			p[i] = letters[rng.IntN(len(letters))]
		}
		pats = append(pats, p)
	}
	text := make([]byte, 0, 8<<20)
	for len(text) < 8<<20 {
		if rng.IntN(100) == 0 {
			text = append(text, pats[rng.IntN(len(pats))]...)
		} else {
			text = append(text, " \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=:\"{}()"[rng.IntN(70)])
		}
	}
	m, err := ahocorasick.New(pats, ahocorasick.Options{ASCIIFold: true})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	n := 0
	for b.Loop() {
		n = 0
		for range m.All(text) {
			n++
		}
	}
	b.ReportMetric(float64(n), "hits")
}
