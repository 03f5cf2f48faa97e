package secrets

import (
	"math/rand/v2"
	"regexp/syntax"
	"strings"
	"testing"
)

// TestGate checks that a part's gate passes every text its filter or
// pre-filter matches at the start of: generated matches, mutated (bytes
// replaced, inserted, cut) so that near misses and non-ASCII spellings
// are tried too. SECRETS_TEST_SEED varies the texts.
func TestGate(t *testing.T) {
	e := defaultEngine(t)
	rng := rand.New(rand.NewPCG(seed(), 5))
	noise := []string{" ", "\t", "\n", "=", ":", ",", ">", "|", "?", ")", "(", "{", "'", "\"", "`", "_", "-", ".",
		"a", "Z", "0", "\u212a", "\u017f", "\u00e9", "\xff", "\xc3", "key", "token"}
	gated, rejected, checked := 0, 0, 0
	for _, r := range e.rules {
		for _, p := range r.parts {
			if p.gate.ok {
				gated++
			}
			parsed, err := syntax.Parse(p.pre.String(), syntax.Perl)
			if err != nil {
				t.Fatal(err)
			}
			for range 200 {
				var m strings.Builder
				genMatch(rng, parsed, &m)
				b := []byte(m.String())
				for range rng.IntN(4) {
					i := rng.IntN(len(b) + 1)
					n := noise[rng.IntN(len(noise))]
					switch rng.IntN(3) {
					case 0: // insert
						b = append(b[:i:i], append([]byte(n), b[i:]...)...)
					case 1: // replace
						if i < len(b) {
							b = append(b[:i:i], append([]byte(n), b[i+1:]...)...)
						}
					default: // cut
						b = b[:i]
					}
				}
				b = append(b, noise[rng.IntN(len(noise))]...)
				checked++
				match := p.filter.Match(b) || p.pre.Match(b)
				if !p.gate.pass(b) {
					rejected++
					if match {
						t.Fatalf("%s: gate rejects %q, which the filter %s matches", r.id, b, p.pre)
					}
				}
			}
		}
	}
	if gated == 0 || rejected == 0 {
		t.Fatalf("%d parts gated, %d of %d texts rejected: the gate is never used", gated, rejected, checked)
	}
	t.Logf("%d parts gated, %d of %d texts rejected", gated, rejected, checked)
}
