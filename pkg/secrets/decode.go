package secrets

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"slices"
)

// Encoded secrets: like gitleaks' decoder (detect/codec, which its CLI
// runs 5 levels deep), segments of a text that look base64-, hex- or
// percent-encoded and decode to printable ASCII are decoded, and the
// rules run again over the decoded text in its context (the rest of its
// line, so that "password: <base64>" still has its keyword); a finding
// there is reported with the encodings it was found under. Decoded
// segments are searched for further encodings, to DefaultDecodeDepth
// levels. gitleaks' codec package is not used as is: it logs every
// decoded value at debug level (secrets in logs), runs a combined regular
// expression over the whole text at every level, and has no work bound.
//
// Work is linear in the text: segments are found by one pass over the
// bytes; a run of identifier characters without a digit or a base64
// symbol (most code) is not decoded, as in gitleaks; a segment decoding
// to anything but printable ASCII is dropped at its first bad byte;
// nested levels only look inside decoded values; and at most
// maxDecodedBytes of decoded text in maxSegments segments (all levels
// together, each searched with decodeContext bytes of its line either
// side) are searched per text.

// DefaultDecodeDepth is how many nested encodings are decoded by default
// (gitleaks' CLI default).
const DefaultDecodeDepth = 5

const (
	maxDecodedBytes = 1 << 20
	maxSegments     = 1024
	// decodeContext is how much of the line around a segment the rules
	// see with its decoded value (a key name and its assignment).
	decodeContext = 96
	minBase64     = 16
	minHex        = 32
)

// Encodings, outermost first in Finding.Encoded ("percent+base64": a
// base64 text, percent-encoded).
const (
	encBase64  = "base64"
	encHex     = "hex"
	encPercent = "percent"
)

// segment is an encoded run of text and what it decodes to.
type segment struct {
	start, end int // in the text searched
	enc        string
	value      []byte
}

// Byte classes, one table lookup per byte of a run.
const (
	clsBase64 = 1 << iota // [A-Za-z0-9_/+-]: gitleaks' [\w/+-]
	clsLikely             // digits and symbols: a base64 run has one
	clsHex                // [0-9A-Fa-f]
)

var (
	class  [256]uint8
	hexVal [256]byte // 0xff: not a hex digit
)

func init() {
	for c := 0; c < 256; c++ {
		hexVal[c] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		class[c], hexVal[c] = clsBase64|clsLikely|clsHex, byte(c-'0')
	}
	for c := 'a'; c <= 'z'; c++ {
		class[c], class[c-'a'+'A'] = clsBase64, clsBase64
	}
	for c := 'a'; c <= 'f'; c++ {
		hexVal[c], hexVal[c-'a'+'A'] = byte(c-'a'+10), byte(c-'a'+10)
		class[c] |= clsHex
		class[c-'a'+'A'] |= clsHex
	}
	for _, c := range "_/+-" {
		class[c] = clsBase64 | clsLikely
	}
}

// printable is gitleaks' printable ASCII: tab, newlines and ' '..'~'.
func printable(c byte) bool { return c > 0x08 && c < 0x7f }

// decodeBudget is what is left of one text's decoding work.
type decodeBudget struct {
	bytes    int // decoded bytes
	segments int // segments searched
}

func (b *decodeBudget) spent() bool { return b.bytes <= 0 || b.segments <= 0 }

// findSegments returns the encoded segments of text that decode to
// printable ASCII, in order, within budget (decreased).
//
// Percent-encoded runs are found with bytes.IndexByte; base64 and hex
// runs, which must be at least minBase64 bytes long, by looking at every
// minBase64-th byte first: a run that long covers one of them, so text
// made of short words (most of it) is mostly skipped.
func findSegments(text []byte, budget *decodeBudget) []segment {
	return findSegmentsWith(text, budget, decodeBase64)
}

