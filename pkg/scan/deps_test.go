package scan_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The scan engine knows the analyzer interface and no analyzer: which ones
// run is decided by its callers (pkg/inspect holds Customs' list).
func TestScanImportsNoAnalyzer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/customs-scan/customs/pkg/scan/analyzer/") {
			t.Errorf("pkg/scan links %s", dep)
		}
	}
}
