package yara

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/VirusTotal/gyp/ast"
)

// maxLoop bounds the iterations of one "for … in (a..b)" loop; a larger
// range evaluates to undefined (false).
const maxLoop = 1 << 20

// value is the result of an expression: YARA's integers, floats, booleans
// and undefined (an out-of-range read, a missing match, division by 0).
type value struct {
	k kind
	i int64
	f float64
}

type kind uint8

const (
	kUndef kind = iota
	kBool
	kInt
	kFloat
)

var undef = value{}

func boolean(b bool) value {
	if b {
		return value{k: kBool, i: 1}
	}
	return value{k: kBool}
}

func integer(i int64) value { return value{k: kInt, i: i} }

// truth is the value in a boolean context: undefined is false, a number
// is true when not zero.
func (v value) truth() bool {
	switch v.k {
	case kBool, kInt:
		return v.i != 0
	case kFloat:
		return v.f != 0
	}
	return false
}

func (v value) float() float64 {
	if v.k == kFloat {
		return v.f
	}
	return float64(v.i)
}

// env is the state conditions are evaluated in.
type env struct {
	data  []byte
	rules []bool // results of the rules evaluated so far
	// hits[s] are the matches of string s, ordered by offset.
	hits [][]hit
	vars []int64 // loop variables, innermost last
	anon int     // the string "$" stands for inside "for … of"
	// budget[s] is the hex verification work string s may still do.
	budget []int
}

type hit struct{ off, len int }

type expr func(e *env) value

// compiler compiles one rule's condition.
type compiler struct {
	rs   *Rules
	rule *ast.Rule
	// strs maps the rule's string identifiers to global string indexes,
	// in declaration order (anonymous strings have "").
	ids   []string
	index []int
	vars  []string // loop variables in scope
	inFor bool     // inside "for … of": "$", "#", "@", "!" are allowed
}

func (c *compiler) errorf(format string, args ...any) error {
	return fmt.Errorf("yara: rule %s (line %d): %s", c.rule.Identifier, c.rule.LineNo, fmt.Sprintf(format, args...))
}

func (c *compiler) unsupported(what string, n ast.Node) error {
	var b strings.Builder
	if n != nil {
		_ = n.WriteSource(&b)
	}
	src := b.String()
	if len(src) > 80 {
		src = src[:77] + "..."
	}
	var msg string
	if src != "" {
		msg = c.errorf("unsupported construct: %s in %q (supported: text and hex strings, string counts/offsets/lengths, of/for, int/uint readers, filesize, arithmetic and boolean operators)", what, src).Error()
	} else {
		msg = c.errorf("unsupported construct: %s", what).Error()
	}
	return &UnsupportedError{msg}
}

// str resolves a string identifier ("" = the anonymous "$" of a loop).
func (c *compiler) str(id string, n ast.Node) (func(e *env) int, error) {
	if id == "" {
		if !c.inFor {
			return nil, c.errorf("anonymous string reference outside a for … of loop")
		}
		return func(e *env) int { return e.anon }, nil
	}
	for i, s := range c.ids {
		if s == id {
			g := c.index[i]
			return func(*env) int { return g }, nil
		}
	}
	return nil, c.errorf("undefined string $%s", id)
}

// set resolves a string set: "them" or ($a, $b*, …).
func (c *compiler) set(n ast.Node) ([]int, error) {
	switch v := n.(type) {
	case ast.Keyword:
		if v == ast.KeywordThem {
			return append([]int(nil), c.index...), nil
		}
	case *ast.Enum:
		var out []int
		seen := map[int]bool{}
		for _, item := range v.Values {
			si, ok := item.(*ast.StringIdentifier)
			if !ok {
				return nil, c.unsupported("string set item", item)
			}
			found := false
			for i, id := range c.ids {
				if id == si.Identifier || (strings.HasSuffix(si.Identifier, "*") && strings.HasPrefix(id, strings.TrimSuffix(si.Identifier, "*"))) {
					found = true
					if !seen[c.index[i]] {
						seen[c.index[i]] = true
						out = append(out, c.index[i])
					}
				}
			}
			if !found {
				return nil, c.errorf("string set: no string matches $%s", si.Identifier)
			}
		}
		return out, nil
	}
	return nil, c.unsupported("string set", n)
}

