package secrets

import (
	"bytes"
	"slices"
	"strings"
	"unicode/utf8"
)

const (
	// minPartial is the shortest secret of which a few characters are
	// shown; shorter ones are masked completely.
	minPartial = 16
	showHead   = 4
	showTail   = 2
	ellipsis   = "…"
	// excerptBefore and excerptAfter bound the context kept around the
	// secret in an excerpt (bytes, cut on rune boundaries).
	excerptBefore = 60
	excerptAfter  = 40
)

// Redact returns the form of secret that may appear in a report: at most
// its first 4 and last 2 characters around "…", or "…" alone when the
// secret is shorter than 16 characters.
func Redact(secret string) string {
	n := utf8.RuneCountInString(secret)
	if n < minPartial {
		return ellipsis
	}
	head, tail := 0, len(secret) // byte offsets
	for k := 0; k < showHead; k++ {
		_, size := utf8.DecodeRuneInString(secret[head:])
		head += size
	}
	for k := 0; k < showTail; k++ {
		_, size := utf8.DecodeLastRuneInString(secret[:tail])
		tail -= size
	}
	return clean(secret[:head]) + ellipsis + clean(secret[tail:])
}

// excerpt returns the line of data holding c's secret, cut to a few
// dozen bytes around it, with c's secret redacted (Redact) and every other
// secret found in data (all) that shows in the cut redacted too, or
// masked completely when the cut splits it. When the secret runs past the
// end of its line, the excerpt ends with it.
func excerpt(data []byte, c *candidate, all []candidate) string {
	ss, se := c.secretStart, c.secretEnd
	ls := lastIndexNL(data[:ss]) + 1
	le := len(data)
	if i := indexNL(data[ss:]); i >= 0 {
		le = ss + i
	}
	le = max(le, se) // a multi-line secret: nothing after it
	cs := max(ls, ss-excerptBefore)
	for cs < ss && !utf8.RuneStart(data[cs]) {
		cs++
	}
	ce := min(le, se+excerptAfter)
	for ce > se && ce < len(data) && !utf8.RuneStart(data[ce]) {
		ce--
	}
	if ce > le {
		ce = le
	}

	// Secret spans inside [cs, ce), in order; overlapping ones merged.
	type span struct {
		start, end int
		text       string // the redaction
	}
	var spans []span
	for i := range all {
		o := &all[i]
		if o.secretEnd <= cs || o.secretStart >= ce {
			continue
		}
		red := Redact(o.secret)
		if o.secretStart < cs || o.secretEnd > ce {
			red = ellipsis // cut by the excerpt's edge
		}
		spans = append(spans, span{max(o.secretStart, cs), min(o.secretEnd, ce), red})
	}
	if !slices.ContainsFunc(spans, func(sp span) bool { return sp.start <= ss && ss < sp.end }) {
		spans = append(spans, span{ss, se, Redact(c.secret)}) // c is not in all
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })

	var b strings.Builder
	if cs > ls {
		b.WriteString(ellipsis)
	}
	pos := cs
	for _, sp := range spans {
		if sp.start < pos { // overlaps the previous one
			if sp.end > pos {
				b.WriteString(ellipsis)
				pos = sp.end
			}
			continue
		}
		b.WriteString(clean(string(data[pos:sp.start])))
		b.WriteString(sp.text)
		pos = sp.end
	}
	if pos < ce {
		b.WriteString(clean(string(data[pos:ce])))
	}
	if ce < le {
		b.WriteString(ellipsis)
	}
	out := strings.TrimSpace(b.String())
	for i := range all {
		if strings.Contains(out, all[i].secret) {
			return Redact(c.secret) // never a whole secret
		}
	}
	return out
}

// clean makes s printable on one line: valid UTF-8, tabs and control
// characters as spaces.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func indexNL(b []byte) int { return bytes.IndexByte(b, '\n') }

func lastIndexNL(b []byte) int { return bytes.LastIndexByte(b, '\n') }

// maxRedactCandidates bounds the matches RedactText examines in one text.
const maxRedactCandidates = 1000

// RedactText returns text with every secret the rules find in it
// reduced to its Redact form, wherever it occurs (a build step that names
// a token twice loses both). For texts a report shows whole, such as a
// layer's build step.
func (e *Engine) RedactText(text string) string {
	data := []byte(text[:min(len(text), MaxTextSize)])
	cands := e.detect("", data, maxRedactCandidates)
	if len(cands) == 0 {
		return text
	}
	// Longest first: a secret that contains a shorter one is replaced
	// whole before the shorter one is looked for.
	slices.SortFunc(cands, func(a, b candidate) int { return len(b.secret) - len(a.secret) })
	out := text
	for i := range cands {
		if s := cands[i].secret; s != "" {
			out = strings.ReplaceAll(out, s, Redact(s))
		}
	}
	clear(cands) // no secret stays behind
	return out
}
