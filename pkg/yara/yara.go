// Package yara parses, compiles and evaluates YARA rules over byte
// slices, in pure Go: rules are parsed with github.com/VirusTotal/gyp and
// evaluated by this package, which implements the common subset of YARA
// (README.md lists it; everything else fails at compile time with an
// error naming the construct). No cgo, so it works in the static
// (CGO_ENABLED=0) scanner image.
//
//	rs, err := yara.CompileFiles("/etc/customs/rules")
//	for _, m := range rs.Scan(data) { … m.Rule, m.Meta, m.Strings … }
//
// Compiled Rules are safe for concurrent use. pkg/scan/analyzer/yara runs
// them over image files and reports matches as findings.
package yara
