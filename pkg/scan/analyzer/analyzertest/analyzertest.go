// Package analyzertest runs an analyzer over claircore-style test cases:
// testdata/<case>/rootfs/ is a root file system fragment and
// testdata/<case>/want.json the expected output. Run with -update to
// (re)write the want files after checking the diff.
package analyzertest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/osrelease"
)

var update = flag.Bool("update", false, "rewrite testdata/*/want.json with the current output")

// Want is the content of a want.json file.
type Want struct {
	OS       *report.OS       `json:"os,omitempty"`
	Packages []report.Package `json:"packages"`
	Findings []report.Finding `json:"findings"`
}

// Run runs a over every case under dir (usually "testdata"), as the
// walker would: Match on every regular file (links are skipped), Sniff,
// Analyze, then PostProcess with the OS read from the case's own
// etc/os-release or usr/lib/os-release.
func Run(t *testing.T, a analyzer.Analyzer, dir string) {
	t.Helper()
	cases, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cases {
		if !c.IsDir() {
			continue
		}
		n++
		t.Run(c.Name(), func(t *testing.T) {
			runCase(t, a, filepath.Join(dir, c.Name()))
		})
	}
	if n == 0 {
		t.Fatalf("no test cases in %s", dir)
	}
}

// Analyze returns what a finds in the rootfs directory root.
func Analyze(t testing.TB, a analyzer.Analyzer, root string) Want {
	t.Helper()
	ctx := context.Background()
	var (
		got      Want
		best     *report.OS
		bestPrio int
	)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !a.Match(rel, info.Mode(), info.Size()) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if s, ok := a.(analyzer.Sniffer); ok && !s.Sniff(rel, data[:min(len(data), analyzer.SniffLen)]) {
			return nil
		}
		res, err := a.Analyze(ctx, &analyzer.File{Path: rel, Mode: info.Mode(), Size: int64(len(data)), Data: data})
		if err != nil {
			t.Errorf("Analyze(%s): %v", rel, err)
			return nil
		}
		if res.Empty() {
			return nil
		}
		analyzer.Normalize(a, rel, res)
		got.Packages = append(got.Packages, res.Packages...)
		got.Findings = append(got.Findings, res.Findings...)
		if res.OS != nil && (best == nil || res.OSPriority > bestPrio) {
			best, bestPrio = res.OS, res.OSPriority
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got.OS = best
	if pp, ok := a.(analyzer.PostProcessor); ok {
		res := &analyzer.Result{Packages: got.Packages, Findings: got.Findings}
		if err := pp.PostProcess(ctx, &analyzer.Image{OS: RootfsOS(t, root)}, res); err != nil {
			t.Fatalf("PostProcess: %v", err)
		}
		got.Packages, got.Findings = res.Packages, res.Findings
	}
	slices.SortFunc(got.Packages, func(a, b report.Package) int {
		return cmp.Or(cmp.Compare(a.Ecosystem, b.Ecosystem), cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Version, b.Version), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Arch, b.Arch))
	})
	slices.SortFunc(got.Findings, func(a, b report.Finding) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Rule, b.Rule))
	})
	if got.Packages == nil {
		got.Packages = []report.Package{}
	}
	if got.Findings == nil {
		got.Findings = []report.Finding{}
	}
	return got
}

// RootfsOS reads the OS of a rootfs directory like the scan does
// (etc/os-release first, symlinks followed inside the test tree).
func RootfsOS(t testing.TB, root string) report.OS {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			continue
		}
		if os, ok := osrelease.Parse(b); ok {
			return os
		}
	}
	return report.OS{}
}

func runCase(t *testing.T, a analyzer.Analyzer, dir string) {
	got := Analyze(t, a, filepath.Join(dir, "rootfs"))
	gotJSON, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	gotJSON = append(gotJSON, '\n')
	wantPath := filepath.Join(dir, "want.json")
	if *update {
		if err := os.WriteFile(wantPath, gotJSON, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	wantJSON, err := os.ReadFile(wantPath)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var want Want
	if err := json.Unmarshal(wantJSON, &want); err != nil {
		t.Fatalf("%s: %v", wantPath, err)
	}
	// Compare canonical encodings: field order and nil-vs-empty do not matter.
	wantCanon, _ := json.MarshalIndent(want, "", "  ")
	wantCanon = append(wantCanon, '\n')
	if !bytes.Equal(gotJSON, wantCanon) {
		diff := gocmp.Diff(want, got, cmpopts.EquateEmpty())
		if diff == "" { // equal values, different encodings: show the text
			diff = gocmp.Diff(string(wantCanon), string(gotJSON))
		}
		t.Errorf("%s: output differs from want.json (-want +got; run with -update to accept):\n%s", dir, diff)
	}
}
