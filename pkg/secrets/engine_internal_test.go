package secrets

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// genMatch returns a random string that re (usually) matches: unbounded
// repetitions get a few extra copies, assertions produce nothing.
func genMatch(rng *rand.Rand, re *syntax.Regexp, b *strings.Builder) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 && rng.IntN(3) == 0 {
				r = []rune(strings.ToUpper(string(r)))[0]
			}
			b.WriteRune(r)
		}
	case syntax.OpCharClass:
		b.WriteRune(pickRune(rng, re.Rune))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteByte("abcXYZ019 _-"[rng.IntN(12)])
	case syntax.OpCapture:
		genMatch(rng, re.Sub[0], b)
	case syntax.OpConcat:
		for _, s := range re.Sub {
			genMatch(rng, s, b)
		}
	case syntax.OpAlternate:
		genMatch(rng, re.Sub[rng.IntN(len(re.Sub))], b)
	case syntax.OpQuest:
		if rng.IntN(2) == 0 {
			genMatch(rng, re.Sub[0], b)
		}
	case syntax.OpStar, syntax.OpPlus:
		n := rng.IntN(4)
		if re.Op == syntax.OpPlus {
			n++
		}
		for range n {
			genMatch(rng, re.Sub[0], b)
		}
	case syntax.OpRepeat:
		n := re.Min
		if re.Max < 0 {
			n += rng.IntN(4)
		} else if re.Max > re.Min {
			n += rng.IntN(re.Max - re.Min + 1)
		}
		for range n {
			genMatch(rng, re.Sub[0], b)
		}
	}
}

// pickRune picks a rune of a class, ASCII when the class has some.
func pickRune(rng *rand.Rand, ranges []rune) rune {
	var ascii []rune
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1] && r < utf8.RuneSelf; r++ {
			if r >= ' ' || r == '\n' || r == '\t' {
				ascii = append(ascii, r)
			}
		}
	}
	if len(ascii) > 0 {
		return ascii[rng.IntN(len(ascii))]
	}
	i := rng.IntN(len(ranges)/2) * 2
	return ranges[i] + rune(rng.IntN(int(min(ranges[i+1]-ranges[i], 1000))+1))
}

var contexts = []string{
	"%s\n",
	"export TOKEN=%s\n",
	"    api_key = \"%s\"\n",
	"const x = '%s';\n",
	"<add key=\"ApiKey\" value=\"%s\" />\n",
	"curl -H 'X: y' %s | sh\n",
	"config:\n  secret: %s\n  other: 1\n",
	"# comment %s end\n",
	"func f() {\n\treturn %s\n}\n",
	"ENV A=%s B=c\n",
	"%s%s\n",
	"prefix%ssuffix\n",
	"%s %s,%s\n",
	"a=1;key=value;token=abc;auth=x;api=y;access=z;secret=s; %s;key=value;%s\n",
	"\u212aey = %s\n\u017fecret: %s\n",
	"password:\n\n  %s\n",
	"\"\u00e9t\u00e9\": \"%s\", \"\u00fc\": \"%s\"\n",
}

// naive runs every triggered rule over the whole text, as gitleaks does.
func naive(e *Engine, path string, data []byte) []candidate {
	sc := &scratch{seen: make([]bool, len(e.keywords))}
	sc.hits = e.pf.scan(data, nil, sc.seen)
	sc.lines.reset(data)
	sc.memo.ls = -1
	for _, r := range e.rules {
		if !r.alwaysTrigger && !triggered(r, sc.seen) {
			continue
		}
		if r.path != nil && (path == "" || !r.path.MatchString(path)) {
			continue
		}
		e.matchIn(r, path, data, window{start: 0, end: len(data)}, sc, false)
	}
	return dedupeGeneric(sc.cand)
}

func optimized(e *Engine, path string, data []byte) []candidate {
	return e.detect(path, data, 1<<30)
}

func candKeys(cs []candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s@%d-%d line %d secret %q", c.r.id, c.matchStart, c.matchEnd, c.line, c.secret))
	}
	slices.Sort(out)
	return out
}

// TestWindowsEquivalent checks the engine's windowed matching against
// running every triggered rule over whole texts: generated matches of
// every rule in assorted contexts, and real source files.
func TestWindowsEquivalent(t *testing.T) {
	e := defaultEngine(t)
	rng := rand.New(rand.NewPCG(seed(), 2))
	var docs [][]byte
	for _, r := range e.rules {
		parsed, err := syntax.Parse(r.re.String(), syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			var doc bytes.Buffer
			for range 3 {
				c := contexts[rng.IntN(len(contexts))]
				var args []any
				for range strings.Count(c, "%s") {
					var m strings.Builder
					genMatch(rng, parsed, &m)
					args = append(args, m.String())
				}
				fmt.Fprintf(&doc, c, args...)
				doc.WriteString("some filler line with key words: token, auth, api\n")
			}
			docs = append(docs, doc.Bytes())
		}
	}
	docs = append(docs, sourceSample(t, 512<<10)...)
	matched := 0
	for i, d := range docs {
		want := candKeys(naive(e, "app/file.txt", d))
		cands := optimized(e, "app/file.txt", d)
		got := candKeys(cands)
		for k := range cands {
			ex := excerpt(d, &cands[k], cands)
			if !utf8.ValidString(ex) || strings.ContainsAny(ex, "\n\r\t") {
				t.Errorf("doc %d: excerpt %q is not one clean line", i, ex)
			}
			for _, o := range cands {
				if strings.Contains(ex, o.secret) {
					t.Errorf("doc %d: excerpt %q holds the secret %q", i, ex, o.secret)
				}
			}
		}
		matched += len(want)
		if !slices.Equal(got, want) {
			t.Errorf("doc %d: windowed findings differ\n--- got\n%s\n--- want\n%s\n--- doc\n%.2000s", i, strings.Join(got, "\n"), strings.Join(want, "\n"), d)
		}
	}
	if matched < len(e.rules) {
		t.Errorf("only %d matches in generated documents for %d rules", matched, len(e.rules))
	}
	t.Logf("%d documents, %d findings", len(docs), matched)
}

