package layercache_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/layercache"
)

// FuzzDir puts a value under an arbitrary key in a Dir cache and checks
// that no key reaches outside the directory: an accepted key is one plain
// file name (no separator, NUL or leading dot), stored as exactly that
// file in the directory and read back unchanged; a refused key (or a
// failed Put) leaves nothing behind, in the directory or beside it, and
// Get refuses it too.
func FuzzDir(f *testing.F) {
	for _, k := range []string{key, key + "0", "", ".", "..", "../x", "a/b", ".tmp-1", `a\b`, "a\x00b", "/abs", "x/../../y", strings.Repeat("k", 300), "\u2215x", "C:x"} {
		f.Add(k, []byte("layer data"))
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, k string, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "cache")
		c := layercache.Dir(dir)
		err := c.Put(ctx, k, data)
		names := listTree(t, parent)
		if err != nil {
			for _, n := range names {
				if n != "cache" {
					t.Fatalf("Put(%q) failed (%v) but left %q behind", k, err, names)
				}
			}
			if _, ok, err := c.Get(ctx, k); ok && err == nil {
				t.Fatalf("Get(%q) found a value Put refused", k)
			}
			return
		}
		if k == "" || k[0] == '.' || strings.ContainsAny(k, "/\\\x00") {
			t.Fatalf("Put accepted key %q", k)
		}
		if want := []string{"cache", filepath.Join("cache", k)}; len(names) != 2 || names[0] != want[0] || names[1] != want[1] {
			t.Fatalf("Put(%q) wrote %q, want %q", k, names, want)
		}
		got, ok, err := c.Get(ctx, k)
		if err != nil || !ok || !bytes.Equal(got, data) {
			t.Fatalf("Get(%q) = %d bytes, %t, %v after Put of %d bytes", k, len(got), ok, err, len(data))
		}
	})
}

// listTree returns every path under root, relative and sorted.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
