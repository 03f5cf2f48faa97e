// Package dotnet reports the NuGet packages of .NET applications:
//
//   - <app>.deps.json, written by the SDK next to every built or published
//     application: its "libraries" map, keyed "Name/Version". Only entries
//     of "type": "package" are reported; "project" (the application and
//     its project references) and "runtimepack"/"reference" entries are
//     not NuGet packages.
//   - packages.lock.json (NuGet lock files, copied into images with the
//     sources): "dependencies" → target framework (optionally
//     "<tfm>/<rid>") → Name → {"type", "resolved"}. Direct, Transitive
//     and CentralTransitive entries are reported with their resolved
//     version; Project entries are not. A package listed under several
//     targets is reported once per version.
//
// Ecosystem "NuGet", purl pkg:nuget/<Name>@<Version>. Names keep the case
// written in the file (NuGet ids are case-insensitive).
package dotnet

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

const (
	depsSuffix = ".deps.json"
	lockName   = "packages.lock.json"
	// Ecosystem is the OSV ecosystem of NuGet packages.
	Ecosystem = "NuGet"
	// maxPackages bounds the packages reported for one file.
	maxPackages = 100_000
)

// Analyzer is the .NET analyzer.
type Analyzer struct{}

// New returns the .NET analyzer.
func New() *Analyzer { return &Analyzer{} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "dotnet" }

// Version implements analyzer.Analyzer.
func (*Analyzer) Version() int { return 1 }

// Match implements analyzer.Analyzer.
func (*Analyzer) Match(path string, _ fs.FileMode, _ int64) bool {
	base := path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		base = path[i+1:]
	}
	return base == lockName || (len(base) > len(depsSuffix) && strings.HasSuffix(base, depsSuffix))
}

// Sniff implements analyzer.Sniffer: both formats are JSON objects.
func (*Analyzer) Sniff(_ string, head []byte) bool {
	for _, c := range trimBOM(head) {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

// Analyze implements analyzer.Analyzer.
func (*Analyzer) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	data := trimBOM(f.Data)
	var pkgs []report.Package
	if strings.HasSuffix(f.Path, depsSuffix) {
		pkgs = ParseDeps(data)
	} else {
		pkgs = ParseLock(data)
	}
	if len(pkgs) == 0 {
		return nil, nil
	}
	return &analyzer.Result{Packages: pkgs}, nil
}

func trimBOM(b []byte) []byte {
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		return b[3:]
	}
	return b
}

// ParseDeps reads the "libraries" of a .deps.json file. Malformed input
// yields nil.
func ParseDeps(b []byte) []report.Package {
	var doc struct {
		Libraries map[string]struct {
			Type string `json:"type"`
		} `json:"libraries"`
	}
	if !decode(b, &doc) {
		return nil
	}
	var pkgs []report.Package
	for key, lib := range doc.Libraries {
		if lib.Type != "package" {
			continue
		}
		name, version, ok := strings.Cut(key, "/")
		if p, ok2 := pkg(name, version); ok && ok2 {
			pkgs = append(pkgs, p)
		}
	}
	return finish(pkgs)
}

// ParseLock reads a NuGet packages.lock.json. Malformed input yields nil.
func ParseLock(b []byte) []report.Package {
	var doc struct {
		Dependencies map[string]map[string]struct {
			Type     string `json:"type"`
			Resolved string `json:"resolved"`
		} `json:"dependencies"`
	}
	if !decode(b, &doc) {
		return nil
	}
	var pkgs []report.Package
	for _, deps := range doc.Dependencies {
		for name, d := range deps {
			switch d.Type {
			case "Direct", "Transitive", "CentralTransitive":
			default:
				continue // Project, or unknown
			}
			if p, ok := pkg(name, d.Resolved); ok {
				pkgs = append(pkgs, p)
			}
		}
	}
	return finish(pkgs)
}

// decode unmarshals b into v. A value of an unexpected type (an array
// where an object was expected…) only loses that value: encoding/json
// decodes the rest and reports the first type error, which is ignored.
func decode(b []byte, v any) bool {
	err := json.Unmarshal(b, v)
	var typeErr *json.UnmarshalTypeError
	return err == nil || errors.As(err, &typeErr)
}

func pkg(name, version string) (report.Package, bool) {
	name, version = strings.TrimSpace(name), strings.TrimSpace(version)
	if name == "" || version == "" || strings.ContainsAny(name, "/ ") || strings.ContainsAny(version, "/ ") {
		return report.Package{}, false
	}
	return report.Package{
		Name:      name,
		Version:   version,
		Ecosystem: Ecosystem,
		PURL:      packageurl.NewPackageURL(packageurl.TypeNuget, "", name, version, nil, "").ToString(),
	}, true
}

// finish sorts, removes duplicates (same name and version, compared
// case-insensitively as NuGet does) and bounds the list.
func finish(pkgs []report.Package) []report.Package {
	slices.SortFunc(pkgs, func(a, b report.Package) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)),
			cmp.Compare(strings.ToLower(a.Version), strings.ToLower(b.Version)),
			cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version))
	})
	pkgs = slices.CompactFunc(pkgs, func(a, b report.Package) bool {
		return strings.EqualFold(a.Name, b.Name) && strings.EqualFold(a.Version, b.Version)
	})
	if len(pkgs) > maxPackages {
		pkgs = pkgs[:maxPackages]
	}
	return pkgs
}
