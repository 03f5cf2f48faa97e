package yara

// An Aho-Corasick automaton over case-folded bytes: one pass over a file
// finds every occurrence of every atom (a literal piece of a string that
// must occur for the string to match). Hits are verified exactly
// afterwards, so folding only costs a rare false candidate.

// fold maps ASCII upper case to lower case, every other byte to itself.
var fold = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if i >= 'A' && i <= 'Z' {
			t[i] = byte(i) + 'a' - 'A'
		}
	}
	return t
}()

type acNode struct {
	next map[byte]int32
	fail int32
	out  []int32 // atom ids ending here
	dict int32   // nearest state on the fail chain with output, -1 none
}

type automaton struct {
	// class maps an input byte to its column: bytes that occur in no atom
	// (after folding) share column 0.
	class [256]uint16
	ncls  int
	delta []int32 // state*ncls + class → state
	out   [][]int32
	dict  []int32
	// hasOut[s] is true when s or its dict chain has output.
	hasOut []bool
}

// buildAutomaton compiles atoms (already folded) into a dense automaton.
func buildAutomaton(atoms [][]byte) *automaton {
	nodes := []acNode{{next: map[byte]int32{}, dict: -1}}
	for id, a := range atoms {
		s := int32(0)
		for _, b := range a {
			n, ok := nodes[s].next[b]
			if !ok {
				n = int32(len(nodes))
				nodes = append(nodes, acNode{next: map[byte]int32{}, dict: -1})
				nodes[s].next[b] = n
			}
			s = n
		}
		nodes[s].out = append(nodes[s].out, int32(id))
	}

	a := &automaton{}
	var used [256]bool
	for _, at := range atoms {
		for _, b := range at {
			used[b] = true
		}
	}
	var colOf [256]uint16
	a.ncls = 1
	for b := range used {
		if used[b] {
			colOf[b] = uint16(a.ncls)
			a.ncls++
		}
	}
	for b := range a.class {
		a.class[b] = colOf[fold[b]]
	}

	// BFS: failure links and the complete transition function.
	n := len(nodes)
	a.delta = make([]int32, n*a.ncls)
	queue := make([]int32, 0, n)
	for b := 0; b < 256; b++ {
		if !used[b] {
			continue
		}
		c := int(colOf[b])
		if t, ok := nodes[0].next[byte(b)]; ok {
			nodes[t].fail = 0
			a.delta[c] = t
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := nodes[s].fail
		if len(nodes[f].out) > 0 {
			nodes[s].dict = f
		} else {
			nodes[s].dict = nodes[f].dict
		}
		for c := 0; c < a.ncls; c++ {
			a.delta[int(s)*a.ncls+c] = a.delta[int(f)*a.ncls+c]
		}
		for b, t := range nodes[s].next {
			c := int(colOf[b])
			nodes[t].fail = a.delta[int(f)*a.ncls+c]
			a.delta[int(s)*a.ncls+c] = t
			queue = append(queue, t)
		}
	}
	a.out = make([][]int32, n)
	a.dict = make([]int32, n)
	a.hasOut = make([]bool, n)
	for i := range nodes {
		a.out[i] = nodes[i].out
		a.dict[i] = nodes[i].dict
		a.hasOut[i] = len(nodes[i].out) > 0 || nodes[i].dict >= 0
	}
	return a
}

// scan calls hit(atom, end) for every occurrence of every atom in data,
// end being the offset just past the occurrence. hit returns false to
// stop early.
func (a *automaton) scan(data []byte, hit func(atom int32, end int) bool) {
	s := int32(0)
	ncls := a.ncls
	delta, class, hasOut := a.delta, &a.class, a.hasOut
	for i, b := range data {
		s = delta[int(s)*ncls+int(class[b])]
		if !hasOut[s] {
			continue
		}
		for t := s; t >= 0; t = a.dict[t] {
			for _, id := range a.out[t] {
				if !hit(id, i+1) {
					return
				}
			}
		}
	}
}
