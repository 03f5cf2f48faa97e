package gem_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/gem"
)

func TestCases(t *testing.T) {
	analyzertest.Run(t, gem.New(), "testdata")
}

func TestMatch(t *testing.T) {
	a := gem.New()
	for path, want := range map[string]bool{
		"usr/share/rubygems-integration/all/specifications/rack-2.2.22.gemspec":   true,
		"usr/local/lib/ruby/gems/3.2.0/specifications/default/json-2.6.3.gemspec": true,
		"specifications/rack-2.2.22.gemspec":                                      true,
		"usr/local/bundle/specifications/nokogiri-1.15.4-x86_64-linux.gemspec":    true,
		"srv/app/Gemfile.lock": true,
		"Gemfile.lock":         true,
		"gems/Gemfile.lock":    true,
		"usr/local/bundle/gems/rack-3.0.8/Gemfile.lock":           false,
		"var/lib/gems/3.1.0/gems/rails-7.0.0/guides/Gemfile.lock": false,
		"usr/share/doc/ruby-rack/examples/Gemfile.lock":           false,
		"usr/local/bundle/gems/rack-3.0.8/rack.gemspec":           false,
		"usr/local/bundle/specifications/rack-3.0.8.gemspec.bak":  false,
		"usr/local/bundle/specifications/x/rack-3.0.8.gemspec":    false,
		"srv/app/Gemfile": false,
	} {
		if got := a.Match(path, 0o644, 100); got != want {
			t.Errorf("Match(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestMatchNoAlloc(t *testing.T) {
	a := gem.New()
	n := testing.AllocsPerRun(100, func() {
		a.Match("usr/share/rubygems-integration/all/specifications/rack-2.2.22.gemspec", 0o644, 100)
		a.Match("usr/local/bundle/gems/rack-3.0.8/Gemfile.lock", 0o644, 100)
		a.Match("usr/bin/ruby", 0o755, 100)
	})
	if n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

func TestGemspecFallbacks(t *testing.T) {
	for _, c := range []struct {
		data, stem, purl string
	}{
		{"# stub: net-http 0.2.0 ruby lib\n", "whatever", "pkg:gem/net-http@0.2.0"},
		{"", "ruby2_keywords-0.0.5", "pkg:gem/ruby2_keywords@0.0.5"},
		{"", "google-protobuf-3.25.1-x86_64-linux", "pkg:gem/google-protobuf@3.25.1?platform=x86_64-linux"},
		{"s.name = 'foo-2x'\ns.version = VERSION\n", "foo-2x-1.0.0", "pkg:gem/foo-2x@1.0.0"},
		{"s.name = \"a#{b}\"\n", "x", ""},
		{"s.name == \"a\"\n", "nover", ""},
	} {
		p, ok := gem.ParseGemspec([]byte(c.data), c.stem)
		if got := p.PURL; !ok && got != "" || got != c.purl {
			t.Errorf("ParseGemspec(%q, %q) = %q (ok %v), want %q", c.data, c.stem, got, ok, c.purl)
		}
	}
}

// FuzzAnalyze feeds both parsers with the test data as seeds; nothing
// may panic.
func FuzzAnalyze(f *testing.F) {
	_ = filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && filepath.Ext(p) != ".json" && filepath.Ext(p) != ".md" {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
		return nil
	})
	a := gem.New()
	paths := []string{"specifications/x-1.0-java.gemspec", "Gemfile.lock"}
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
