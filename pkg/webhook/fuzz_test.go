package webhook_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/webhook"
)

// FuzzParseDistribution checks that no input panics ParseDistribution, that
// every error wraps ErrMalformed, and that every returned Event validates.
// The seed corpus is every Distribution fixture plus a few hand-made
// payloads, so plain `go test` runs only the seeds.
func FuzzParseDistribution(f *testing.F) {
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(dist(distEvent(nil))))
	f.Add([]byte(dist(distEvent(map[string]any{"target.url": nil, "request.host": "[::1]:5000"}))))
	f.Add([]byte(dist(distEvent(map[string]any{"target.url": "http://u:p@h/v2/"}))))
	f.Add([]byte(dist(distEvent(map[string]any{"target.repository": "a__b/c--d/e.f"}))))
	if root, ok := sharedFixtures(); ok {
		for _, dir := range []string{"distribution-v2", "distribution-v3"} {
			_ = filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
					if b, err := os.ReadFile(p); err == nil {
						f.Add(b)
					}
				}
				return nil
			})
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := webhook.ParseDistribution(body)
		if err != nil {
			if !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			if len(res.Events) != 0 || len(res.Skipped) != 0 {
				t.Fatalf("partial result with error %v: %+v", err, res)
			}
			return
		}
		for i, e := range res.Events {
			if err := e.Validate(); err != nil {
				t.Fatalf("Events[%d] = %+v does not validate: %v", i, e, err)
			}
			if e.Source != webhook.SourceDistribution {
				t.Fatalf("Events[%d].Source = %q", i, e.Source)
			}
		}
	})
}

// sharedFixtures is fixturesDir without a testing.TB, for seeding.
func sharedFixtures() (string, bool) {
	wd, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			for _, c := range []string{filepath.Join(dir, "..", "shared", "fixtures"), filepath.Join(dir, "shared", "fixtures")} {
				if fi, err := os.Stat(c); err == nil && fi.IsDir() {
					return c, true
				}
			}
			return "", false
		}
		if filepath.Dir(dir) == dir {
			return "", false
		}
	}
}