// quantifier compiles "all", "any", "none", N or N% into a function of
// the set size and the number of true items.
func (c *compiler) quantifier(q ast.Expression) (func(e *env, n, yes int) bool, error) {
	switch v := q.(type) {
	case ast.Keyword:
		switch v {
		case ast.KeywordAll:
			return func(_ *env, n, yes int) bool { return yes == n }, nil
		case ast.KeywordAny:
			return func(_ *env, _, yes int) bool { return yes > 0 }, nil
		case ast.KeywordNone:
			return func(_ *env, _, yes int) bool { return yes == 0 }, nil
		}
	case *ast.Percentage:
		p, err := c.expr(v.Expression)
		if err != nil {
			return nil, err
		}
		return func(e *env, n, yes int) bool {
			pv := p(e)
			if pv.k != kInt {
				return false
			}
			return float64(yes)*100 >= float64(pv.i)*float64(n)
		}, nil
	}
	x, err := c.expr(q)
	if err != nil {
		return nil, err
	}
	return func(e *env, _, yes int) bool {
		v := x(e)
		return v.k == kInt && int64(yes) >= v.i
	}, nil
}

// rng compiles "(a..b)".
func (c *compiler) rng(r *ast.Range) (func(e *env) (int64, int64, bool), error) {
	lo, err := c.expr(r.Start)
	if err != nil {
		return nil, err
	}
	hi, err := c.expr(r.End)
	if err != nil {
		return nil, err
	}
	return func(e *env) (int64, int64, bool) {
		a, b := lo(e), hi(e)
		if a.k != kInt || b.k != kInt {
			return 0, 0, false
		}
		return a.i, b.i, true
	}, nil
}

// matchIn reports whether string s has a match starting in [lo, hi].
func matchIn(hits []hit, lo, hi int64) bool {
	for _, h := range hits {
		if int64(h.off) >= lo && int64(h.off) <= hi {
			return true
		}
		if int64(h.off) > hi {
			break
		}
	}
	return false
}

func matchAt(hits []hit, at int64) bool { return matchIn(hits, at, at) }

