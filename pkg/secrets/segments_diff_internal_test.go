package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"net/url"
	"reflect"
	"slices"
	"testing"
)

// TestFindSegmentsDifferential compares findSegments with the reference
// (refFindSegments, the pass as it was before base64MayBePrintable, with
// refDecodeBase64) on random texts over the characters
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
		got, want := findSegments(text, &bud), refFindSegments(text, &refBud)
		if !reflect.DeepEqual(got, want) || bud != refBud {
			t.Fatalf("text %q:\ngot  %+v %+v\nwant %+v %+v", text, got, bud, want, refBud)
		}
		segs += len(want)
	}
	if segs < 5000 {
		t.Fatalf("only %d segments found: the texts do not exercise the decoders", segs)
	}
}

// refFindSegments is findSegments with the previous base64 decoder.
func refFindSegments(text []byte, budget *decodeBudget) []segment {
	var pct, runs []segment
	var skip [][2]int // percent ranges, also those that did not decode
	for i := 0; i < len(text) && !budget.spent(); {
		k := bytes.IndexByte(text[i:], '%')
		if k < 0 {
			break
		}
		i += k
		if i+2 >= len(text) || hexVal[text[i+1]] == 0xff || hexVal[text[i+2]] == 0xff {
			i++
			continue
		}
		// From this %XX to the last %XX of the line (gitleaks:
		// %XX(?:.*%XX)?).
		le := bytes.IndexByte(text[i:], '\n')
		if le < 0 {
			le = len(text)
		} else {
			le += i
		}
		end := i + 3
		for j := le - 3; j > i; j-- {
			if text[j] == '%' && hexVal[text[j+1]] != 0xff && hexVal[text[j+2]] != 0xff {
				end = j + 3
				break
			}
		}
		skip = append(skip, [2]int{i, end})
		if v := decodePercent(text[i:end]); v != nil {
			pct = append(pct, segment{start: i, end: end, enc: encPercent, value: v})
			budget.bytes -= len(v)
			budget.segments--
		}
		i = end
	}
	// Invariant: i == 0 or text[i-1] is not a base64 character, so a run
	// found from a later byte starts at or after i.
	si := 0
	for i := 0; i+minBase64 <= len(text) && !budget.spent(); {
		p := i + minBase64 - 1
		if class[text[p]]&clsBase64 == 0 {
			i = p + 1
			continue
		}
		start := p
		for start > i && class[text[start-1]]&clsBase64 != 0 {
			start--
		}
		any, all := uint8(0), uint8(0xff)
		j := start
		for j < len(text) {
			k := class[text[j]]
			if k&clsBase64 == 0 {
				break
			}
			any |= k
			all &= k
			j++
		}
		end := j
		for end < len(text) && end-j < 2 && text[end] == '=' {
			end++
		}
		i = end
		if j-start < minBase64 {
			continue
		}
		// A run touching a percent range is part of it.
		for si < len(skip) && skip[si][1] < start {
			si++
		}
		if si < len(skip) && skip[si][0] <= end && start <= skip[si][1] {
			continue
		}
		likely, hexOnly := any&clsLikely != 0, all&clsHex != 0
		if !likely {
			continue
		}
		var v []byte
		enc := ""
		if hexOnly && j-start >= minHex {
			v, enc = decodeHex(text[start:j]), encHex
		}
		if v == nil {
			v, enc = refDecodeBase64(text[start:end]), encBase64
		}
		if v != nil {
			if enc == encHex {
				end = j
			}
			runs = append(runs, segment{start: start, end: end, enc: enc, value: v})
			budget.bytes -= len(v)
			budget.segments--
		}
	}
	if len(pct) == 0 {
		return runs
	}
	out := append(pct, runs...)
	slices.SortFunc(out, func(a, b segment) int { return a.start - b.start })
	return out
}
