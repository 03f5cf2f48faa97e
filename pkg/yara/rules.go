package yara

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/VirusTotal/gyp"
	"github.com/VirusTotal/gyp/ast"

	"github.com/customs-scan/customs/pkg/internal/ahocorasick"
)

// Rules is a compiled rule set, safe for concurrent use.
type Rules struct {
	rules     []rule
	ruleIndex map[string]int
	strs      []*str
	atoms     []atom
	// ac finds the atoms, ASCII case-insensitively (hits are verified
	// exactly afterwards, so folding only costs a rare false candidate).
	ac *ahocorasick.Matcher
	// brute are hex strings without an atom: tried at every offset.
	brute []int
	// skipped are the rules left out by CompileOptions.SkipUnsupported.
	skipped []error
	pool    sync.Pool // *env

	// fp is a hash of the sources and options compiled (Fingerprint).
	fp string
}

type rule struct {
	name    string
	tags    []string
	meta    map[string]string
	private bool
	global  bool
	strs    []int // global string indexes
	cond    expr
	line    int
}

// Match is one rule that matched.
type Match struct {
	Rule string
	Tags []string
	// Meta holds the rule's metadata, values as text (shared between
	// matches: read only).
	Meta map[string]string
	// Strings are the identifiers ("$a") of the rule's strings that
	// matched, with their first offset, in declaration order.
	Strings []StringMatch
}

// StringMatch is the first match of one string.
type StringMatch struct {
	ID     string
	Offset int
	Count  int
}

// CompileOptions configure compilation.
type CompileOptions struct {
	// SkipUnsupported leaves out (instead of failing on) rules that use
	// a construct outside the supported subset, and rules that refer to
	// them; Rules.Skipped says which and why. Syntax errors still fail.
	// Imports are then allowed: only rules using a module are skipped.
	SkipUnsupported bool
}

// Compile parses and compiles YARA source. Everything outside the
// supported subset (see README.md) fails with an error naming the
// construct and the rule.
func Compile(source string) (*Rules, error) {
	return compileSources([]namedSource{{"", source}}, CompileOptions{})
}

// CompileWith is Compile with options.
func CompileWith(opts CompileOptions, source string) (*Rules, error) {
	return compileSources([]namedSource{{"", source}}, opts)
}

// Fingerprint identifies what was compiled: a hex SHA-256 of the
// sources' text, in order, and the options. File names are left out:
// they appear in errors only, and the same rules deployed under another
// path match the same way.
func (rs *Rules) Fingerprint() string { return rs.fp }

// Skipped returns why each rule left out by SkipUnsupported was.
func (rs *Rules) Skipped() []error { return rs.skipped }

// Len returns the number of compiled rules (private ones included).
func (rs *Rules) Len() int { return len(rs.rules) }

// CompileFiles compiles rule files; a directory stands for its *.yar and
// *.yara files (not recursive). Rule names must be unique across files.
func CompileFiles(paths ...string) (*Rules, error) {
	return CompileFilesWith(CompileOptions{}, paths...)
}

// CompileFilesWith is CompileFiles with options.
func CompileFilesWith(opts CompileOptions, paths ...string) (*Rules, error) {
	var srcs []namedSource
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("yara: %w", err)
		}
		files := []string{p}
		if fi.IsDir() {
			files = nil
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("yara: %w", err)
			}
			for _, e := range entries {
				if ext := strings.ToLower(filepath.Ext(e.Name())); !e.IsDir() && (ext == ".yar" || ext == ".yara") {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
			if len(files) == 0 {
				return nil, fmt.Errorf("yara: %s: no *.yar or *.yara files", p)
			}
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("yara: %w", err)
			}
			srcs = append(srcs, namedSource{f, string(b)})
		}
	}
	if len(srcs) == 0 {
		return nil, errors.New("yara: no rule files given")
	}
	return compileSources(srcs, opts)
}

type namedSource struct{ name, text string }

func compileSources(srcs []namedSource, opts CompileOptions) (rs *Rules, err error) {
	// gyp panics on a few malformed inputs (e.g. a bad escape in a meta
	// value); a rule file is operator input, so turn that into an error.
	defer func() {
		if r := recover(); r != nil {
			rs, err = nil, fmt.Errorf("yara: invalid rules: %v", r)
		}
	}()
	rs = &Rules{ruleIndex: map[string]int{}}
	for _, src := range srcs {
		prefix := "yara: "
		if src.name != "" {
			prefix = "yara: " + src.name + ": "
		}
		set, err := gyp.ParseString(src.text)
		if err != nil {
			return nil, fmt.Errorf("%s%v", prefix, err)
		}
		if len(set.Imports) > 0 && !opts.SkipUnsupported {
			return nil, fmt.Errorf("%sunsupported construct: import %q (modules are not supported)", prefix, set.Imports[0])
		}
		if len(set.Includes) > 0 {
			return nil, fmt.Errorf("%sunsupported construct: include %q (pass every file instead)", prefix, set.Includes[0])
		}
		for _, r := range set.Rules {
			if err := rs.addRule(r); err != nil {
				var u *UnsupportedError
				unsupported := errors.As(err, &u)
				err = fmt.Errorf("%s%s", prefix, strings.TrimPrefix(err.Error(), "yara: "))
				if opts.SkipUnsupported && unsupported {
					rs.skipped = append(rs.skipped, err)
					continue
				}
				return nil, err
			}
		}
	}
	if len(rs.rules) == 0 {
		return nil, errors.New("yara: no rules")
	}
	if err := rs.buildAtoms(); err != nil {
		return nil, err
	}
	rs.fp = sourcesFingerprint(srcs, opts)
	rs.pool.New = func() any {
		return &env{hits: make([][]hit, len(rs.strs)), budget: make([]int, len(rs.strs)), rules: make([]bool, len(rs.rules))}
	}
	return rs, nil
}

// UnsupportedError reports a construct outside the supported subset.
type UnsupportedError struct{ msg string }

func (e *UnsupportedError) Error() string { return e.msg }

func (rs *Rules) addRule(r *ast.Rule) (err error) {
	nstrs := len(rs.strs)
	defer func() {
		if err != nil {
			rs.strs = rs.strs[:nstrs] // drop the strings of a rule left out
		}
	}()
	if _, dup := rs.ruleIndex[r.Identifier]; dup {
		return fmt.Errorf("yara: duplicate rule %s (line %d)", r.Identifier, r.LineNo)
	}
	ru := rule{name: r.Identifier, tags: r.Tags, private: r.Private, global: r.Global, line: r.LineNo, meta: map[string]string{}}
	for _, m := range r.Meta {
		var v string
		switch x := m.Value.(type) {
		case string:
			if u, err := strconv.Unquote(`"` + x + `"`); err == nil {
				v = u
			} else {
				v = x
			}
		default:
			v = fmt.Sprint(x)
		}
		if _, seen := ru.meta[m.Key]; !seen {
			ru.meta[m.Key] = v
		}
	}
	c := &compiler{rs: rs, rule: r}
	for _, s := range r.Strings {
		cs, err := c.compileString(r, s)
		if err != nil {
			return err
		}
		cs.rule = len(rs.rules)
		g := len(rs.strs)
		rs.strs = append(rs.strs, cs)
		ru.strs = append(ru.strs, g)
		c.ids = append(c.ids, s.GetIdentifier())
		c.index = append(c.index, g)
	}
	if r.Condition == nil {
		return c.errorf("no condition")
	}
	cond, err := c.expr(r.Condition)
	if err != nil {
		return err
	}
	ru.cond = cond
	rs.ruleIndex[r.Identifier] = len(rs.rules)
	rs.rules = append(rs.rules, ru)
	return nil
}

func (rs *Rules) buildAtoms() error {
	var pats [][]byte
	for si, s := range rs.strs {
		if s.bruteForce {
			rs.brute = append(rs.brute, si)
			continue
		}
		for vi, v := range s.variants {
			pats = append(pats, v.pat)
			rs.atoms = append(rs.atoms, atom{str: si, variant: vi, off: s.atomOff, length: len(v.pat)})
		}
	}
	ac, err := ahocorasick.New(pats, ahocorasick.Options{ASCIIFold: true})
	if err != nil {
		return fmt.Errorf("yara: %d strings: %w", len(rs.strs), err)
	}
	rs.ac = ac
	return nil
}

// Scan returns the rules matching data, in declaration order (private
// rules are evaluated but not returned).
func (rs *Rules) Scan(data []byte) []Match {
	e := rs.pool.Get().(*env)
	defer func() {
		for i := range e.hits {
			e.hits[i] = e.hits[i][:0]
		}
		e.data = nil
		e.vars = e.vars[:0]
		rs.pool.Put(e)
	}()
	e.data = data
	rs.find(e)

	for i := range rs.rules {
		e.rules[i] = rs.rules[i].cond(e).truth()
	}
	for i := range rs.rules {
		if rs.rules[i].global && !e.rules[i] {
			return nil
		}
	}
	var out []Match
	for i := range rs.rules {
		r := &rs.rules[i]
		if !e.rules[i] || r.private {
			continue
		}
		m := Match{Rule: r.name, Tags: r.tags, Meta: r.meta}
		for _, si := range r.strs {
			if h := e.hits[si]; len(h) > 0 {
				id := "$" + rs.strs[si].id
				m.Strings = append(m.Strings, StringMatch{ID: id, Offset: h[0].off, Count: len(h)})
			}
		}
		out = append(out, m)
	}
	return out
}

// find fills e.hits: one automaton pass, then exact verification.
func (rs *Rules) find(e *env) {
	data := e.data
	for i := range e.budget {
		e.budget[i] = hexBudget
	}
	multi := false
	for h := range rs.ac.All(data) {
		id, end := h.Pattern, h.End
		a := &rs.atoms[id]
		s := rs.strs[a.str]
		if len(e.hits[a.str]) >= maxMatches {
			continue
		}
		if s.hex != nil {
			start := end - len(s.variants[0].pat) - a.off
			if start < 0 {
				continue
			}
			if e.budget[a.str] <= 0 {
				continue
			}
			if n, ok := hexMatch(s.hex, data, start, &e.budget[a.str]); ok {
				e.hits[a.str] = append(e.hits[a.str], hit{start, n - start})
			}
			continue
		}
		v := &s.variants[a.variant]
		start := end - len(v.pat)
		if !v.nocase && string(data[start:end]) != string(v.pat) {
			continue
		}
		if s.fullword && !fullword(data, start, end, v.wide) {
			continue
		}
		if len(s.variants) > 1 {
			multi = true
		}
		e.hits[a.str] = append(e.hits[a.str], hit{start, len(v.pat)})
	}
	for _, si := range rs.brute {
		s := rs.strs[si]
		for p := 0; p < len(data) && len(e.hits[si]) < maxMatches && e.budget[si] > 0; p++ {
			if n, ok := hexMatch(s.hex, data, p, &e.budget[si]); ok {
				e.hits[si] = append(e.hits[si], hit{p, n - p})
			}
		}
	}
	if multi {
		// Several variants (ascii and wide) of one string: order by offset.
		for si, h := range e.hits {
			if len(h) > 1 && len(rs.strs[si].variants) > 1 {
				sort.Slice(h, func(i, j int) bool { return h[i].off < h[j].off })
				e.hits[si] = slices.CompactFunc(h, func(a, b hit) bool { return a.off == b.off })
			}
		}
	}
}

func isAlnum(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// fullword: the match is not preceded nor followed by an alphanumeric
// character (for wide strings, a wide one).
func fullword(data []byte, start, end int, wide bool) bool {
	if wide {
		if start >= 2 && isAlnum(data[start-2]) && data[start-1] == 0 {
			return false
		}
		if end+1 < len(data) && isAlnum(data[end]) && data[end+1] == 0 {
			return false
		}
		return true
	}
	if start > 0 && isAlnum(data[start-1]) {
		return false
	}
	if end < len(data) && isAlnum(data[end]) {
		return false
	}
	return true
}

// sourcesFingerprint hashes what was compiled (see Rules.Fingerprint).
func sourcesFingerprint(srcs []namedSource, opts CompileOptions) string {
	h := sha256.New()
	fmt.Fprintf(h, "skipUnsupported %t\n", opts.SkipUnsupported)
	for _, s := range srcs {
		fmt.Fprintf(h, "source %d\n%s\n", len(s.text), s.text)
	}
	return hex.EncodeToString(h.Sum(nil))
}
