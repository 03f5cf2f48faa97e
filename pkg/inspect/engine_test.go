package inspect_test

import (
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/scan"
)

// Every detector selection builds (analyzer names stay unique once the
// threat analyzers are added to the package analyzers), and an unknown
// one is refused in the words users type (--scanners).
func TestNewEngine(t *testing.T) {
	for _, sel := range [][]string{nil, inspect.AllDetectors, {inspect.DetectorSecrets}, {inspect.DetectorPackages, inspect.DetectorMisconfig}} {
		e, err := inspect.NewEngine(inspect.EngineConfig{Detectors: sel}, scan.WithLimits(scan.DefaultLimits()))
		if err != nil {
			t.Fatalf("%v: %v", sel, err)
		}
		if e.Options().Scanner == nil {
			t.Errorf("%v: no scanner", sel)
		}
	}
	if _, err := inspect.NewEngine(inspect.EngineConfig{Detectors: []string{"viruses"}}); err == nil || !strings.Contains(err.Error(), `unknown scanner "viruses"`) {
		t.Errorf("unknown detector: %v", err)
	}
	// A scan option that cannot be honoured fails the engine, not a scan.
	if _, err := inspect.NewEngine(inspect.EngineConfig{}, scan.WithConcurrency(-1)); err == nil {
		t.Error("negative concurrency accepted")
	}
	seen := map[string]bool{}
	for _, a := range inspect.PackageAnalyzers() {
		if seen[a.Name()] {
			t.Errorf("two package analyzers are named %q", a.Name())
		}
		seen[a.Name()] = true
	}
}
