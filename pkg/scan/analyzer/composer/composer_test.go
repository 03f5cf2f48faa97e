package composer_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/composer"
)

func TestCases(t *testing.T) {
	analyzertest.Run(t, composer.New(), "testdata")
}

func TestMatch(t *testing.T) {
	a := composer.New()
	for path, want := range map[string]bool{
		"composer.lock":                                 true,
		"var/www/html/composer.lock":                    true,
		"vendor/composer/installed.json":                true,
		"app/vendor/composer/installed.json":            true,
		"root/.composer/vendor/composer/installed.json": true,
		"app/vendor/monolog/monolog/composer.lock":      false,
		"vendor/a/b/composer.lock":                      false,
		"app/composer.json":                             false,
		"app/composer.lock.bak":                         false,
		"app/vendor/composer/installed.php":             false,
		"app/myvendor/composer/installed.json":          false,
	} {
		if got := a.Match(path, 0o644, 100); got != want {
			t.Errorf("Match(%q) = %v, want %v", path, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { a.Match("app/vendor/composer/installed.json", 0o644, 100) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

func FuzzAnalyze(f *testing.F) {
	kinds := []string{"app/composer.lock", "app/vendor/composer/installed.json"}
	err := filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Base(p) != "composer.lock" && filepath.Base(p) != "installed.json") {
			return err
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
	a := composer.New()
	f.Fuzz(func(t *testing.T, k uint8, data []byte) {
		res, err := a.Analyze(context.Background(), &analyzer.File{Path: kinds[int(k)%len(kinds)], Size: int64(len(data)), Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if res == nil {
			return
		}
		for _, p := range res.Packages {
			if p.Name == "" || p.Version == "" || p.PURL == "" || p.Ecosystem != "Packagist" {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}