// findSegmentsWith is findSegments with decodeB64 as the base64 decoder
// (the differential test gives it the previous one).
func findSegmentsWith(text []byte, budget *decodeBudget, decodeB64 func([]byte) []byte) []segment {
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
			v, enc = decodeB64(text[start:end]), encBase64
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

// decodePercent decodes every %XX of s; nil unless at least one decoded
// byte and all of them are printable.
func decodePercent(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && hexVal[s[i+1]] != 0xff && hexVal[s[i+2]] != 0xff {
			b := hexVal[s[i+1]]<<4 | hexVal[s[i+2]]
			if !printable(b) {
				return nil
			}
			out = append(out, b)
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}

// decodeHex decodes an even-length hex run to printable ASCII, else nil.
func decodeHex(s []byte) []byte {
	if len(s)%2 != 0 {
		return nil
	}
	out := make([]byte, len(s)/2)
	for i := 0; i < len(s); i += 2 {
		b := hexVal[s[i]]<<4 | hexVal[s[i+1]]
		if !printable(b) {
			return nil
		}
		out[i/2] = b
	}
	return out
}

// decodeBase64 decodes standard (padded or not) or URL-safe base64 to
// printable ASCII, else nil.
func decodeBase64(s []byte) []byte {
	if !base64MayBePrintable(s) {
		return nil
	}
	// One buffer for the four tries: most runs are not base64 of text,
	// and an allocation per try was most of this pass's garbage.
	// Unpadded lengths are the longest (padded ones round down).
	buf := make([]byte, base64.RawStdEncoding.DecodedLen(len(s)))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		out := buf[:enc.DecodedLen(len(s))]
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

// base64MayBePrintable reports whether s can decode to printable ASCII
// in some alphabet: in both, a quartet's first character gives the top
// six bits of its first byte, so that byte is below 0x80 only if the
// character is one of the 32 of value below 32, [A-Za-f]. Most runs that
// look like base64 (paths, identifiers, hashes) fail this on an early
// quartet, and are not decoded four times for nothing.
func base64MayBePrintable(s []byte) bool {
	n := len(s)
	for n > 0 && s[n-1] == '=' {
		n--
	}
	// Quartet k yields a byte when it has two characters or more.
	for k := 0; k+1 < n; k += 4 {
		if c := s[k]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// decoded is a finding made in decoded text: c's offsets are in
// snippet, the decoded segments of one level with their context, one per
// line.
type decoded struct {
	c        candidate
	snippet  []byte
	cands    []candidate // every finding of snippet, for its excerpt
	encoded  string      // encodings, outermost first
	start    int         // the outermost segment in the text
	end      int
	line     int
	encodedS string // the outermost segment's text (redacted from other excerpts)
}

// region is a decoded value to search for further encodings: bytes
// [start, end) of the current level's text.
type region struct {
	start, end int
	top        *segment // the outermost segment it comes from
	chain      string   // encodings so far, outermost first
}

// snippetInfo places one segment's decoded context in a level's text.
type snippetInfo struct {
	start, end int // the snippet (its line)
	ds, de     int // the decoded value in it
	top        *segment
	chain      string
}

// detectEncoded finds secrets in the encoded segments of text (see the
// top of this file), at most limit, skipping those plain already holds.
// Each level's segments are decoded into one text, each in its context
// on a line of its own, and the rules run once over it.
func (e *Engine) detectEncoded(path string, text []byte, limit int, plain []candidate) []decoded {
	if e.decodeDepth <= 0 || limit <= 0 {
		return nil
	}
	budget := decodeBudget{bytes: maxDecodedBytes, segments: maxSegments}
	seen := map[seenKey]bool{}
	for i := range plain {
		seen[seenKey{plain[i].r.id, secretHash(plain[i].secret)}] = true
	}
	var out []decoded
	var li lineIndex
	li.reset(text)
	cur := text
	regions := []region{{start: 0, end: len(text)}}
	for depth := 1; depth <= e.decodeDepth && len(regions) > 0 && !budget.spent(); depth++ {
		var buf []byte
		var snips []snippetInfo
		var next []region
		for _, rg := range regions {
			for _, sg := range findSegments(cur[rg.start:rg.end], &budget) {
				sg.start, sg.end = sg.start+rg.start, sg.end+rg.start
				top := rg.top
				if top == nil {
					top = &sg
				}
				chain := sg.enc
				if rg.chain != "" {
					chain = rg.chain + "+" + sg.enc
				}
				// The segment decoded in its line, decodeContext bytes
				// either side.
				ls := max(lastIndexNL(cur[:sg.start])+1, sg.start-decodeContext)
				le := len(cur)
				if k := indexNL(cur[sg.end:]); k >= 0 {
					le = sg.end + k
				}
				le = min(le, sg.end+decodeContext)
				si := snippetInfo{start: len(buf), top: top, chain: chain}
				buf = append(buf, cur[ls:sg.start]...)
				si.ds = len(buf)
				buf = append(buf, sg.value...)
				si.de = len(buf)
				buf = append(buf, cur[sg.end:le]...)
				si.end = len(buf)
				buf = append(buf, '\n')
				snips = append(snips, si)
				next = append(next, region{start: si.ds, end: si.de, top: top, chain: chain})
			}
		}
		if len(snips) == 0 {
			break
		}
		cands := e.detect(path, buf, maxCandidates)
		for k := range cands {
			c := cands[k]
			i, _ := slices.BinarySearchFunc(snips, c.secretStart, func(s snippetInfo, pos int) int { return cmp.Compare(s.end, pos) })
			if i == len(snips) {
				continue
			}
			si := &snips[i]
			if c.secretStart < si.start || c.secretEnd > si.end || c.secretEnd <= si.ds || c.secretStart >= si.de {
				continue // not in one decoded value: the level above has it
			}
			key := seenKey{c.r.id, secretHash(c.secret)}
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, decoded{c: c, snippet: buf, cands: cands, encoded: si.chain,
				start: si.top.start, end: si.top.end, line: li.count(si.top.start) + 1,
				encodedS: string(text[si.top.start:si.top.end])})
			if len(out) >= limit {
				return out
			}
		}
		cur, regions = buf, next
	}
	return out
}

func secretHash(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }
