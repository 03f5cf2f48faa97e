package secrets

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/zricethezav/gitleaks/v8/config"

	"github.com/customs-scan/customs/pkg/internal/ahocorasick"
)

// allowlist is a gitleaks Allowlist as findingAllowed checks it. The
// library's own keeps a stop-word trie (a dense Aho–Corasick automaton)
// of about 9 MB for the default lists for as long as the Allowlist lives;
// this one matches the same lowercased words with pkg/internal/ahocorasick
// and lets the gitleaks value go once the engine is built.
type allowlist struct {
	and      bool   // MatchCondition AND
	target   string // RegexTarget: "match", "line" or "" (the secret)
	commits  bool   // lists commits (never allowed here: no commit)
	pathPat  *regexp.Regexp
	regexPat *regexp.Regexp
	stop     *ahocorasick.Matcher
}

func newAllowlists(in []*config.Allowlist) ([]*allowlist, error) {
	out := make([]*allowlist, 0, len(in))
	for _, a := range in {
		al := &allowlist{
			and:     a.MatchCondition == config.AllowlistMatchAnd,
			target:  a.RegexTarget,
			commits: len(a.Commits) > 0,
		}
		var err error
		if al.pathPat, err = joinOr(a.Paths); err != nil {
			return nil, err
		}
		if al.regexPat, err = joinOr(a.Regexes); err != nil {
			return nil, err
		}
		var words [][]byte
		for _, w := range a.StopWords {
			if w = strings.ToLower(w); w != "" {
				words = append(words, []byte(w))
			}
		}
		if len(words) > 0 {
			if al.stop, err = ahocorasick.New(words, ahocorasick.Options{}); err != nil {
				return nil, fmt.Errorf("secrets: stop words: %w", err)
			}
		}
		out = append(out, al)
	}
	return out, nil
}

// joinOr is gitleaks' joinRegexOr: one alternation of every pattern.
func joinOr(pats []*regexp.Regexp) (*regexp.Regexp, error) {
	if len(pats) == 0 {
		return nil, nil
	}
	var sb strings.Builder
	sb.WriteString("(?:")
	for i, p := range pats {
		if i > 0 {
			sb.WriteString("|")
		}
		sb.WriteString(p.String())
	}
	sb.WriteString(")")
	re, err := regexp.Compile(sb.String())
	if err != nil {
		return nil, fmt.Errorf("secrets: allowlist patterns: %w", err)
	}
	return re, nil
}

func (a *allowlist) pathAllowed(path string) bool {
	return a.pathPat != nil && path != "" && a.pathPat.MatchString(path)
}

func (a *allowlist) regexAllowed(s string) bool {
	return a.regexPat != nil && s != "" && a.regexPat.MatchString(s)
}

// containsStopWord reports whether the lowercased s contains a stop word.
func (a *allowlist) containsStopWord(s string) bool {
	if a.stop == nil || s == "" {
		return false
	}
	for range a.stop.All([]byte(strings.ToLower(s))) {
		return true
	}
	return false
}