func (c *compiler) expr(n ast.Node) (expr, error) {
	switch v := n.(type) {
	case ast.Keyword:
		switch v {
		case ast.KeywordTrue:
			return func(*env) value { return boolean(true) }, nil
		case ast.KeywordFalse:
			return func(*env) value { return boolean(false) }, nil
		case ast.KeywordFilesize:
			return func(e *env) value { return integer(int64(len(e.data))) }, nil
		}
		return nil, c.unsupported("keyword "+string(v), nil)
	case *ast.Group:
		return c.expr(v.Expression)
	case *ast.LiteralInteger:
		x := v.Value
		return func(*env) value { return integer(x) }, nil
	case *ast.LiteralFloat:
		x := v.Value
		return func(*env) value { return value{k: kFloat, f: x} }, nil
	case *ast.Not:
		x, err := c.expr(v.Expression)
		if err != nil {
			return nil, err
		}
		return func(e *env) value {
			r := x(e)
			if r.k == kUndef {
				return undef
			}
			return boolean(!r.truth())
		}, nil
	case *ast.Defined:
		x, err := c.expr(v.Expression)
		if err != nil {
			return nil, err
		}
		return func(e *env) value { return boolean(x(e).k != kUndef) }, nil
	case *ast.Minus:
		x, err := c.expr(v.Expression)
		if err != nil {
			return nil, err
		}
		return func(e *env) value {
			r := x(e)
			switch r.k {
			case kInt:
				return integer(-r.i)
			case kFloat:
				return value{k: kFloat, f: -r.f}
			}
			return undef
		}, nil
	case *ast.BitwiseNot:
		x, err := c.expr(v.Expression)
		if err != nil {
			return nil, err
		}
		return func(e *env) value {
			if r := x(e); r.k == kInt {
				return integer(^r.i)
			}
			return undef
		}, nil
	case *ast.Identifier:
		for i := len(c.vars) - 1; i >= 0; i-- {
			if c.vars[i] == v.Identifier {
				slot := i
				return func(e *env) value { return integer(e.vars[slot]) }, nil
			}
		}
		if ri, ok := c.rs.ruleIndex[v.Identifier]; ok {
			return func(e *env) value { return boolean(e.rules[ri]) }, nil
		}
		return nil, c.unsupported("identifier "+v.Identifier+" (modules and external variables are not supported; rules must be declared before use)", nil)
	case *ast.StringIdentifier:
		return c.stringIdent(v)
	case *ast.StringCount:
		s, err := c.str(v.Identifier, v)
		if err != nil {
			return nil, err
		}
		if v.In == nil {
			return func(e *env) value { return integer(int64(len(e.hits[s(e)]))) }, nil
		}
		r, err := c.rng(v.In)
		if err != nil {
			return nil, err
		}
		return func(e *env) value {
			lo, hi, ok := r(e)
			if !ok {
				return undef
			}
			n := 0
			for _, h := range e.hits[s(e)] {
				if int64(h.off) >= lo && int64(h.off) <= hi {
					n++
				}
			}
			return integer(int64(n))
		}, nil
	case *ast.StringOffset:
		return c.indexed(v.Identifier, v.Index, func(h hit) int64 { return int64(h.off) })
	case *ast.StringLength:
		return c.indexed(v.Identifier, v.Index, func(h hit) int64 { return int64(h.len) })
	case *ast.FunctionCall:
		return c.call(v)
	case *ast.Of:
		return c.of(v)
	case *ast.ForOf:
		return c.forOf(v)
	case *ast.ForIn:
		return c.forIn(v)
	case *ast.Operation:
		return c.operation(v)
	case *ast.LiteralString:
		return nil, c.unsupported("string literal", v)
	case *ast.LiteralRegexp:
		return nil, c.unsupported("regular expression", v)
	case *ast.MemberAccess, *ast.Subscripting:
		return nil, c.unsupported("module field (modules are not supported)", v)
	}
	return nil, c.unsupported(fmt.Sprintf("%T", n), n)
}

func (c *compiler) stringIdent(v *ast.StringIdentifier) (expr, error) {
	s, err := c.str(v.Identifier, v)
	if err != nil {
		return nil, err
	}
	switch {
	case v.At != nil:
		at, err := c.expr(v.At)
		if err != nil {
			return nil, err
		}
		return func(e *env) value {
			a := at(e)
			if a.k != kInt {
				return undef
			}
			return boolean(matchAt(e.hits[s(e)], a.i))
		}, nil
	case v.In != nil:
		r, err := c.rng(v.In)
		if err != nil {
			return nil, err
		}
		return func(e *env) value {
			lo, hi, ok := r(e)
			if !ok {
				return undef
			}
			return boolean(matchIn(e.hits[s(e)], lo, hi))
		}, nil
	}
	return func(e *env) value { return boolean(len(e.hits[s(e)]) > 0) }, nil
}

// indexed compiles @a, @a[i], !a, !a[i] (1-based; no index = first).
func (c *compiler) indexed(id string, index ast.Expression, get func(hit) int64) (expr, error) {
	s, err := c.str(id, nil)
	if err != nil {
		return nil, err
	}
	idx := func(*env) value { return integer(1) }
	if index != nil {
		if idx, err = c.expr(index); err != nil {
			return nil, err
		}
	}
	return func(e *env) value {
		i := idx(e)
		hits := e.hits[s(e)]
		if i.k != kInt || i.i < 1 || i.i > int64(len(hits)) {
			return undef
		}
		return integer(get(hits[i.i-1]))
	}, nil
}

