package results_test

import (
	"os/exec"
	"strings"
	"testing"
)

// results re-decides stored reports (pkg/verdict) and never scans: it must
// not link the analyzers, the secret rules or the YARA parser.
func TestResultsLinksNoScanner(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/customs-scan/customs/pkg/scan") ||
			dep == "github.com/customs-scan/customs/pkg/inspect" ||
			strings.Contains(dep, "gitleaks") || strings.Contains(dep, "VirusTotal/gyp") {
			t.Errorf("results links %s", dep)
		}
	}
}
