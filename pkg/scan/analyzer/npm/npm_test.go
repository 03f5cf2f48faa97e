package npm_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/npm"
)

func TestCases(t *testing.T) {
	analyzertest.Run(t, npm.New(), "testdata")
}

func TestMatch(t *testing.T) {
	a := npm.New()
	for path, want := range map[string]bool{
		"node_modules/ms/package.json":                                 true,
		"app/node_modules/ms/package.json":                             true,
		"app/node_modules/@types/ms/package.json":                      true,
		"app/node_modules/a/node_modules/@s/b/package.json":            true,
		"app/node_modules/.pnpm/ms@2.1.3/node_modules/ms/package.json": true,
		"usr/lib/node_modules/npm/package.json":                        true,
		"app/package.json":                                             false,
		"package.json":                                                 false,
		"node_modules/package.json":                                    false,
		"app/node_modules/@types/package.json":                         false,
		"app/node_modules/ms/lib/package.json":                         false,
		"app/node_modules/@types/ms/dist/package.json":                 false,
		"app/node_modules/.bin/package.json":                           false,
		"app/node_modules/@/x/package.json":                            false,
		"app/notnode_modules/ms/package.json":                          false,
		"package-lock.json":                                            true,
		"app/package-lock.json":                                        true,
		"app/npm-shrinkwrap.json":                                      true,
		"app/yarn.lock":                                                true,
		"app/pnpm-lock.yaml":                                           true,
		"app/node_modules/.package-lock.json":                          false,
		"app/node_modules/ms/package-lock.json":                        false,
		"node_modules/ms/yarn.lock":                                    false,
		"app/node_modules/ms/pnpm-lock.yaml":                           false,
		"app/yarn.lock.bak":                                            false,
		"app/bun.lock":                                                 true,
		"app/bun.lockb":                                                false,
		"app/node_modules/x/bun.lock":                                  false,
	} {
		if got := a.Match(path, 0o644, 100); got != want {
			t.Errorf("Match(%q) = %v, want %v", path, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { a.Match("app/node_modules/@types/ms/package.json", 0o644, 100) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
	if a.Match("app/package-lock.json", 0o644, 65<<20) {
		t.Error("oversized lockfile matched")
	}
}

// TestMatchPlaces: Debian's global module directories hold installed
// packages; lockfiles inside other ecosystems' installed libraries are
// those libraries' development files.
func TestMatchPlaces(t *testing.T) {
	a := npm.New()
	for path, want := range map[string]bool{
		"usr/share/nodejs/ms/package.json":                                      true,
		"usr/share/nodejs/@types/ms/package.json":                               true,
		"usr/lib/nodejs/ms/package.json":                                        true,
		"usr/lib/x86_64-linux-gnu/nodejs/ms/package.json":                       true,
		"usr/share/nodejs/semver/functions/package.json":                        false,
		"usr/share/nodejs/package.json":                                         false,
		"usr/lib/a/b/nodejs/ms/package.json":                                    false,
		"usr/lib/nodejs/package.json":                                           false,
		"opt/usr/share/nodejs/ms/package.json":                                  false,
		"usr/lib/ruby/gems/3.1.0/gems/typeprof-0.21.2/vscode/package-lock.json": false,
		"usr/local/bundle/gems/x-1.0/yarn.lock":                                 false,
		"gems/x-1.0/package-lock.json":                                          false,
		"srv/gems/package-lock.json":                                            true,
		"usr/lib/python3/dist-packages/x/static/yarn.lock":                      false,
		"venv/lib/python3.12/site-packages/x/package-lock.json":                 false,
		"usr/share/doc/x/examples/package-lock.json":                            false,
	} {
		if got := a.Match(path, 0o644, 100); got != want {
			t.Errorf("Match(%q) = %v, want %v", path, got, want)
		}
	}
	for _, p := range []string{
		"usr/lib/x86_64-linux-gnu/nodejs/@types/ms/package.json",
		"usr/lib/ruby/gems/3.1.0/gems/typeprof-0.21.2/vscode/package-lock.json",
	} {
		if n := testing.AllocsPerRun(100, func() { a.Match(p, 0o644, 100) }); n != 0 {
			t.Errorf("Match(%q) allocates %v times", p, n)
		}
	}
}

func FuzzAnalyze(f *testing.F) {
	paths := map[string]string{
		"package.json":       "app/node_modules/x/package.json",
		"package-lock.json":  "app/package-lock.json",
		".package-lock.json": "app/package-lock.json",
		"yarn.lock":          "app/yarn.lock",
		"pnpm-lock.yaml":     "app/pnpm-lock.yaml",
		"bun.lock":           "app/bun.lock",
	}
	kinds := []string{"app/node_modules/x/package.json", "app/package-lock.json", "app/yarn.lock", "app/pnpm-lock.yaml", "app/bun.lock"}
	err := filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if _, ok := paths[filepath.Base(p)]; !ok {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i := range kinds {
			f.Add(uint8(i), b)
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	a := npm.New()
	f.Fuzz(func(t *testing.T, k uint8, data []byte) {
		path := kinds[int(k)%len(kinds)]
		res, err := a.Analyze(context.Background(), &analyzer.File{Path: path, Size: int64(len(data)), Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if res == nil {
			return
		}
		for _, p := range res.Packages {
			if p.Name == "" || p.Version == "" || p.PURL == "" || p.Ecosystem != "npm" {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}
