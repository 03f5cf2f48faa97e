package customs_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain points the default vulnerability database path at a file that
// does not exist, so a database a developer built on this machine never
// changes what the tests see; tests that want one pass it explicitly.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "customs-test-db-")
	if err != nil {
		panic(err)
	}
	os.Setenv("CUSTOMS_DB", filepath.Join(dir, "absent.gob.gz"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
