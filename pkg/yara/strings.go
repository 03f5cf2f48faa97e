package yara

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/VirusTotal/gyp/ast"
)

// maxMatches bounds the matches recorded per string and file (YARA's
// limit too); a string reaching it stops being searched.
const maxMatches = 1_000_000

// maxHexSteps bounds the backtracking work of verifying one hex string
// candidate (jumps and alternatives), and hexBudget the work spent on one
// hex string in one file: hostile data cannot make a rule with jumps
// quadratic. A string out of budget stops matching in that file.
const (
	maxHexSteps = 1 << 16
	hexBudget   = 1 << 24
)

// maxUnboundedJump bounds how far an unbounded jump ("[n-]") looks.
const maxUnboundedJump = 1 << 20

// str is one compiled string of a rule.
type str struct {
	id       string // without "$"; "" for anonymous strings
	rule     int
	fullword bool
	// variants are the byte sequences of a text string (ascii and/or
	// wide); a hex string has one variant, hex.
	variants []variant
	hex      []hexTok
	// atomOff is the offset of a hex string's atom from the string's
	// start (the atom lies in the fixed-length prefix). bruteForce is set
	// when the hex string has no fixed byte there: every offset is tried.
	atomOff    int
	bruteForce bool
}

type variant struct {
	pat    []byte
	nocase bool
	wide   bool
}

// hexTok is one token of a compiled hex string.
type hexTok struct {
	// bytes (kind hexBytes): value, mask and negation per byte.
	val, mask []byte
	not       []bool
	// jump (kind hexJump): min and max bytes skipped (max -1: unbounded).
	min, max int
	// alternatives (kind hexAlt).
	alts [][]hexTok
	kind uint8
}

const (
	hexBytes uint8 = iota
	hexJump
	hexAlt
)

// atom is a literal that must occur for str s to match: the AC
// automaton finds its occurrences, verify confirms them.
type atom struct {
	str     int // index in Rules.strs
	variant int // for text strings
	off     int // atom offset within the string (hex)
	length  int
}

func (c *compiler) compileString(rule *ast.Rule, s ast.String) (*str, error) {
	where := func(format string, args ...any) error {
		msg := fmt.Sprintf("yara: rule %s: string $%s (line %d): %s", rule.Identifier, s.GetIdentifier(), s.GetLineNo(), fmt.Sprintf(format, args...))
		if strings.Contains(format, "unsupported construct") {
			return &UnsupportedError{msg}
		}
		return errors.New(msg)
	}
	switch v := s.(type) {
	case *ast.TextString:
		if v.Base64 || v.Base64Wide {
			return nil, where("unsupported construct: base64 modifier")
		}
		text, err := strconv.Unquote(`"` + v.Value + `"`)
		if err != nil {
			return nil, where("invalid escape in %q: %v", v.Value, err)
		}
		if text == "" {
			return nil, where("empty string")
		}
		out := &str{id: v.Identifier, fullword: v.Fullword}
		if v.ASCII || !v.Wide {
			out.variants = append(out.variants, variant{pat: []byte(text), nocase: v.Nocase})
		}
		if v.Wide {
			w := make([]byte, 0, 2*len(text))
			for i := 0; i < len(text); i++ {
				w = append(w, text[i], 0)
			}
			out.variants = append(out.variants, variant{pat: w, nocase: v.Nocase, wide: true})
		}
		if v.Xor {
			// One variant per key, as YARA: every byte (the zero bytes
			// of wide strings too) xor-ed with the key.
			if v.Nocase {
				return nil, where("xor and nocase cannot be combined")
			}
			plain := out.variants
			out.variants = nil
			for k := v.XorMin; k <= v.XorMax; k++ {
				for _, p := range plain {
					x := make([]byte, len(p.pat))
					for i, b := range p.pat {
						x[i] = b ^ byte(k)
					}
					out.variants = append(out.variants, variant{pat: x, wide: p.wide})
				}
			}
		}
		return out, nil
	case *ast.HexString:
		toks, err := compileHex(v.Tokens, false)
		if err != nil {
			if strings.Contains(err.Error(), "unsupported construct") {
				return nil, where("unsupported construct: %v", strings.TrimPrefix(err.Error(), "unsupported construct: "))
			}
			return nil, where("%v", err)
		}
		out := &str{id: v.Identifier, hex: toks}
		out.atomOff, out.variants = hexAtom(toks)
		out.bruteForce = out.variants == nil
		return out, nil
	case *ast.RegexpString:
		return nil, where("unsupported construct: regular expression %s", v.Regexp.String())
	}
	return nil, where("unsupported construct: string type %T", s)
}

func compileHex(tokens ast.HexTokens, inAlt bool) ([]hexTok, error) {
	var out []hexTok
	for _, t := range tokens {
		switch v := t.(type) {
		case *ast.HexBytes:
			out = append(out, hexTok{kind: hexBytes, val: v.Bytes, mask: v.Masks, not: v.Nots})
		case *ast.HexJump:
			j := hexTok{kind: hexJump, min: v.Start, max: v.End}
			if v.End == 0 {
				j.max = -1 // gyp: End 0 is "[n-]" or "[-]"
			}
			if j.max == -1 && inAlt {
				return nil, fmt.Errorf("unbounded jump inside an alternative")
			}
			out = append(out, j)
		case *ast.HexOr:
			alt := hexTok{kind: hexAlt}
			for _, a := range v.Alternatives {
				seq, ok := a.(ast.HexTokens)
				if !ok {
					return nil, fmt.Errorf("unsupported construct: hex alternative %T", a)
				}
				sub, err := compileHex(seq, true)
				if err != nil {
					return nil, err
				}
				alt.alts = append(alt.alts, sub)
			}
			out = append(out, alt)
		default:
			return nil, fmt.Errorf("unsupported construct: hex token %T", t)
		}
	}
	return out, nil
}

// fixedLen returns the length every match of toks has, or -1.
func fixedLen(toks []hexTok) int {
	n := 0
	for _, t := range toks {
		switch t.kind {
		case hexBytes:
			n += len(t.val)
		case hexJump:
			if t.min != t.max {
				return -1
			}
			n += t.min
		case hexAlt:
			l := -1
			for _, a := range t.alts {
				al := fixedLen(a)
				if al < 0 || (l >= 0 && al != l) {
					return -1
				}
				l = al
			}
			n += l
		}
	}
	return n
}

// hexAtom picks the longest run of fully specified bytes in the
// fixed-length prefix of a hex string: its offset and a single variant
// holding it. None when the prefix has no such byte.
func hexAtom(toks []hexTok) (int, []variant) {
	bestOff, bestLen := 0, 0
	var best []byte
	off := 0
	for _, t := range toks {
		switch t.kind {
		case hexBytes:
			runStart := -1
			for i := 0; i <= len(t.val); i++ {
				fixed := i < len(t.val) && t.mask[i] == 0xFF && !t.not[i]
				if fixed && runStart < 0 {
					runStart = i
				}
				if !fixed && runStart >= 0 {
					if l := i - runStart; l > bestLen {
						bestOff, bestLen, best = off+runStart, l, t.val[runStart:i]
					}
					runStart = -1
				}
			}
			off += len(t.val)
		default:
			l := fixedLen([]hexTok{t})
			if l < 0 {
				goto done
			}
			off += l
		}
	}
done:
	if bestLen == 0 {
		return 0, nil
	}
	return bestOff, []variant{{pat: append([]byte(nil), best...)}}
}

// hexMatch reports the end of a match of toks starting at pos in data
// (the first found: jumps shortest first, alternatives in order).
func hexMatch(toks []hexTok, data []byte, pos int, budget *int) (int, bool) {
	steps := 0
	end := -1
	var seq func(toks []hexTok, pos int, k func(int) bool) bool
	seq = func(toks []hexTok, pos int, k func(int) bool) bool {
		steps++
		*budget--
		if steps > maxHexSteps || *budget <= 0 {
			return false
		}
		if len(toks) == 0 {
			return k(pos)
		}
		t, rest := &toks[0], toks[1:]
		switch t.kind {
		case hexBytes:
			if pos+len(t.val) > len(data) {
				return false
			}
			for i, v := range t.val {
				eq := data[pos+i]&t.mask[i] == v&t.mask[i]
				if eq == t.not[i] {
					return false
				}
			}
			return seq(rest, pos+len(t.val), k)
		case hexJump:
			hi := t.max
			if hi < 0 {
				hi = min(len(data)-pos, maxUnboundedJump)
			}
			for n := t.min; n <= hi && pos+n <= len(data); n++ {
				if seq(rest, pos+n, k) {
					return true
				}
				if steps > maxHexSteps || *budget <= 0 {
					return false
				}
			}
			return false
		case hexAlt:
			for _, a := range t.alts {
				if seq(a, pos, func(p int) bool { return seq(rest, p, k) }) {
					return true
				}
			}
			return false
		}
		return false
	}
	ok := seq(toks, pos, func(p int) bool { end = p; return true })
	return end, ok
}
