package yara

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

var _ analyzer.Fingerprinter = (*Analyzer)(nil)

// Fingerprint implements analyzer.Fingerprinter: the rules' text (every
// file's content, in order), the compile options and which files are
// scanned. A per-layer result cache keys on it, so editing a rule file
// re-scans cached layers instead of serving findings of the old rules.
func (a *Analyzer) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "rules %s\nmax %d all %t\n", a.rules.Fingerprint(), a.max, a.all)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
