package secrets

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

// refDecodeBase64 is decodeBase64 as it was before base64MayBePrintable:
// every alphabet tried, the output checked byte by byte.
func refDecodeBase64(s []byte) []byte {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		out := make([]byte, enc.DecodedLen(len(s)))
		n, err := enc.Decode(out, s)
		if err != nil {
			continue
		}
		out = out[:n]
		ok := n > 0
		for _, b := range out {
			if !printable(b) {
				ok = false
				break
			}
		}
		if ok {
			return out
		}
	}
	return nil
}

// TestDecodeBase64Differential compares decodeBase64 with the reference
// on random runs of base64 characters (with '=' anywhere, not only as
// padding) and on encodings of printable and nearly printable text, cut
// and mutated, where the early rejection has to be exact.
func TestDecodeBase64Differential(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, seed()))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_="
	encs := []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}
	check := func(s []byte) {
		t.Helper()
		got, want := decodeBase64(s), refDecodeBase64(s)
		if (got == nil) != (want == nil) || !bytes.Equal(got, want) {
			t.Fatalf("decodeBase64(%q) = %q, want %q", s, got, want)
		}
	}
	decodedAny := 0
	for range 200000 {
		var s []byte
		switch rng.IntN(3) {
		case 0:
			s = make([]byte, rng.IntN(40))
			for i := range s {
				s[i] = alphabet[rng.IntN(len(alphabet))]
			}
		default:
			plain := make([]byte, rng.IntN(40))
			for i := range plain {
				plain[i] = byte(0x07 + rng.IntN(0x7a)) // 0x07..0x80: just outside printable both ends
				if rng.IntN(4) != 0 {
					plain[i] = byte(0x20 + rng.IntN(0x5f))
				}
			}
			s = []byte(encs[rng.IntN(len(encs))].EncodeToString(plain))
			for range rng.IntN(3) {
				if len(s) > 0 {
					s[rng.IntN(len(s))] = alphabet[rng.IntN(len(alphabet))]
				}
			}
			if rng.IntN(4) == 0 && len(s) > 0 {
				s = s[rng.IntN(len(s)):]
			}
		}
		if refDecodeBase64(s) != nil {
			decodedAny++
		}
		check(s)
	}
	if decodedAny < 10000 {
		t.Fatalf("only %d inputs decode: the test does not reach the accepting side", decodedAny)
	}
	for _, s := range []string{"", "=", "==", "QQ", "QQ==", "QQ=", "fw==", "fw", "f/8=", "Zg==", "gA==", "/w", "-w", "_w", "QUJD", "QUJDRA==", "QUJDRA", "QQ==QQ==", "Q", "QUJ", "QUJDR"} {
		check([]byte(s))
	}
}
