package secrets

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/spf13/viper"
	"github.com/zricethezav/gitleaks/v8/config"
)

// Engine is gitleaks' default rule set, compiled once. It follows
// gitleaks' detect.Detector.DetectContext for one fragment (keyword
// prefilter, path rules, regex, secret group, entropy, global and rule
// allowlists, generic-rule de-duplication) without its side effects: no
// logging (gitleaks' trace logs carry the secret), no global state, its
// own bounded decoding passes (decode.go) and no
// "gitleaks:allow" comments (an image author must not be able to hide a
// credential from the registry's scanner with a comment).
type Engine struct {
	rules       []*rule
	pathRules   []*rule  // rules with a path and no regex: the path is the finding
	pathRuleSet *pathSet // their path regexes, in pathRules order
	keywords    []string
	kwIndex     map[string]int32 // index of each keyword in keywords
	pf          *prefilter
	global      []*allowlist
	// globalPaths are the paths of the global allowlists without a
	// condition: a path they allow is never scanned.
	globalPaths *pathSet
	pool        sync.Pool // *scratch
	// decodeDepth is how many nested encodings Find decodes.
	decodeDepth int
}

type rule struct {
	id, desc string
	severity string
	re       *regexp.Regexp
	path     *regexp.Regexp
	group    int
	entropy  float64
	allow    []*allowlist
	// allowPaths are the paths of r.allow's allowlists without a
	// condition (nil when none).
	allowPaths *pathSet
	generic    bool
	// kws are the indices of the rule's keywords; none: always run.
	kws []int32
	// windowed: run only around keyword hits, newlines lines either side.
	windowed bool
	newlines int
	// lineStart: the regex uses ^ with (?m), so windows start at a
	// line start.
	lineStart bool
	// inner[k] is the regex run in a window that does not reach the
	// file's start (k&1) or end (k&2): \A or \z removed (see withoutOp),
	// for the k in innerMask (the others run re itself). Built on first
	// use from parsed (innerRe): most rules end in `|$` yet never run in a
	// window, and building every form (syntax.Regexp.String mostly) was
	// half of New, paid by every `customs scan` process. parsed is also
	// what a windowed rule's parts are built from (prepare), and is
	// dropped then unless inner forms need it.
	inner         [4]*regexp.Regexp
	innerOnce     [4]sync.Once
	innerMask     uint8
	parsed        *syntax.Regexp
	kwMask        []uint64
	alwaysTrigger bool
	// parts, when set, split every match around the text spelling a
	// keyword (see anchoredPart): a hit only opens a window when a match
	// can be built around it. cands[kw] lists where K can start
	// relative to a hit of keyword kw. Built on the rule's first run
	// (prepare): compiling every rule's parts was a third of New, and
	// most rules of a one-image `customs scan` never run.
	splitOnce sync.Once
	parts     []part
	cands     map[int32][]cand
	// maxK is the longest K string (bytes).
	maxK int
	// maxBack bounds how far before a hit a window can start (unbounded:
	// the line window's start).
	maxBack int
	// direct: matches in a window are found by running the regex
	// anchored at the earliest start of each K that passed its part's
	// filter (directMatches), instead of unanchored over the window: the
	// regex looks at nothing before a match (no ^, \A, \b, \B), never
	// matches "" and every part's prefix is class{0,n}. The unanchored
	// search of a big regex (generic-api-key's is 554 instructions, too
	// many for package regexp's backtracker) keeps a thread per start
	// position and costs about a microsecond per byte; anchored runs
	// keep a few and stop where their match does.
	direct bool
	// required: every match holds a string of each set (requiredSets);
	// a rule run on whole texts skips a text that does not.
	required [][]string
	// requiredFold: the same, ASCII case-insensitively (foldSets), for
	// rules without required sets.
	requiredFold [][]string
	// anchored[k] is \A(?:form k of the regex), built on first use.
	anchored     [4]*regexp.Regexp
	anchoredOnce [4]sync.Once
}

type part struct {
	filter *regexp.Regexp // \A(?:filter)
	// pre is the filter with its assertions that look past its end ($,
	// \b, \B) always true: run on up to filterMax bytes of the text
	// whatever the line window, it rejects a hit before its lines are
	// looked up (where the filter would reject it too).
	pre *regexp.Regexp
	// gate is checked before pre and filter (see gate).
	gate      gate
	tail      *regexp.Regexp // \A(?:K·suffix), leftmost-longest
	filterMax int
	prefixMax int
	// class and prefixRunes: the prefix is class{0,prefixRunes} (direct
	// rules only); ascii is class's ASCII part as a bitmap.
	class       []rune
	prefixRunes int
	ascii       [2]uint64
}

// kStart is a place where a direct rule's K may start: a keyword hit
// whose part's filter matched there.
type kStart struct {
	q    int32
	part int32
}

// try is one anchored run of directMatches: at s, for a K at q.
type try struct {
	s, q int
}

type cand struct {
	part int
	off  int // K starts off bytes before the hit
}

type scratch struct {
	hits  []hit
	seen  []bool
	wins  []window
	cand  []candidate
	lines lineIndex
	memo  lineMemo
	// starts of the direct rule being run, sorted by q; inexact: a K
	// whose offset from its hit is unsure (non-ASCII before the hit), so
	// the rule runs unanchored in this text.
	starts  []kStart
	inexact bool
	tries   []try
}

// lineMemo holds the line-target allowlist results of one line.
type lineMemo struct {
	ls, le int
	res    map[*allowlist]bool
}

// lineIndex answers line questions about one text in O(log n): the
// offsets of its newlines, found on first use.
type lineIndex struct {
	data  []byte
	nl    []int32
	built bool
}

func (li *lineIndex) reset(data []byte) {
	li.data, li.nl, li.built = data, li.nl[:0], false
}

// count returns the number of newlines in data[:pos].
func (li *lineIndex) count(pos int) int {
	if !li.built {
		for i := 0; ; {
			j := bytes.IndexByte(li.data[i:], '\n')
			if j < 0 {
				break
			}
			li.nl = append(li.nl, int32(i+j))
			i += j + 1
		}
		li.built = true
	}
	i, _ := slices.BinarySearch(li.nl, int32(pos))
	return i
}

// lineStart returns the start of the n-th line before the one holding
// data[pos] (n = 0: that line's start).
func (li *lineIndex) lineStart(pos, n int) int {
	c := li.count(pos) - n
	if c <= 0 {
		return 0
	}
	return int(li.nl[c-1]) + 1
}

// lineEndAfter returns the offset just after the newline that ends the
// n-th line after the one holding data[pos-1] (len(data) when the text
// ends first).
func (li *lineIndex) lineEndAfter(pos, n int) int {
	j := li.count(pos) + n
	if j >= len(li.nl) {
		return len(li.data)
	}
	return int(li.nl[j]) + 1
}

// lineEnd returns the offset of the newline ending the line holding
// data[pos] (len(data) for the last line).
func (li *lineIndex) lineEnd(pos int) int {
	j := li.count(pos)
	if j >= len(li.nl) {
		return len(li.data)
	}
	return int(li.nl[j])
}

type window struct {
	start, end int
	// cut: the window starts inside a long word, where no match of the
	// file can start (see anchoredWindows).
	cut bool
}

// candidate is one match that passed every check.
type candidate struct {
	r           *rule
	secret      string
	secretStart int // byte offsets in the fragment
	secretEnd   int
	matchStart  int
	matchEnd    int
	line        int // 1-based line of the match start
}

// loadDefaultConfig parses gitleaks' embedded default configuration with
// a private viper instance (gitleaks' own NewDetectorDefaultConfig uses
// the process-wide viper).
func loadDefaultConfig() (config.Config, error) {
	v := viper.New()
	v.SetConfigType("toml")
	if err := v.ReadConfig(strings.NewReader(config.DefaultConfig)); err != nil {
		return config.Config{}, fmt.Errorf("secrets: read gitleaks default config: %w", err)
	}
	var vc config.ViperConfig
	if err := v.Unmarshal(&vc); err != nil {
		return config.Config{}, fmt.Errorf("secrets: decode gitleaks default config: %w", err)
	}
	if vc.Extend.Path != "" || vc.Extend.URL != "" || vc.Extend.UseDefault {
		return config.Config{}, fmt.Errorf("secrets: gitleaks default config extends another config")
	}
	cfg, err := vc.Translate()
	if err != nil {
		return config.Config{}, fmt.Errorf("secrets: compile gitleaks default config: %w", err)
	}
	return cfg, nil
}

