package python_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/python"
)

func TestCases(t *testing.T) {
	analyzertest.Run(t, python.New(), "testdata")
}

func TestMatch(t *testing.T) {
	a := python.New()
	for path, want := range map[string]bool{
		"usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA":         true,
		"usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO":          true,
		"usr/lib/python3/dist-packages/six-1.16.0.egg-info":                   true,
		"usr/lib/python3.11/site-packages/x-1.0-py3.11.egg/EGG-INFO/PKG-INFO": true,
		"app/poetry.lock":  true,
		"poetry.lock":      true,
		"app/Pipfile.lock": true,
		"app/uv.lock":      true,
		"app/pdm.lock":     true,
		"opt/venv/lib/python3.11/site-packages/x/uv.lock":           false,
		"app/requirements.txt":                                      true,
		"requirements-dev.txt":                                      true,
		"app/requirements/prod.txt":                                 false,
		"app/Pipfile":                                               false,
		"usr/lib/python3/dist-packages/x/METADATA":                  false,
		"usr/lib/python3/dist-packages/x.egg-info/requires.txt":     false,
		"usr/lib/python3/dist-packages/x.dist-info/RECORD":          false,
		"usr/lib/python3/dist-packages/x/requirements.txt":          false,
		"opt/venv/lib/python3.11/site-packages/x/tests/poetry.lock": false,
		"usr/share/doc/python3-x/requirements.txt":                  false,
		"usr/share/doc/python3-x/examples/x.egg-info/PKG-INFO":      false,
		"PKG-INFO": false,
		"METADATA": false,
	} {
		if got := a.Match(path, 0o644, 100); got != want {
			t.Errorf("Match(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestMatchNoAlloc(t *testing.T) {
	a := python.New()
	n := testing.AllocsPerRun(100, func() {
		a.Match("usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA", 0o644, 100)
		a.Match("srv/web/requirements-dev.txt", 0o644, 100)
		a.Match("usr/bin/python3.11", 0o755, 100)
	})
	if n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{
		"PyYAML":            "pyyaml",
		"zope.interface":    "zope-interface",
		"Foo__Bar-.-baz":    "foo-bar-baz",
		"ruamel.yaml.clib":  "ruamel-yaml-clib",
		"typing_extensions": "typing-extensions",
	} {
		if got := python.NormalizeName(in); got != want {
			t.Errorf("NormalizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRequirementsPins(t *testing.T) {
	in := "a==1.0\nb===2.0\nc[x,y] == 3.0 ; python_version<'3'\nd==4.0#frag\ne >= 1\nf==1.*\ng==1.0,!=1.1\nh==1!2.0+local.1\n\\\n-r x.txt\nh[==1\n==5\n"
	got := python.ParseRequirements([]byte(in))
	want := []string{"pkg:pypi/a@1.0", "pkg:pypi/b@2.0", "pkg:pypi/c@3.0", "pkg:pypi/h@1%212.0%2Blocal.1"}
	if len(got) != len(want) {
		t.Fatalf("got %d packages %+v, want %v", len(got), got, want)
	}
	for i := range want {
		if got[i].PURL != want[i] {
			t.Errorf("package %d: purl %q, want %q", i, got[i].PURL, want[i])
		}
	}
}

// FuzzAnalyze feeds every parser with the test data as seeds; nothing may
// panic.
func FuzzAnalyze(f *testing.F) {
	_ = filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && filepath.Base(p) != "want.json" {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
		return nil
	})
	a := python.New()
	paths := []string{"x.dist-info/METADATA", "poetry.lock", "Pipfile.lock", "requirements.txt", "uv.lock", "pdm.lock"}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range paths {
			res, err := a.Analyze(context.Background(), &analyzer.File{Path: p, Size: int64(len(b)), Data: b})
			if err != nil {
				t.Fatal(err)
			}
			if res != nil {
				for _, pkg := range res.Packages {
					if pkg.Name == "" || pkg.Version == "" || pkg.PURL == "" {
						t.Fatalf("%s: incomplete package %+v", p, pkg)
					}
				}
			}
		}
	})
}