// sourceSample returns up to n bytes of text files of the Go distribution
// (source, docs, test data with keys and tokens).
func sourceSample(t *testing.T, n int) [][]byte {
	var out [][]byte
	size := 0
	root := filepath.Join(runtime.GOROOT(), "src")
	for _, dir := range []string{"crypto/tls", "net/http", "encoding/json", "crypto/x509", "cmd/go/testdata/script"} {
		_ = filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || size >= n {
				return filepath.SkipDir
			}
			if d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil || len(b) > 1<<20 || bytes.IndexByte(b, 0) >= 0 {
				return nil
			}
			out = append(out, b)
			size += len(b)
			return nil
		})
	}
	if size == 0 {
		t.Log("no Go sources found")
	}
	return out
}

func TestRulesAnalysed(t *testing.T) {
	e := defaultEngine(t)
	var whole, lines, anchored []string
	for _, r := range e.rules {
		switch {
		case !r.windowed:
			whole = append(whole, r.id)
		case r.parts == nil:
			lines = append(lines, r.id)
		default:
			anchored = append(anchored, r.id)
		}
	}
	t.Logf("%d rules: %d split around their keyword, %d in line windows, %d on whole files (%s)",
		len(e.rules), len(anchored), len(lines), len(whole), strings.Join(whole, " "))
	// The rules that run most often must not be the slow kind.
	for _, id := range []string{"generic-api-key", "aws-access-token", "github-pat", "jwt", "vault-service-token"} {
		i := slices.IndexFunc(e.rules, func(r *rule) bool { return r.id == id })
		if i < 0 || !e.rules[i].windowed {
			t.Errorf("rule %s is not windowed", id)
		}
	}
}

func seed() uint64 {
	var s uint64 = 1
	if v := os.Getenv("SECRETS_TEST_SEED"); v != "" {
		fmt.Sscan(v, &s)
	}
	return s
}

// The window forms are built on first use (innerRe), where an error could
// not be reported: every form of the default rules compiles to what the
// eager construction built (the form without \A and/or \z).
func TestInnerFormsCompile(t *testing.T) {
	e := defaultEngine(t)
	forms := 0
	for _, r := range e.rules {
		parsed, err := syntax.Parse(r.re.String(), syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		bt, et := hasOp(parsed, syntax.OpBeginText), hasOp(parsed, syntax.OpEndText)
		for k := 1; k < 4; k++ {
			want := parsed
			if k&1 != 0 && bt {
				want = withoutOp(want, syntax.OpBeginText)
			}
			if k&2 != 0 && et {
				want = withoutOp(want, syntax.OpEndText)
			}
			if (want != parsed) != (r.innerMask&(1<<k) != 0) {
				t.Errorf("rule %s, form %d: in innerMask %v, differs %v", r.id, k, r.innerMask&(1<<k) != 0, want != parsed)
			}
			if want == parsed {
				continue
			}
			forms++
			wantRe, err := regexp.Compile(want.String())
			if err != nil {
				t.Fatalf("rule %s, form %d: %v", r.id, k, err)
			}
			if got := r.innerRe(k); got == r.re || got.String() != wantRe.String() {
				t.Errorf("rule %s, form %d: innerRe = %q, want %q", r.id, k, got, wantRe)
			}
		}
	}
	if forms == 0 {
		t.Error("no rule has a window form")
	}
}

// defaultEngine is the engine on gitleaks' default rules, for tests.
// newDefaultEngine is New's engine, its rules not run yet.
func newDefaultEngine(t testing.TB) *Engine {
	t.Helper()
	cfg, err := loadDefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func defaultEngine(t testing.TB) *Engine {
	t.Helper()
	e := newDefaultEngine(t)
	// The tests below look at rules' parts: build them as a first run would.
	for _, r := range e.rules {
		if r.windowed {
			e.prepare(r)
		}
	}
	return e
}

// Parts are built on a rule's first run (prepare), where an error can
// only fall back to plain windows: every windowed default rule must
// build them without one, most with parts, and prepare must keep them.
func TestEveryRuleSplits(t *testing.T) {
	e := newDefaultEngine(t)
	kwIndex := map[string]int32{}
	for i, k := range e.keywords {
		kwIndex[k] = int32(i)
	}
	windowed, split := 0, 0
	for _, r := range e.rules {
		if !r.windowed {
			continue
		}
		windowed++
		if r.parts != nil || r.parsed == nil {
			t.Fatalf("rule %s: split before its first run", r.id)
		}
		src := r.parsed
		var kws []string
		for _, k := range r.kws {
			kws = append(kws, e.keywords[k])
		}
		e.prepare(r)
		if r.parsed != nil && r.innerMask == 0 {
			t.Errorf("rule %s: prepare kept the parsed regex", r.id)
		}
		again := &rule{}
		if err := again.split(src, kws, kwIndex); err != nil {
			t.Errorf("rule %s: %v", r.id, err)
		}
		if len(again.parts) != len(r.parts) {
			t.Errorf("rule %s: %d parts on first run, %d built again", r.id, len(r.parts), len(again.parts))
		}
		if r.parts != nil {
			split++
		}
	}
	if windowed < 100 || split < windowed/2 {
		t.Errorf("%d windowed rules, %d with parts", windowed, split)
	}
}
