package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"net/url"
	"reflect"
	"testing"
)

// TestFindSegmentsDifferential compares findSegments with the reference
// (findSegmentsWith refDecodeBase64, the pass as it was before
// base64MayBePrintable) on random texts over the characters
// that matter to it, with embedded encodings, and on short texts made of
// runs around the minBase64 boundary, with small budgets too.
func TestFindSegmentsDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, seed()))
	const chars = "ABCDEFabcdefxyzXYZ0123456789+/-_=% \n.\"'\t:"
	piece := func() string {
		plain := make([]byte, 4+rng.IntN(40))
		for i := range plain {
			plain[i] = byte(0x20 + rng.IntN(0x5f))
		}
		switch rng.IntN(5) {
		case 0:
			return base64.StdEncoding.EncodeToString(plain)
		case 1:
			return base64.RawURLEncoding.EncodeToString(plain)
		case 2:
			return hex.EncodeToString(plain)
		case 3:
			return url.QueryEscape(string(plain))
		}
		return "key_" + string(plain[:rng.IntN(len(plain))])
	}
	segs := 0
	for n := range 20000 {
		var b bytes.Buffer
		for b.Len() < rng.IntN(600) {
			if rng.IntN(3) == 0 {
				b.WriteString(piece())
				continue
			}
			for range 1 + rng.IntN(24) {
				b.WriteByte(chars[rng.IntN(len(chars))])
			}
		}
		text := b.Bytes()
		if n%4 == 0 {
			// Runs of exactly minBase64-1, minBase64, minBase64+1.
			text = text[:0]
			for range rng.IntN(8) {
				k := minBase64 - 1 + rng.IntN(3)
				for range k {
					text = append(text, chars[rng.IntN(16)])
				}
				text = append(text, " \n%="[rng.IntN(4)])
			}
		}
		bud := decodeBudget{bytes: maxDecodedBytes, segments: maxSegments}
		if n%7 == 0 {
			bud = decodeBudget{bytes: 1 + rng.IntN(64), segments: 1 + rng.IntN(3)}
		}
		refBud := bud
		got, want := findSegments(text, &bud), findSegmentsWith(text, &refBud, refDecodeBase64)
		if !reflect.DeepEqual(got, want) || bud != refBud {
			t.Fatalf("text %q:\ngot  %+v %+v\nwant %+v %+v", text, got, bud, want, refBud)
		}
		segs += len(want)
	}
	if segs < 5000 {
		t.Fatalf("only %d segments found: the texts do not exercise the decoders", segs)
	}
}