func newEngine(cfg config.Config) (*Engine, error) {
	e := &Engine{decodeDepth: DefaultDecodeDepth}
	var err error
	if e.global, err = newAllowlists(cfg.Allowlists); err != nil {
		return nil, err
	}
	if e.globalPaths, err = orPaths(cfg.Allowlists); err != nil {
		return nil, fmt.Errorf("secrets: global allowlist: %w", err)
	}
	e.kwIndex = map[string]int32{}
	kwIndex := e.kwIndex
	for _, id := range cfg.OrderedRules {
		cr, ok := cfg.Rules[id]
		if !ok || cr.SkipReport || len(cr.RequiredRules) > 0 {
			// Composite (multi-part) rules are not in gitleaks' default
			// set; they and their skip-report parts are left out.
			continue
		}
		r := &rule{
			id:       cr.RuleID,
			desc:     cr.Description,
			severity: severityOf(cr.RuleID),
			group:    cr.SecretGroup,
			entropy:  cr.Entropy,
			generic:  strings.Contains(strings.ToLower(cr.RuleID), "generic"),
		}
		if r.allowPaths, err = orPaths(cr.Allowlists); err != nil {
			return nil, fmt.Errorf("secrets: rule %s: allowlist: %w", id, err)
		}
		if r.allow, err = newAllowlists(cr.Allowlists); err != nil {
			return nil, fmt.Errorf("secrets: rule %s: allowlist: %w", id, err)
		}
		if cr.Path != nil {
			p, err := regexp.Compile(cr.Path.String())
			if err != nil {
				return nil, fmt.Errorf("secrets: rule %s: path: %w", id, err)
			}
			r.path = p
		}
		if cr.Regex == nil {
			if r.path != nil {
				e.pathRules = append(e.pathRules, r)
			}
			continue
		}
		src := cr.Regex.String()
		// Translate compiled the rule already: with gitleaks' default
		// (standard library) regexp its result is ours, and compiling the
		// source again would cost a tenth of New.
		re, ok := any(cr.Regex).(*regexp.Regexp)
		if !ok {
			if re, err = regexp.Compile(src); err != nil {
				return nil, fmt.Errorf("secrets: rule %s: %w", id, err)
			}
		}
		r.re = re
		if r.group > re.NumSubexp() {
			return nil, fmt.Errorf("secrets: rule %s: secret group %d out of range", id, r.group)
		}
		var kws []string
		for _, k := range cr.Keywords {
			k = lowerKeyword(k)
			if !validKeyword(k) {
				continue
			}
			kws = append(kws, k)
			ki, ok := kwIndex[k]
			if !ok {
				ki = int32(len(e.keywords))
				kwIndex[k] = ki
				e.keywords = append(e.keywords, k)
			}
			r.kws = append(r.kws, ki)
		}
		if len(kws) < len(cr.Keywords) {
			// A keyword the prefilter cannot look for: always run.
			r.kws = nil
		}
		r.alwaysTrigger = len(r.kws) == 0
		parsed, err := syntax.Parse(src, syntax.Perl)
		if err != nil {
			return nil, fmt.Errorf("secrets: rule %s: %w", id, err)
		}
		r.newlines = maxNewlines(parsed)
		r.lineStart = hasOp(parsed, syntax.OpBeginLine)
		if err := r.compileInner(parsed); err != nil {
			return nil, fmt.Errorf("secrets: rule %s: %w", id, err)
		}
		r.windowed = !r.alwaysTrigger && r.newlines != unbounded && containsKeyword(parsed, kws)
		if !r.windowed {
			r.required = requiredSets(parsed)
			if len(r.required) == 0 {
				r.requiredFold = foldSets(parsed)
			}
		}
		if r.windowed {
			r.parsed = parsed // for prepare
		}
		e.rules = append(e.rules, r)
	}
	if len(e.rules) == 0 {
		return nil, fmt.Errorf("secrets: gitleaks config has no rules")
	}
	var rulePaths []string
	for _, r := range e.pathRules {
		rulePaths = append(rulePaths, r.path.String())
	}
	if e.pathRuleSet, err = newPathSet(rulePaths); err != nil {
		return nil, fmt.Errorf("secrets: rule paths: %w", err)
	}
	words := (len(e.keywords) + 63) / 64
	for _, r := range e.rules {
		r.kwMask = make([]uint64, words)
		for _, k := range r.kws {
			r.kwMask[k/64] |= 1 << (k % 64)
		}
	}
	if e.pf, err = newPrefilter(e.keywords); err != nil {
		return nil, err
	}
	return e, nil
}

// compileInner records which window forms of a regex with \A or \z
// assertions differ from it (innerRe builds them).
func (r *rule) compileInner(parsed *syntax.Regexp) error {
	bt, et := hasOp(parsed, syntax.OpBeginText), hasOp(parsed, syntax.OpEndText)
	for k := 1; k < 4; k++ {
		if k&1 != 0 && bt || k&2 != 0 && et {
			r.innerMask |= 1 << k
			r.parsed = parsed
		}
	}
	return nil
}

// innerRe returns window form k of the rule's regex (k in innerMask),
// built once.
func (r *rule) innerRe(k int) *regexp.Regexp {
	r.innerOnce[k].Do(func() {
		re := r.parsed
		if k&1 != 0 && r.innerMask&(1<<1) != 0 { // \A present
			re = withoutOp(re, syntax.OpBeginText)
		}
		if k&2 != 0 && r.innerMask&(1<<2) != 0 { // \z present
			re = withoutOp(re, syntax.OpEndText)
		}
		// Cannot fail: a valid regex's syntax tree with assertions
		// removed (TestInnerFormsCompile). Should it ever, the anchored
		// regex is the closest safe answer.
		c, err := regexp.Compile(re.String())
		if err != nil {
			c = r.re
		}
		r.inner[k] = c
	})
	return r.inner[k]
}

// anchoredRe returns \A(?:form k of the regex), built once; nil should it
// not compile (directMatches is then not used).
func (r *rule) anchoredRe(k int) *regexp.Regexp {
	r.anchoredOnce[k].Do(func() {
		form := r.re
		if r.innerMask&(1<<k) != 0 {
			form = r.innerRe(k)
		}
		if c, err := regexp.Compile(`\A(?:` + form.String() + `)`); err == nil {
			r.anchored[k] = c
		}
	})
	return r.anchored[k]
}

// split sets r.parts and r.cands when the rule's matches can be split
// around their keyword (see anchoredParts).
func (r *rule) split(parsed *syntax.Regexp, kws []string, kwIndex map[string]int32) error {
	aps, ok := anchoredParts(parsed, kws)
	if !ok {
		return nil
	}
	cands := map[int32][]cand{}
	for pi, ap := range aps {
		filter, err := regexp.Compile(`\A(?:` + ap.filter + `)`)
		if err != nil {
			return fmt.Errorf("filter %q: %w", ap.filter, err)
		}
		tail, err := regexp.Compile(`\A(?:` + ap.tail + `)`)
		if err != nil {
			return fmt.Errorf("tail %q: %w", ap.tail, err)
		}
		tail.Longest()
		pre := filter
		if ap.pre != "" {
			if pre, err = regexp.Compile(`\A(?:` + ap.pre + `)`); err != nil {
				return fmt.Errorf("pre-filter %q: %w", ap.pre, err)
			}
		}
		preParsed, err := syntax.Parse(pre.String(), syntax.Perl)
		if err != nil {
			return fmt.Errorf("pre-filter %q: %w", pre, err)
		}
		p := part{filter: filter, pre: pre, gate: newGate(preParsed), tail: tail, filterMax: ap.filterMax, prefixMax: ap.prefixMax,
			class: ap.class, prefixRunes: ap.prefixRunes}
		for i := 0; i+1 < len(p.class); i += 2 {
			for c := p.class[i]; c <= min(p.class[i+1], utf8.RuneSelf-1); c++ {
				p.ascii[c/64] |= 1 << (c % 64)
			}
		}
		r.parts = append(r.parts, p)
		for _, s := range ap.kstrings {
			r.maxK = max(r.maxK, len(s))
			for _, k := range kws {
				ki := kwIndex[k]
				for off := 0; off+len(k) <= len(s); off++ {
					if s[off:off+len(k)] != k {
						continue
					}
					c := cand{part: pi, off: off}
					if !slices.Contains(cands[ki], c) {
						cands[ki] = append(cands[ki], c)
					}
				}
			}
		}
	}
	r.cands = cands
	r.direct = !nullable(parsed) && !hasOp(parsed, syntax.OpBeginLine) && !hasOp(parsed, syntax.OpBeginText) &&
		!hasOp(parsed, syntax.OpWordBoundary) && !hasOp(parsed, syntax.OpNoWordBoundary)
	for _, ap := range aps {
		r.direct = r.direct && ap.prefixOK
	}
	r.maxBack = 0
	for pi, p := range r.parts {
		if p.prefixMax == unbounded {
			r.maxBack = unbounded
			break
		}
		for _, cs := range cands {
			for _, c := range cs {
				if c.part == pi {
					r.maxBack = max(r.maxBack, c.off+p.prefixMax+maxWordWalk+utf8.UTFMax)
				}
			}
		}
	}
	return nil
}

// orPaths returns the path patterns of the allowlists without a
// condition (OR), nil when there are none.
func orPaths(lists []*config.Allowlist) (*pathSet, error) {
	var pats []string
	for _, a := range lists {
		if a.MatchCondition != config.AllowlistMatchOr {
			continue
		}
		for _, p := range a.Paths {
			pats = append(pats, p.String())
		}
	}
	if len(pats) == 0 {
		return nil, nil
	}
	return newPathSet(pats)
}

// pathAllowed reports whether gitleaks' global allowlists skip path.
func (e *Engine) pathAllowed(path string) bool { return e.globalPaths.match(path) }

// pathFindings returns the path-only rules (e.g. pkcs12-file) that path
// matches.
func (e *Engine) pathFindings(path string) []*rule {
	var out []*rule
	e.pathRuleSet.each(path, func(i int) bool {
		if r := e.pathRules[i]; !r.allowPaths.match(path) {
			out = append(out, r)
		}
		return true
	})
	return out
}

// detect runs the rules over data (a file's content or one config
// string) and returns at most limit findings, in order of rule then
// position. path is "" for config strings.
func (e *Engine) detect(path string, data []byte, limit int) []candidate {
	if len(data) == 0 {
		return nil
	}
	sc, _ := e.pool.Get().(*scratch)
	if sc == nil {
		sc = &scratch{seen: make([]bool, len(e.keywords))}
	}
	defer func() {
		clear(sc.seen)
		clear(sc.cand) // no secret stays behind in the pool
		sc.hits, sc.wins, sc.cand = sc.hits[:0], sc.wins[:0], sc.cand[:0]
		sc.lines.reset(nil)
		sc.memo.ls, sc.memo.le = -1, -1
		if cap(sc.hits) > 1<<16 {
			sc.hits = nil
		}
		if cap(sc.lines.nl) > 1<<16 {
			sc.lines.nl = nil
		}
		e.pool.Put(sc)
	}()
	sc.hits = e.pf.scan(data, sc.hits[:0], sc.seen)
	sc.lines.reset(data)
	sc.memo.ls, sc.memo.le = -1, -1

	for _, r := range e.rules {
		if !r.alwaysTrigger && !triggered(r, sc.seen) {
			continue
		}
		if r.path != nil && (path == "" || !r.path.MatchString(path)) {
			continue
		}
		if path != "" && r.allowPaths.match(path) {
			continue
		}
		e.runRule(r, path, data, sc)
	}
	cands := dedupeGeneric(sc.cand)
	if len(cands) == 0 {
		return nil
	}
	return slices.Clone(cands[:min(len(cands), limit)])
}

// prepare builds what a windowed rule needs on its first run (its
// parts, see split). A rule whose parts cannot be built runs in plain
// line windows (parts nil): slower, with the same matches
// (TestEveryRuleSplits keeps the default rules splitting).
func (e *Engine) prepare(r *rule) {
	r.splitOnce.Do(func() {
		kws := make([]string, len(r.kws))
		for i, k := range r.kws {
			kws[i] = e.keywords[k]
		}
		if err := r.split(r.parsed, kws, e.kwIndex); err != nil {
			r.parts, r.cands = nil, nil
		}
		if r.innerMask == 0 {
			r.parsed = nil // innerRe never reads it
		}
	})
}

// runRule runs one triggered rule over data, around its keyword hits
// when its regex allows.
func (e *Engine) runRule(r *rule, path string, data []byte, sc *scratch) {
	if r.windowed {
		e.prepare(r)
	}
	switch {
	case !r.windowed:
		if !holdsRequired(data, r.required) || !holdsFold(data, r.requiredFold) {
			// A whole-text regex costs about a microsecond per byte
			// (curl-auth-user's: the word curl is common; the -u or
			// --user every match has is not).
			return
		}
		e.matchIn(r, path, data, window{start: 0, end: len(data)}, sc, false)
		return
	case r.parts != nil:
		sc.starts, sc.inexact = sc.starts[:0], false
		sc.wins = anchoredWindows(r, e.keywords, &sc.lines, sc.hits, sc.wins[:0], sc)
		if r.direct && !sc.inexact {
			slices.SortFunc(sc.starts, func(a, b kStart) int { return int(a.q - b.q) })
			for _, w := range sc.wins {
				e.matchIn(r, path, data, w, sc, true)
			}
			return
		}
	default:
		sc.wins = windows(r, &sc.lines, sc.hits, sc.wins[:0])
	}
	for _, w := range sc.wins {
		e.matchIn(r, path, data, w, sc, false)
	}
}

func triggered(r *rule, seen []bool) bool {
	for _, k := range r.kws {
		if seen[k] {
			return true
		}
	}
	return false
}

// windows returns the merged line windows around r's keyword hits: the
// line of each hit with r.newlines lines before and after it (the last
// line's newline included). A match of a windowed rule contains a keyword
// and spans at most r.newlines newlines, so it lies inside the window of
// that keyword's hit. Keywords are on one line, so windows come in order.
func windows(r *rule, li *lineIndex, hits []hit, out []window) []window {
	for _, h := range hits {
		if r.kwMask[h.kw/64]&(1<<(h.kw%64)) == 0 {
			continue
		}
		end := li.lineEndAfter(int(h.end), r.newlines)
		if n := len(out); n > 0 && int(h.start) < out[n-1].end {
			out[n-1].end = max(out[n-1].end, end)
			continue
		}
		start := li.lineStart(int(h.start), r.newlines)
		if n := len(out); n > 0 && start <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, end)
			continue
		}
		out = append(out, window{start: start, end: end})
	}
	return out
}

// anchoredWindows returns the windows where r can match: for each hit of
// one of its keywords, each place K (see anchoredPart) can start around
// it is checked with the part's filter, then its tail gives the furthest
// end of a match; the window spans the longest prefix before K to that
// end. Hits where no match can be built open no window. Every step per
// hit reads a bounded number of bytes (tails scanning further are paid
// for by a budget linear in the text), and a hit whose windows would all
// lie inside the previous window is skipped, so that a file made of
// keywords costs linear time.
//
// For a direct rule it also lists in sc.starts every place a K can start
// (each hit's candidates that pass the filter, skipped hits included:
// their K may begin a match inside the previous window), or sets
// sc.inexact.
func anchoredWindows(r *rule, keywords []string, li *lineIndex, hits []hit, out []window, sc *scratch) []window {
	data := li.data
	// extend bounds the bytes tails may scan past maxTailScan in this
	// text (counted as if each scan ran to its window's end), so that a
	// long line full of keywords still costs linear time; once spent,
	// tails are cut short again (and windows run to their line window's
	// end, as safe and slower).
	extend := len(data) + maxTailExtend
	for _, h := range hits {
		if r.kwMask[h.kw/64]&(1<<(h.kw%64)) == 0 {
			continue
		}
		hs, he := int(h.start), int(h.end)
		// Non-ASCII spellings (U+212A for k…) shift K's offsets.
		exact := he-hs == len(keywords[h.kw]) && isASCII(data[max(0, hs-r.maxK):hs])
		first := 0
		if exact {
			if first = preMatch(r, data, hs, r.cands[h.kw]); first < 0 {
				continue // most hits: not followed by what the rule needs
			}
		}
		skip := false
		winEnd := li.lineEndAfter(he, r.newlines)
		lineLo := li.lineStart(hs, r.newlines)
		if n := len(out); n > 0 && winEnd <= out[n-1].end {
			lower := lineLo
			if r.maxBack != unbounded {
				lower = max(lineLo, hs-r.maxBack)
				if r.lineStart {
					lower = li.lineStart(lower, 0)
				}
			}
			if lower >= out[n-1].start {
				// Nothing this hit could add to the windows, but a
				// direct rule needs its starts.
				if !r.direct {
					continue
				}
				skip = true
			}
		}
		lo, hi := -1, -1
		cs := r.cands[h.kw]
		if !exact {
			// Be conservative.
			if r.direct {
				addStarts(r, data, h, winEnd, sc)
			}
			if skip {
				continue
			}
			lo, hi = lineLo, winEnd
			cs = nil
		}
		for ci, c := range cs {
			q := hs - c.off
			if q < 0 || ci < first {
				continue // the pre-filter rejected it: so would the filter
			}
			p := &r.parts[c.part]
			b := data[q:min(winEnd, q+p.filterMax+utf8.UTFMax)]
			// The candidate the pre-filter passed needs no second run
			// when the filter is the pre-filter and reads the same bytes.
			known := ci == first && p.pre == p.filter && len(b) == min(len(data)-q, p.filterMax+utf8.UTFMax)
			if !known && (!p.gate.pass(b) || !p.filter.Match(b)) {
				continue
			}
			if r.direct {
				sc.starts = append(sc.starts, kStart{q: int32(q), part: int32(c.part)})
			}
			if skip {
				continue
			}
			tailEnd := min(winEnd, q+maxTailScan)
			if tailEnd < winEnd && extend >= winEnd-tailEnd {
				// A long line (minified code, a string table): scanning to
				// the window's end costs only as far as a match can go
				// (the tail is anchored: package regexp stops when no
				// thread is left), while cutting the scan short would
				// make the full regex run to the window's end.
				extend -= winEnd - tailEnd
				tailEnd = winEnd
			}
			loc := p.tail.FindIndex(data[q:tailEnd])
			switch {
			case loc == nil && tailEnd == winEnd:
				continue // no match can be built on this K
			case loc == nil || tailEnd < winEnd:
				hi = winEnd // cut short: a match may run to the window's end
			default:
				hi = max(hi, q+loc[1])
			}
			start := lineLo
			if p.prefixMax != unbounded {
				start = max(lineLo, q-p.prefixMax)
			}
			if lo < 0 || start < lo {
				lo = start
			}
		}
		if skip || lo < 0 {
			continue
		}
		// Start where the regex sees the same context as in the file: a
		// line start for rules with (?m)^, else a rune start after a
		// non-word byte (for \b). End one rune past the furthest end
		// (within the line window), so that an assertion there ($ with
		// (?m), \b) sees the next byte: no match reaches further, and
		// the regex's cost grows with the window (a window short enough
		// lets package regexp backtrack instead of running its NFA).
		w := window{start: lo}
		if r.lineStart {
			w.start = li.lineStart(lo, 0)
		}
		for k := 0; w.start > 0 && (!utf8.RuneStart(data[w.start]) || isWordByte(data[w.start-1])); k++ {
			if k == maxWordWalk {
				// Inside a very long word: no match of the file starts
				// here (it is further back than any prefix), so matches
				// the window finds at its start are dropped.
				w.cut = true
				break
			}
			w.start--
		}
		w.end = min(len(data), hi+1)
		for w.end < len(data) && !utf8.RuneStart(data[w.end]) {
			w.end++
		}
		w.end = min(w.end, winEnd)
		out = append(out, w)
	}
	if len(out) < 2 {
		return out
	}
	slices.SortFunc(out, func(a, b window) int { return a.start - b.start })
	merged := out[:1]
	for _, w := range out[1:] {
		last := &merged[len(merged)-1]
		if w.start <= last.end {
			last.end = max(last.end, w.end)
			continue
		}
		merged = append(merged, w)
	}
	return merged
}

// preMatch returns the index of the first of cs, the candidate K starts
// of a hit at hs (exact: ASCII before it), that passes its part's
// pre-filter, or -1. A filter match on data[q:min(winEnd,
// q+filterMax+UTFMax)] is a pre-filter match on
// data[q:q+filterMax+UTFMax]: the pre-filter drops no hit the filter
// keeps, and the candidates before the index need no filter run.
func preMatch(r *rule, data []byte, hs int, cs []cand) int {
	for i, c := range cs {
		q := hs - c.off
		if q < 0 {
			continue
		}
		p := &r.parts[c.part]
		if b := data[q:min(len(data), q+p.filterMax+utf8.UTFMax)]; p.gate.pass(b) && p.pre.Match(b) {
			return i
		}
	}
	return -1
}

// addStarts appends to sc.starts the places around hit h where a K of
// direct rule r can start and its part's filter matches (the filter reads
// no further than winEnd, as in anchoredWindows). A K spelled with
// non-ASCII bytes before the keyword has an unsure offset: sc.inexact.
func addStarts(r *rule, data []byte, h hit, winEnd int, sc *scratch) {
	hs := int(h.start)
	for _, c := range r.cands[h.kw] {
		q := hs - c.off
		if q < 0 {
			continue
		}
		if !isASCII(data[q:hs]) {
			sc.inexact = true
			return
		}
		p := &r.parts[c.part]
		if b := data[q:min(winEnd, q+p.filterMax+utf8.UTFMax)]; p.gate.pass(b) && p.filter.Match(b) {
			sc.starts = append(sc.starts, kStart{q: int32(q), part: int32(c.part)})
		}
	}
}

// prefixStart returns the earliest start, not before floor, of a match
// whose K starts at q: the prefix class{0,prefixRunes} walked back from q.
// Any start from there to q reaches the same K, so when a match holds
// that K, one starts there. Walking back decodes what the regex decodes
// forwards: a rune of the class is ASCII or valid UTF-8 (U+FFFD is not in
// it), whose lead byte no earlier sequence can absorb.
func prefixStart(data []byte, q, floor int, p *part) int {
	s := q
	for n := 0; n < p.prefixRunes && s > floor; n++ {
		if c := data[s-1]; c < utf8.RuneSelf {
			if p.ascii[c/64]&(1<<(c%64)) == 0 {
				break
			}
			s--
			continue
		}
		c, size := utf8.DecodeLastRune(data[floor:s])
		if !classHas(p.class, c) {
			break
		}
		s -= size
	}
	return s
}

// directMatches returns what re.FindAllIndex(data[w.start:w.end],
// maxMatches) returns for direct rule r (re its window form k, are the
// anchored one), from anchored runs only.
//
// Every match holds a K at a place in sc.starts (the filter is necessary).
// The leftmost match from pos starts at prefixStart of its K (floor pos):
// a match exists from there, and none starts earlier. So trying the
// prefix starts of the places in increasing order, the first anchored
// run that matches finds the leftmost match, and finds what the
// unanchored search does there (leftmost-first from that start). A start
// that failed never matches later: its K's suffix matches nowhere. The
// next search begins at the match's end, as FindAll's does (matches are
// never empty).
func directMatches(r *rule, are *regexp.Regexp, data []byte, w window, sc *scratch) [][]int {
	starts := sc.starts
	i, _ := slices.BinarySearchFunc(starts, w.start, func(s kStart, t int) int { return int(s.q) - t })
	tries := sc.tries[:0]
	for ; i < len(starts) && int(starts[i].q) < w.end; i++ {
		q := int(starts[i].q)
		tries = append(tries, try{s: prefixStart(data, q, w.start, &r.parts[starts[i].part]), q: q})
	}
	slices.SortFunc(tries, func(a, b try) int {
		if a.s != b.s {
			return a.s - b.s
		}
		return a.q - b.q
	})
	sc.tries = tries
	var out [][]int
	pos, tried := w.start, -1
	for _, t := range tries {
		if len(out) == maxMatches {
			break
		}
		s := max(t.s, pos)
		if t.q < pos || s <= tried {
			continue
		}
		tried = s
		loc := are.FindIndex(data[s:w.end])
		if loc == nil || loc[1] == 0 {
			continue
		}
		out = append(out, []int{s - w.start, s + loc[1] - w.start})
		pos = s + loc[1]
	}
	return out
}

// maxCandidates bounds the findings examined in one text, maxMatches the
// regex matches of one rule in one window: a file made of thousands of
// credentials-like strings costs bounded time (and yields its first
// findings).
const (
	maxCandidates = 1000
	maxMatches    = 16 * maxCandidates
)

// maxTailScan bounds the bytes a tail is run on; a longer line is
// assumed to let the match run to the window's end, unless the text's
// extension budget (len(text) + maxTailExtend per rule) pays for
// scanning to the window's end.
const (
	maxTailScan   = 4096
	maxTailExtend = 1 << 20
)

// maxWordWalk bounds the walk back to a word boundary.
const maxWordWalk = 256

func isWordByte(b byte) bool {
	return b == '_' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// matchIn runs r's regex over data[w.start:w.end] and records the
// findings that pass gitleaks' checks; direct: through directMatches
// (sc.starts set by anchoredWindows).
func (e *Engine) matchIn(r *rule, path string, data []byte, w window, sc *scratch, direct bool) {
	li := &sc.lines
	text := data[w.start:w.end]
	re := r.re
	k := 0
	if w.start > 0 {
		k |= 1
	}
	if w.end < len(data) {
		k |= 2
	}
	if r.innerMask&(1<<k) != 0 {
		re = r.innerRe(k)
	}
	if len(sc.cand) >= maxCandidates {
		return
	}
	var matches [][]int
	var are *regexp.Regexp
	if direct {
		are = r.anchoredRe(k)
	}
	if are != nil {
		matches = directMatches(r, are, data, w, sc)
	} else {
		matches = re.FindAllIndex(text, maxMatches)
	}
	for _, m := range matches {
		if len(sc.cand) >= maxCandidates {
			return
		}
		ms, me := w.start+m[0], w.start+m[1]
		// No match of the file ends at a window's end: windows reach past
		// every match they hold; nor starts at a cut start.
		if (me == w.end && w.end < len(data)) || (w.cut && ms == w.start) {
			continue
		}
		// gitleaks trims newlines around the match.
		for ms < me && data[ms] == '\n' {
			ms++
		}
		for me > ms && data[me-1] == '\n' {
			me--
		}
		if ms == me || me-ms > MaxMatchBytes {
			continue
		}
		match := data[ms:me]
		ss, se := ms, me
		if sub := r.re.FindSubmatchIndex(match); len(sub) >= 4 {
			if r.group > 0 {
				if sub[2*r.group] < 0 {
					continue
				}
				ss, se = ms+sub[2*r.group], ms+sub[2*r.group+1]
			} else {
				for g := 1; 2*g < len(sub); g++ {
					if sub[2*g] >= 0 && sub[2*g+1] > sub[2*g] {
						ss, se = ms+sub[2*g], ms+sub[2*g+1]
						break
					}
				}
			}
		}
		if se <= ss {
			continue
		}
		secret := string(data[ss:se])
		if r.entropy != 0 && shannonEntropy(secret) <= r.entropy {
			continue
		}
		ls := li.lineStart(ms, 0)
		le := li.lineEnd(me)
		c := candidate{
			r:           r,
			secret:      secret,
			secretStart: ss, secretEnd: se,
			matchStart: ms, matchEnd: me,
		}
		if sc.memo.ls != ls || sc.memo.le != le {
			sc.memo.ls, sc.memo.le = ls, le
			clear(sc.memo.res)
		}
		if findingAllowed(e.global, path, secret, data[ms:me], data[ls:le], &sc.memo) ||
			findingAllowed(r.allow, path, secret, data[ms:me], data[ls:le], &sc.memo) {
			continue
		}
		c.line = li.count(ms) + 1
		sc.cand = append(sc.cand, c)
	}
}

// findingAllowed follows gitleaks' checkFindingAllowed (and, for AND
// allowlists, its path check; commits do not apply).
// Allowlist regexes on the line are evaluated once per line (memo): a
// long line with many matches would otherwise cost its length each time.
func findingAllowed(lists []*allowlist, path, secret string, match, line []byte, memo *lineMemo) bool {
	for _, a := range lists {
		var regexOK bool
		switch a.target {
		case "match":
			regexOK = a.regexAllowed(string(match))
		case "line":
			ok, done := memo.res[a]
			if !done {
				ok = a.regexAllowed(string(line))
				if memo.res == nil {
					memo.res = map[*allowlist]bool{}
				}
				memo.res[a] = ok
			}
			regexOK = ok
		default:
			regexOK = a.regexAllowed(secret)
		}
		stopOK := a.containsStopWord(secret)
		if a.and {
			var checks []bool
			if a.commits {
				checks = append(checks, false) // no commit here
			}
			if a.pathPat != nil {
				checks = append(checks, a.pathAllowed(path))
			}
			if a.regexPat != nil {
				checks = append(checks, regexOK)
			}
			if a.stop != nil {
				checks = append(checks, stopOK)
			}
			all := true
			for _, c := range checks {
				all = all && c
			}
			if all {
				return true
			}
			continue
		}
		if regexOK || stopOK {
			return true
		}
	}
	return false
}

// dedupeGeneric drops a generic rule's finding when a specific rule found
// a secret containing it on the same line (gitleaks' filter).
func dedupeGeneric(cands []candidate) []candidate {
	if !slices.ContainsFunc(cands, func(c candidate) bool { return c.r.generic }) {
		return cands
	}
	var out []candidate
	for i := range cands {
		c := &cands[i]
		keep := true
		if c.r.generic {
			for j := range cands {
				o := &cands[j]
				if o.line == c.line && o.r != c.r && !o.r.generic && strings.Contains(o.secret, c.secret) {
					keep = false
					break
				}
			}
		}
		if keep {
			out = append(out, *c)
		}
	}
	return out
}

// shannonEntropy is gitleaks' entropy: over runes, divided by the byte
// length.
func shannonEntropy(data string) float64 {
	if data == "" {
		return 0
	}
	var ascii [128]int
	var other map[rune]int
	for _, r := range data {
		if r < utf8.RuneSelf {
			ascii[r]++
			continue
		}
		if other == nil {
			other = map[rune]int{}
		}
		other[r]++
	}
	inv := 1.0 / float64(len(data))
	var ent float64
	add := func(n int) {
		if n > 0 {
			f := float64(n) * inv
			ent -= f * math.Log2(f)
		}
	}
	for _, n := range ascii {
		add(n)
	}
	for _, n := range other {
		add(n)
	}
	return ent
}
