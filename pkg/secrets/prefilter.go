package secrets

import (
	"fmt"
	"strings"
)

// prefilter finds every occurrence of the rules' keywords in a text,
// case-insensitively, in one pass: an Aho–Corasick automaton compiled to
// a dense DFA (256 transitions per state), built once and read-only
// afterwards (safe for concurrent use).
//
// Case folding matches foldLower: ASCII letters, and the UTF-8 spellings
// of U+212A (K) and U+017F (s), which Go's (?i) matching folds onto k and
// s, are inserted as extra spellings of keywords containing k or s.
type prefilter struct {
	// class maps a byte to its equivalence class: bytes in no keyword
	// share class 0, upper-case ASCII letters share their lower case's.
	class [256]uint8
	// delta[state<<classBits|class] is the next state, with outFlag set
	// when that state ends at least one keyword.
	delta []uint16
	// out[state] lists the patterns ending in state.
	out [][]pattern
}

const (
	classBits = 7
	outFlag   = 1 << 15
)

type pattern struct {
	kw  int32 // keyword index
	len int32 // byte length of this spelling
}

// hit is one keyword occurrence: data[start:end] spells keyword kw.
type hit struct {
	start, end int32
	kw         int32
}

func newPrefilter(keywords []string) (*prefilter, error) {
	type node struct {
		next [256]int32
		out  []pattern
	}
	nodes := []*node{{}}
	add := func(s string, kw int) {
		cur := 0
		for i := 0; i < len(s); i++ {
			c := s[i]
			nx := nodes[cur].next[c]
			if nx == 0 {
				nodes = append(nodes, &node{})
				nx = int32(len(nodes) - 1)
				nodes[cur].next[c] = nx
			}
			cur = int(nx)
		}
		nodes[cur].out = append(nodes[cur].out, pattern{kw: int32(kw), len: int32(len(s))})
	}
	for i, k := range keywords {
		for _, v := range spellings(k) {
			add(v, i)
		}
	}

	n := len(nodes)
	if n >= outFlag {
		return nil, fmt.Errorf("secrets: %d keyword states, more than %d", n, outFlag-1)
	}
	// Full automaton first (256 transitions per state), compressed below.
	full := make([]int32, n<<8)
	out := make([][]pattern, n)
	fail := make([]int32, n)
	queue := make([]int32, 0, n)
	for c := 0; c < 256; c++ {
		if nx := nodes[0].next[c]; nx != 0 {
			queue = append(queue, nx)
			full[c] = nx
		}
	}
	out[0] = nodes[0].out
	// Breadth-first: a state's failure link and row are complete before
	// its children need them.
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		out[s] = append(append([]pattern(nil), nodes[s].out...), out[fail[s]]...)
		for c := 0; c < 256; c++ {
			if nx := nodes[s].next[c]; nx != 0 {
				fail[nx] = full[int(fail[s])<<8|c]
				queue = append(queue, nx)
				full[int(s)<<8|c] = nx
			} else {
				full[int(s)<<8|c] = full[int(fail[s])<<8|c]
			}
		}
	}

	p := &prefilter{out: out}
	// Classes: one per byte used in a keyword (A-Z as a-z), 0 for the rest.
	var used [256]bool
	for s := 0; s < n; s++ {
		for c := 0; c < 256; c++ {
			if nodes[s].next[c] != 0 {
				used[c] = true
			}
		}
	}
	nc := 1
	for c := 0; c < 256; c++ {
		if used[c] {
			p.class[c] = uint8(nc)
			nc++
		}
	}
	if nc > 1<<classBits {
		return nil, fmt.Errorf("secrets: keywords use %d distinct bytes, more than %d", nc-1, 1<<classBits-1)
	}
	for c := 'A'; c <= 'Z'; c++ {
		p.class[c] = p.class[c+'a'-'A']
	}
	var rep [1 << classBits]int // a byte of each class
	for c := 0; c < 256; c++ {
		if used[c] {
			rep[p.class[c]] = c
		}
	}
	rep[0] = -1
	for c := 0; c < 256; c++ {
		if !used[c] && (c < 'A' || c > 'Z' || !used[c+'a'-'A']) {
			rep[0] = c // a byte in no keyword
			break
		}
	}
	p.delta = make([]uint16, n<<classBits)
	for s := 0; s < n; s++ {
		for k := 0; k < nc; k++ {
			c := rep[k]
			if c < 0 {
				continue
			}
			t := full[s<<8|c]
			v := uint16(t)
			if len(out[t]) > 0 {
				v |= outFlag
			}
			p.delta[s<<classBits|k] = v
		}
	}
	return p, nil
}

// spellings returns the byte spellings of a lower-case keyword that
// foldLower maps onto it: each k may also be U+212A, each s U+017F.
func spellings(k string) []string {
	out := []string{""}
	for i := 0; i < len(k); i++ {
		alts := []string{k[i : i+1]}
		switch k[i] {
		case 'k':
			alts = append(alts, "\u212a")
		case 's':
			alts = append(alts, "\u017f")
		}
		if len(out)*len(alts) > 64 {
			alts = alts[:1] // absurdly many k/s: keep ASCII only
		}
		next := make([]string, 0, len(out)*len(alts))
		for _, o := range out {
			for _, a := range alts {
				next = append(next, o+a)
			}
		}
		out = next
	}
	return out
}

// scan appends every keyword occurrence in data to hits, in order of end
// position, and sets seen[kw] for each keyword found.
func (p *prefilter) scan(data []byte, hits []hit, seen []bool) []hit {
	delta, class := p.delta, &p.class
	var s uint16
	for i, b := range data {
		t := delta[int(s)<<classBits|int(class[b])]
		s = t &^ outFlag
		if t&outFlag != 0 {
			for _, pt := range p.out[s] {
				hits = append(hits, hit{start: int32(i+1) - pt.len, end: int32(i + 1), kw: pt.kw})
				seen[pt.kw] = true
			}
		}
	}
	return hits
}

// lowerKeyword normalizes a gitleaks keyword as gitleaks does.
func lowerKeyword(k string) string { return strings.ToLower(k) }
