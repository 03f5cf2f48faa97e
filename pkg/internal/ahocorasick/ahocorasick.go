// Package ahocorasick finds every occurrence of many byte strings in one
// pass over a text: an Aho–Corasick automaton compiled to a dense DFA.
// It is the matcher of the secrets keyword prefilter, the YARA atoms and
// the malware signatures.
//
// The table has one row per state and one column per byte class (bytes
// that occur in no pattern share one class; with ASCIIFold, an upper-case
// letter shares its lower case's). Rows hold premultiplied state ids
// (state × classes), so a step is one load, and states that end a
// pattern are numbered last, so a step tests for a match with one
// comparison. A Matcher is read-only after New and safe for concurrent
// use.
package ahocorasick

import (
	"errors"
	"fmt"
	"iter"
	"math"
)

// Options configure New.
type Options struct {
	// ASCIIFold matches ASCII letters case-insensitively. Other bytes
	// (UTF-8 sequences included) match exactly.
	ASCIIFold bool
}

// Matcher is a compiled set of patterns.
type Matcher struct {
	// class maps a byte to its column.
	class [256]uint8
	// delta[s+class[b]] is the state after s on b, states being
	// premultiplied ids; ids from outStart on end at least one pattern.
	delta    []uint32
	outStart uint32
	stride   uint32
	// out[(s-outStart)/stride] lists the patterns ending in state s,
	// longest first (the state's own, then those of its failure chain).
	out    [][]int32
	lens   []int32 // byte length of each pattern
	maxLen int     // the longest pattern: no state is deeper
}

// Match is one occurrence: text[Start:End] spells pattern Pattern.
type Match struct {
	Pattern    int
	Start, End int
}

// ErrTooLarge is returned by New when the table would not fit the
// 32-bit state ids.
var ErrTooLarge = errors.New("ahocorasick: too many states")