// call compiles the built-in readers int8 … uint32be.
func (c *compiler) call(v *ast.FunctionCall) (expr, error) {
	id, ok := v.Callable.(*ast.Identifier)
	if !ok || !v.Builtin || len(v.Arguments) != 1 {
		return nil, c.unsupported("function call (modules are not supported)", v)
	}
	name := id.Identifier
	be := strings.HasSuffix(name, "be")
	base := strings.TrimSuffix(name, "be")
	var size int
	signed := !strings.HasPrefix(base, "u")
	switch strings.TrimPrefix(base, "u") {
	case "int8":
		size = 1
	case "int16":
		size = 2
	case "int32":
		size = 4
	default:
		return nil, c.unsupported("function "+name, v)
	}
	arg, err := c.expr(v.Arguments[0])
	if err != nil {
		return nil, err
	}
	return func(e *env) value {
		a := arg(e)
		if a.k != kInt || a.i < 0 || a.i+int64(size) > int64(len(e.data)) {
			return undef
		}
		b := e.data[a.i : a.i+int64(size)]
		var u uint64
		switch {
		case size == 1:
			u = uint64(b[0])
		case size == 2 && be:
			u = uint64(binary.BigEndian.Uint16(b))
		case size == 2:
			u = uint64(binary.LittleEndian.Uint16(b))
		case be:
			u = uint64(binary.BigEndian.Uint32(b))
		default:
			u = uint64(binary.LittleEndian.Uint32(b))
		}
		if signed {
			shift := 64 - 8*size
			return integer(int64(u<<shift) >> shift)
		}
		return integer(int64(u))
	}, nil
}

func (c *compiler) of(v *ast.Of) (expr, error) {
	if v.TextStrings != nil {
		return nil, c.unsupported("of over text strings", v)
	}
	q, err := c.quantifier(v.Quantifier)
	if err != nil {
		return nil, err
	}
	if v.Rules != nil {
		rules, err := c.ruleSet(v.Rules)
		if err != nil {
			return nil, err
		}
		return func(e *env) value {
			yes := 0
			for _, r := range rules {
				if e.rules[r] {
					yes++
				}
			}
			return boolean(q(e, len(rules), yes))
		}, nil
	}
	set, err := c.set(v.Strings)
	if err != nil {
		return nil, err
	}
	pred := func(e *env, hits []hit) bool { return len(hits) > 0 }
	switch {
	case v.In != nil:
		r, err := c.rng(v.In)
		if err != nil {
			return nil, err
		}
		pred = func(e *env, hits []hit) bool {
			lo, hi, ok := r(e)
			return ok && matchIn(hits, lo, hi)
		}
	case v.At != nil:
		at, err := c.expr(v.At)
		if err != nil {
			return nil, err
		}
		pred = func(e *env, hits []hit) bool {
			a := at(e)
			return a.k == kInt && matchAt(hits, a.i)
		}
	}
	return func(e *env) value {
		yes := 0
		for _, s := range set {
			if pred(e, e.hits[s]) {
				yes++
			}
		}
		return boolean(q(e, len(set), yes))
	}, nil
}

func (c *compiler) ruleSet(n ast.Node) ([]int, error) {
	en, ok := n.(*ast.Enum)
	if !ok {
		return nil, c.unsupported("rule set", n)
	}
	var out []int
	seen := map[int]bool{}
	for _, item := range en.Values {
		id, ok := item.(*ast.Identifier)
		if !ok {
			return nil, c.unsupported("rule set item", item)
		}
		found := false
		for ri, r := range c.rs.rules {
			name := r.name
			if name == id.Identifier || (strings.HasSuffix(id.Identifier, "*") && strings.HasPrefix(name, strings.TrimSuffix(id.Identifier, "*"))) {
				found = true
				if !seen[ri] {
					seen[ri] = true
					out = append(out, ri)
				}
			}
		}
		if !found {
			return nil, c.errorf("rule set: no earlier rule matches %s", id.Identifier)
		}
	}
	return out, nil
}

