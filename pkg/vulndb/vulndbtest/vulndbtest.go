// Package vulndbtest builds vulnerability databases for tests from the
// real OSV records in pkg/vulndb/testdata.
package vulndbtest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/vulndb"
)

// TestData is the absolute path of pkg/vulndb/testdata.
func TestData() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// Build builds a database from OSV records (paths relative to TestData,
// e.g. "osv/go/GO-2020-0015.json") with the given build time, so two
// builds order the way a test wants.
func Build(tb testing.TB, built time.Time, files ...string) *vulndb.DB {
	tb.Helper()
	b := vulndb.NewBuilder()
	b.Now = func() time.Time { return built }
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(TestData(), f))
		if err != nil {
			tb.Fatal(err)
		}
		b.AddJSON(data)
	}
	return b.Build()
}
