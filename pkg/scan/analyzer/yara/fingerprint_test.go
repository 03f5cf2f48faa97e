package yara_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer/yara"
	engine "github.com/customs-scan/customs/pkg/yara"
)

// The fingerprint follows the rules' content (not their file names) and
// the options that select files: a layer cache keys on it.
func TestFingerprint(t *testing.T) {
	const r1 = `rule a { strings: $a = "evil" condition: $a }`
	const r2 = `rule a { strings: $a = "evil2" condition: $a }`
	fp := func(opts yara.Options) string {
		t.Helper()
		a, err := yara.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		return a.Fingerprint()
	}
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ref := fp(yara.Options{Files: []string{write("one.yar", r1)}})
	if got := fp(yara.Options{Files: []string{write("renamed.yar", r1)}}); got != ref {
		t.Errorf("same rules in another file: %s, want %s", got, ref)
	}
	if got := fp(yara.Options{Source: r1}); got != ref {
		t.Errorf("same rules as source: %s, want %s", got, ref)
	}
	rules, err := engine.Compile(r1)
	if err != nil {
		t.Fatal(err)
	}
	if got := fp(yara.Options{Rules: rules}); got != ref {
		t.Errorf("same rules compiled: %s, want %s", got, ref)
	}
	for name, opts := range map[string]yara.Options{
		"edited rule file": {Files: []string{write("one.yar", r2)}},
		"all files":        {Source: r1, AllFiles: true},
		"max file size":    {Source: r1, MaxFileSize: 1 << 20},
		"skip unsupported": {Source: r1, SkipUnsupported: true},
	} {
		if got := fp(opts); got == ref {
			t.Errorf("%s: fingerprint unchanged", name)
		}
	}
}