func (c *compiler) forOf(v *ast.ForOf) (expr, error) {
	q, err := c.quantifier(v.Quantifier)
	if err != nil {
		return nil, err
	}
	set, err := c.set(v.Strings)
	if err != nil {
		return nil, err
	}
	outer := c.inFor
	c.inFor = true
	body, err := c.expr(v.Condition)
	c.inFor = outer
	if err != nil {
		return nil, err
	}
	return func(e *env) value {
		saved := e.anon
		yes := 0
		for _, s := range set {
			e.anon = s
			if body(e).truth() {
				yes++
			}
		}
		e.anon = saved
		return boolean(q(e, len(set), yes))
	}, nil
}

func (c *compiler) forIn(v *ast.ForIn) (expr, error) {
	if len(v.Variables) != 1 {
		return nil, c.unsupported("for loop with several variables", v)
	}
	q, err := c.quantifier(v.Quantifier)
	if err != nil {
		return nil, err
	}
	// items returns the values to iterate over (ok false: undefined).
	var items func(e *env, yield func(int64) bool) bool
	var count func(e *env) (int, bool)
	switch it := v.Iterator.(type) {
	case *ast.Range:
		r, err := c.rng(it)
		if err != nil {
			return nil, err
		}
		count = func(e *env) (int, bool) {
			lo, hi, ok := r(e)
			switch {
			case !ok:
				return 0, false
			case hi < lo:
				return 0, true
			case uint64(hi)-uint64(lo) >= maxLoop: // hi-lo may overflow int64
				return 0, false
			}
			return int(hi-lo) + 1, true
		}
		items = func(e *env, yield func(int64) bool) bool {
			lo, hi, _ := r(e)
			if hi < lo {
				return true
			}
			for i := lo; ; i++ { // i <= hi is always true when hi is MaxInt64
				if !yield(i) || i == hi {
					break
				}
			}
			return true
		}
	case *ast.Enum:
		var vals []expr
		for _, x := range it.Values {
			f, err := c.expr(x)
			if err != nil {
				return nil, err
			}
			vals = append(vals, f)
		}
		count = func(*env) (int, bool) { return len(vals), true }
		items = func(e *env, yield func(int64) bool) bool {
			for _, f := range vals {
				x := f(e)
				if x.k != kInt {
					continue
				}
				if !yield(x.i) {
					break
				}
			}
			return true
		}
	default:
		return nil, c.unsupported("for loop over a module iterator", v)
	}
	c.vars = append(c.vars, v.Variables[0])
	body, err := c.expr(v.Condition)
	c.vars = c.vars[:len(c.vars)-1]
	if err != nil {
		return nil, err
	}
	return func(e *env) value {
		n, ok := count(e)
		if !ok {
			return undef
		}
		yes := 0
		e.vars = append(e.vars, 0)
		slot := len(e.vars) - 1
		items(e, func(i int64) bool {
			e.vars[slot] = i
			if body(e).truth() {
				yes++
			}
			return true
		})
		e.vars = e.vars[:slot]
		return boolean(q(e, n, yes))
	}, nil
}

func (c *compiler) operation(v *ast.Operation) (expr, error) {
	ops := make([]expr, len(v.Operands))
	for i, o := range v.Operands {
		f, err := c.expr(o)
		if err != nil {
			return nil, err
		}
		ops[i] = f
	}
	switch v.Operator {
	case ast.OpAnd:
		return func(e *env) value {
			for _, f := range ops {
				if !f(e).truth() {
					return boolean(false)
				}
			}
			return boolean(true)
		}, nil
	case ast.OpOr:
		return func(e *env) value {
			for _, f := range ops {
				if f(e).truth() {
					return boolean(true)
				}
			}
			return boolean(false)
		}, nil
	}
	bin, err := c.binary(v)
	if err != nil {
		return nil, err
	}
	return func(e *env) value {
		acc := ops[0](e)
		for _, f := range ops[1:] {
			acc = bin(acc, f(e))
		}
		return acc
	}, nil
}

