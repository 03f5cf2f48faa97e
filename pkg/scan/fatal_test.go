package scan_test

import (
	"context"
	"errors"
	"io/fs"
	"testing"

	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// engineDown stands for an external engine (clamd) that cannot answer.
type engineDown struct{ fatal bool }

func (engineDown) Name() string                          { return "engine-down" }
func (engineDown) Version() int                          { return 1 }
func (engineDown) Match(string, fs.FileMode, int64) bool { return true }
func (e engineDown) Analyze(context.Context, *analyzer.File) (*analyzer.Result, error) {
	err := errors.New("connection refused")
	if e.fatal {
		return nil, analyzer.Fatal(err)
	}
	return nil, err
}

func TestFatalAnalyzerErrorFailsTheScanRetryably(t *testing.T) {
	img := scantest.Image(t, scantest.Layer(t, scantest.Reg("tmp/x", "data")))
	_, err := scan.Image(context.Background(), img, scan.WithAnalyzers(engineDown{fatal: true}))
	var fe *analyzer.FatalError
	if err == nil || !errors.As(err, &fe) || errors.Is(err, scan.ErrRejected) {
		t.Fatalf("err = %v; want a FatalError that is not a rejection", err)
	}
	// An ordinary analyzer error only skips the file.
	if _, err := scan.Image(context.Background(), img, scan.WithAnalyzers(engineDown{})); err != nil {
		t.Fatalf("non-fatal analyzer error failed the scan: %v", err)
	}
}
