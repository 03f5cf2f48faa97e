package scan

import (
	"strconv"
	"strings"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// setBuildSteps fills each layer's CreatedBy from the config history:
// entries that created a layer (EmptyLayer false) match the layers in
// order, as analyzer.HistoryLayers reads them.
func setBuildSteps(layers []report.Layer, history []v1.History, analyzers []analyzer.Analyzer) {
	var redactors []analyzer.Redactor
	for _, a := range analyzers {
		if r, ok := a.(analyzer.Redactor); ok {
			redactors = append(redactors, r)
		}
	}
	n := 0
	for _, h := range history {
		if h.EmptyLayer {
			continue
		}
		if n >= len(layers) {
			return
		}
		layers[n].CreatedBy = buildStep(h.CreatedBy, redactors)
		n++
	}
}

// buildStep is what a report shows of a history created_by: build
// argument values masked (they are where --build-arg tokens leak, whether
// or not a rule knows their shape), secrets the redactors know reduced,
// then cut to report.MaxCreatedBy bytes.
func buildStep(createdBy string, redactors []analyzer.Redactor) string {
	s := maskBuildArgs(createdBy)
	for _, r := range redactors {
		s = r.RedactText(s)
	}
	if len(s) <= report.MaxCreatedBy {
		return s
	}
	cut := report.MaxCreatedBy - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// maskBuildArgs replaces the values of BuildKit's build-argument prefix
// ("RUN |2 A=x B=y /bin/sh -c …") by "…", keeping the names. Anything
// that does not parse as that prefix is left to the redactors.
func maskBuildArgs(s string) string {
	head, rest, ok := strings.Cut(s, "|")
	if !ok || strings.TrimSpace(head) != "RUN" && head != "" {
		return s
	}
	countStr, rest, ok := strings.Cut(rest, " ")
	n, err := strconv.Atoi(countStr)
	if !ok || err != nil || n <= 0 {
		return s
	}
	var b strings.Builder
	b.WriteString(head + "|" + countStr)
	for range n {
		arg, after, _ := strings.Cut(rest, " ")
		name, _, isArg := strings.Cut(arg, "=")
		if !isArg {
			return s
		}
		b.WriteString(" " + name + "=…")
		rest = after
	}
	if rest != "" {
		b.WriteString(" " + rest)
	}
	return b.String()
}
