package scan_test

import (
	"bytes"
	"context"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// copier stands for a parser that holds copies of the file (TOML): it
// records which files it was given.
type copier struct {
	copies int
	mu     sync.Mutex
	seen   []string
}

func (*copier) Name() string                                { return "copier" }
func (*copier) Version() int                                { return 1 }
func (*copier) Match(p string, _ fs.FileMode, _ int64) bool { return strings.HasSuffix(p, ".lock") }
func (c *copier) ParseCopies(string) int                    { return c.copies }
func (c *copier) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, f.Path)
	return &analyzer.Result{Packages: []report.Package{{Name: f.Path, Version: "1"}}}, nil
}

var _ analyzer.MemoryUser = (*copier)(nil)

// A file whose parser's copies would exceed the memory budget is not given
// to that parser; one that fits is, and plain analyzers are unaffected.
func TestParserCopiesCountAgainstTheMemoryBudget(t *testing.T) {
	const budget = 1 << 20
	small := bytes.Repeat([]byte("x"), 200<<10) // 200 KiB × 4 fits 1 MiB
	big := bytes.Repeat([]byte("x"), 300<<10)   // 300 KiB × 4 does not
	img := scantest.Image(t, scantest.Layer(t,
		scantest.File{Path: "app/small.lock", Content: small},
		scantest.File{Path: "app/big.lock", Content: big},
	))
	c := &copier{copies: 3}
	lim := scan.DefaultLimits()
	lim.MaxAnalyzedFileSize = budget
	if _, err := scan.Image(context.Background(), img, scan.WithLimits(lim), scan.WithAnalyzers(c)); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.seen, ",") != "app/small.lock" {
		t.Errorf("parser was given %v; want only the file whose copies fit the budget", c.seen)
	}
	// Without copies both fit.
	plain := &copier{}
	if _, err := scan.Image(context.Background(), img, scan.WithLimits(lim), scan.WithAnalyzers(plain)); err != nil {
		t.Fatal(err)
	}
	if len(plain.seen) != 2 {
		t.Errorf("plain analyzer was given %v; want both files", plain.seen)
	}
}
