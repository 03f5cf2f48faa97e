package policy

import (
	"fmt"
	"regexp"
	"strings"
)

// repoPattern is one compiled entry of a rule's repositories list.
//
// Syntax: the pattern is split on "/" into segments. A segment that is
// exactly "**" matches zero or more whole segments; inside any other
// segment "*" matches any run of characters except "/" and "?" matches one
// character except "/"; everything else matches itself (case-sensitive:
// repository names are lowercase in OCI). A pattern matches the repository
// path ("team-a/app") or the registry host followed by the repository path
// ("registry.example.com:5000/team-a/app").
type repoPattern struct {
	src string
	re  *regexp.Regexp
}

func compileRepoPattern(pat string) (repoPattern, error) {
	p := strings.TrimPrefix(strings.TrimSpace(pat), "/")
	if p == "" {
		return repoPattern{}, fmt.Errorf("empty repository pattern")
	}
	var b strings.Builder
	b.WriteString(`^`)
	// Every segment is written as "/" + segment, and the name matched is
	// "/" + repository, so "**" can match zero segments anywhere.
	for _, seg := range strings.Split(p, "/") {
		if seg == "**" {
			b.WriteString(`(?:/[^/]+)*`)
			continue
		}
		if seg == "" {
			return repoPattern{}, fmt.Errorf("repository pattern %q has an empty path segment", pat)
		}
		b.WriteString(`/`)
		for _, c := range seg {
			switch c {
			case '*':
				b.WriteString(`[^/]*`)
			case '?':
				b.WriteString(`[^/]`)
			default:
				b.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
	}
	b.WriteString(`$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return repoPattern{}, fmt.Errorf("repository pattern %q: %w", pat, err)
	}
	return repoPattern{src: pat, re: re}, nil
}

func (p repoPattern) match(registry, repository string) bool {
	if p.re.MatchString("/" + repository) {
		return true
	}
	return registry != "" && p.re.MatchString("/"+registry+"/"+repository)
}