func (c *compiler) binary(v *ast.Operation) (func(a, b value) value, error) {
	cmp := func(test func(int) bool) func(a, b value) value {
		return func(a, b value) value {
			if a.k == kUndef || b.k == kUndef {
				return undef
			}
			var r int
			if a.k == kFloat || b.k == kFloat {
				x, y := a.float(), b.float()
				switch {
				case x < y:
					r = -1
				case x > y:
					r = 1
				}
			} else {
				switch {
				case a.i < b.i:
					r = -1
				case a.i > b.i:
					r = 1
				}
			}
			return boolean(test(r))
		}
	}
	arith := func(fi func(x, y int64) (int64, bool), ff func(x, y float64) float64) func(a, b value) value {
		return func(a, b value) value {
			if a.k == kUndef || b.k == kUndef {
				return undef
			}
			if a.k == kFloat || b.k == kFloat {
				if ff == nil {
					return undef
				}
				return value{k: kFloat, f: ff(a.float(), b.float())}
			}
			r, ok := fi(a.i, b.i)
			if !ok {
				return undef
			}
			return integer(r)
		}
	}
	switch v.Operator {
	case ast.OpEqual:
		return cmp(func(r int) bool { return r == 0 }), nil
	case ast.OpNotEqual:
		return cmp(func(r int) bool { return r != 0 }), nil
	case ast.OpLessThan:
		return cmp(func(r int) bool { return r < 0 }), nil
	case ast.OpLessOrEqual:
		return cmp(func(r int) bool { return r <= 0 }), nil
	case ast.OpGreaterThan:
		return cmp(func(r int) bool { return r > 0 }), nil
	case ast.OpGreaterOrEqual:
		return cmp(func(r int) bool { return r >= 0 }), nil
	case ast.OpAdd:
		return arith(func(x, y int64) (int64, bool) { return x + y, true }, func(x, y float64) float64 { return x + y }), nil
	case ast.OpSub:
		return arith(func(x, y int64) (int64, bool) { return x - y, true }, func(x, y float64) float64 { return x - y }), nil
	case ast.OpMul:
		return arith(func(x, y int64) (int64, bool) { return x * y, true }, func(x, y float64) float64 { return x * y }), nil
	case ast.OpDiv:
		return arith(func(x, y int64) (int64, bool) {
			if y == 0 || (x == math.MinInt64 && y == -1) {
				return 0, false
			}
			return x / y, true
		}, func(x, y float64) float64 { return x / y }), nil
	case ast.OpMod:
		return arith(func(x, y int64) (int64, bool) {
			if y == 0 || (x == math.MinInt64 && y == -1) {
				return 0, false
			}
			return x % y, true
		}, nil), nil
	case ast.OpBitAnd:
		return arith(func(x, y int64) (int64, bool) { return x & y, true }, nil), nil
	case ast.OpBitOr:
		return arith(func(x, y int64) (int64, bool) { return x | y, true }, nil), nil
	case ast.OpBitXor:
		return arith(func(x, y int64) (int64, bool) { return x ^ y, true }, nil), nil
	case ast.OpShiftLeft:
		return arith(func(x, y int64) (int64, bool) {
			if y < 0 {
				return 0, false
			}
			if y >= 64 {
				return 0, true
			}
			return x << y, true
		}, nil), nil
	case ast.OpShiftRight:
		return arith(func(x, y int64) (int64, bool) {
			if y < 0 {
				return 0, false
			}
			if y >= 64 {
				return 0, true
			}
			return x >> y, true
		}, nil), nil
	}
	return nil, c.unsupported("operator "+string(v.Operator), v)
}