// New compiles patterns (none may be empty). Patterns may repeat: each
// index is reported.
func New(patterns [][]byte, opts Options) (*Matcher, error) {
	m := &Matcher{lens: make([]int32, len(patterns))}
	fold := func(b byte) byte {
		if opts.ASCIIFold && 'A' <= b && b <= 'Z' {
			return b + 'a' - 'A'
		}
		return b
	}

	// Classes: one per (folded) byte used in a pattern, plus one shared
	// by every byte in none.
	var used [256]bool
	for i, p := range patterns {
		if len(p) == 0 {
			return nil, fmt.Errorf("ahocorasick: pattern %d is empty", i)
		}
		if len(p) > math.MaxInt32 {
			return nil, fmt.Errorf("ahocorasick: pattern %d is too long", i)
		}
		m.lens[i] = int32(len(p))
		m.maxLen = max(m.maxLen, len(p))
		for _, b := range p {
			used[fold(b)] = true
		}
	}
	var colOf [256]int
	n := 0
	for b := range used {
		if used[b] {
			colOf[b] = n
			n++
		}
	}
	unused := n
	for b := range used {
		if !used[b] && !used[fold(byte(b))] {
			n++ // some byte is in no pattern: it gets the last column
			break
		}
	}
	for b := range m.class {
		if f := fold(byte(b)); used[f] {
			m.class[b] = uint8(colOf[f])
		} else {
			m.class[b] = uint8(unused)
		}
	}
	ncls := n

	// Trie over classes (-1: no child).
	type node struct {
		next []int32
		out  []int32
	}
	newNode := func() node {
		nx := make([]int32, ncls)
		for i := range nx {
			nx[i] = -1
		}
		return node{next: nx}
	}
	nodes := []node{newNode()}
	for i, p := range patterns {
		s := int32(0)
		for _, b := range p {
			c := m.class[b]
			if nodes[s].next[c] < 0 {
				nodes = append(nodes, newNode())
				nodes[s].next[c] = int32(len(nodes) - 1)
			}
			s = nodes[s].next[c]
		}
		nodes[s].out = append(nodes[s].out, int32(i))
	}
	ns := len(nodes)
	if uint64(ns)*uint64(ncls) > math.MaxUint32 {
		return nil, ErrTooLarge
	}

	// Breadth first: failure links, complete transitions (in trie ids)
	// and output lists; a state's row and list are complete before its
	// children need them.
	full := make([]int32, ns*ncls)
	fail := make([]int32, ns)
	outs := make([][]int32, ns)
	queue := make([]int32, 0, ns)
	for c := range ncls {
		if t := nodes[0].next[c]; t >= 0 {
			full[c] = t
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := fail[s]
		if len(nodes[s].out) > 0 || len(outs[f]) > 0 {
			outs[s] = append(append([]int32(nil), nodes[s].out...), outs[f]...)
		}
		row, frow := full[int(s)*ncls:][:ncls], full[int(f)*ncls:][:ncls]
		for c := range ncls {
			if t := nodes[s].next[c]; t >= 0 {
				fail[t] = frow[c]
				row[c] = t
				queue = append(queue, t)
			} else {
				row[c] = frow[c]
			}
		}
	}

	// Number states without output first (the root is one: no pattern
	// is empty), then those with output.
	id := make([]uint32, ns)
	k := uint32(0)
	for s := range ns {
		if len(outs[s]) == 0 {
			id[s] = k
			k++
		}
	}
	m.outStart = k * uint32(ncls)
	for s := range ns {
		if len(outs[s]) > 0 {
			id[s] = k
			m.out = append(m.out, outs[s])
			k++
		}
	}
	m.stride = uint32(ncls)
	m.delta = make([]uint32, ns*ncls)
	for s := range ns {
		row := m.delta[int(id[s])*ncls:][:ncls]
		for c, t := range full[s*ncls:][:ncls] {
			row[c] = id[t] * uint32(ncls)
		}
	}
	return m, nil
}

// Len returns the number of patterns.
func (m *Matcher) Len() int { return len(m.lens) }

// minSplit is the shortest text All scans as four streams, and
// splitPart the quarter of each block it splits (the later quarters'
// matches wait in memory until the first quarter's are yielded: per
// block, not per text, so a 16 MiB window full of matches holds back
// little).
const (
	minSplit  = 512
	splitPart = 32 << 10
)

// All yields every occurrence of every pattern in text, overlapping ones
// included, in order of end offset; occurrences ending at the same
// offset come longest first, and patterns of equal bytes in index order.
//
// A DFA step waits for the previous one's load, so one stream over the
// text is bound by load latency: All runs four in one loop, over the four
// quarters of each block of the text (a fifth more throughput than two
// streams on executables, up to a third on source). Each later stream
// starts in the root state maxLen bytes before its quarter, and is in the
// state one stream would be in when it reaches it (a state is the longest
// suffix read that begins a pattern, at most maxLen bytes); its matches
// are yielded after the earlier quarters'.
func (m *Matcher) All(text []byte) iter.Seq[Match] {
	return func(yield func(Match) bool) { m.all(text, splitPart, yield) }
}

func (m *Matcher) all(text []byte, part int, yield func(Match) bool) {
	delta, class, outStart := m.delta, &m.class, m.outStart
	var s uint32 // the one-stream state at pos
	var later [3][]Match
	// warm is the state one stream is in on reaching text[at].
	warm := func(at int) uint32 {
		var w uint32
		for _, b := range text[max(0, at-m.maxLen):at] {
			w = delta[w+uint32(class[b])]
		}
		return w
	}
	for pos := 0; pos < len(text); {
		n := min(len(text)-pos, 4*part)
		if n < minSplit {
			m.scan(text[pos:], pos, s, yield)
			return
		}
		q := n / 4
		s1, s2, s3, s4 := s, warm(pos+q), warm(pos+2*q), warm(pos+3*q)
		for k := range later {
			later[k] = later[k][:0]
		}
		t1 := text[pos : pos+q]
		t2, t3, t4 := text[pos+q:pos+2*q], text[pos+2*q:pos+3*q], text[pos+3*q:pos+4*q]
		t2, t3, t4 = t2[:len(t1)], t3[:len(t1)], t4[:len(t1)]
		for i, b := range t1 {
			s1 = delta[s1+uint32(class[b])]
			s2 = delta[s2+uint32(class[t2[i]])]
			s3 = delta[s3+uint32(class[t3[i]])]
			s4 = delta[s4+uint32(class[t4[i]])]
			if s1 >= outStart {
				for _, p := range m.out[(s1-outStart)/m.stride] {
					if !yield(Match{Pattern: int(p), Start: pos + i + 1 - int(m.lens[p]), End: pos + i + 1}) {
						return
					}
				}
			}
			if s2 >= outStart {
				later[0] = m.appendOut(later[0], s2, pos+q+i+1)
			}
			if s3 >= outStart {
				later[1] = m.appendOut(later[1], s3, pos+2*q+i+1)
			}
			if s4 >= outStart {
				later[2] = m.appendOut(later[2], s4, pos+3*q+i+1)
			}
		}
		for k := range later {
			for _, x := range later[k] {
				if !yield(x) {
					return
				}
			}
		}
		s = s4
		pos += 4 * q
		if r := n % 4; r > 0 {
			// A block not a multiple of four leaves up to three bytes.
			var ok bool
			if s, ok = m.scan(text[pos:pos+r], pos, s, yield); !ok {
				return
			}
			pos += r
		}
	}
}

// appendOut appends the matches of state s that end at end to ms.
func (m *Matcher) appendOut(ms []Match, s uint32, end int) []Match {
	for _, p := range m.out[(s-m.outStart)/m.stride] {
		ms = append(ms, Match{Pattern: int(p), Start: end - int(m.lens[p]), End: end})
	}
	return ms
}

// scan runs one stream over text from state s, text being at offset off
// in what is searched; it returns the state at the end, and false when
// yield asked to stop.
func (m *Matcher) scan(text []byte, off int, s uint32, yield func(Match) bool) (uint32, bool) {
	delta, class, outStart := m.delta, &m.class, m.outStart
	for i, b := range text {
		s = delta[s+uint32(class[b])]
		if s < outStart {
			continue
		}
		for _, p := range m.out[(s-outStart)/m.stride] {
			if !yield(Match{Pattern: int(p), Start: off + i + 1 - int(m.lens[p]), End: off + i + 1}) {
				return s, false
			}
		}
	}
	return s, true
}
