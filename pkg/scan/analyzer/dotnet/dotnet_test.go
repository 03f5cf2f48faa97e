package dotnet_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/dotnet"
)

func TestCases(t *testing.T) {
	analyzertest.Run(t, dotnet.New(), "testdata")
}

func TestMatch(t *testing.T) {
	a := dotnet.New()
	for path, want := range map[string]bool{
		"app/WebApi.deps.json": true,
		"usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1/Microsoft.NETCore.App.deps.json": true,
		"src/Orders.Api/packages.lock.json":                                                   true,
		"packages.lock.json":                                                                  true,
		"app/.deps.json":                                                                      false,
		"app/WebApi.runtimeconfig.json":                                                       false,
		"app/package-lock.json":                                                               false,
		"app/deps.json":                                                                       false,
		"app/WebApi.deps.json.bak":                                                            false,
		"app/packages.lock.json/x":                                                            false,
		"usr/lib/node_modules/x/package.json":                                                 false,
	} {
		if got := a.Match(path, 0o644, 1); got != want {
			t.Errorf("Match(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestSniff(t *testing.T) {
	a := dotnet.New()
	for head, want := range map[string]bool{
		"{":                  true,
		"\n  {\"a\":1}":      true,
		"\xef\xbb\xbf{":      true,
		"\xef\xbb\xbf\r\n {": true,
		"":                   false,
		"[1]":                false,
		"\x7fELF":            false,
	} {
		if got := a.Sniff("app/x.deps.json", []byte(head)); got != want {
			t.Errorf("Sniff(%q) = %v, want %v", head, got, want)
		}
	}
}

func FuzzAnalyze(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/rootfs/app/*")
	more, _ := filepath.Glob("testdata/*/rootfs/src/*/*")
	for _, p := range append(files, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(filepath.Base(p), b)
	}
	a := dotnet.New()
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		path := "app/" + filepath.Base(name)
		if !a.Match(path, 0o644, int64(len(data))) {
			path = "app/x.deps.json"
		}
		res, err := a.Analyze(context.Background(), &analyzer.File{Path: path, Size: int64(len(data)), Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if res != nil {
			for _, p := range res.Packages {
				if p.Name == "" || p.Version == "" || p.PURL == "" {
					t.Fatalf("incomplete package %+v", p)
				}
			}
		}
	})
}
