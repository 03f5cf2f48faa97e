package inspect

import (
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/vulndb"
)

// Rematch re-decides a stored report against db with opts' rules (see
// verdict.Rules.Rematch, which services that pull no image use directly).
func Rematch(r *report.Report, db *vulndb.DB, opts Options) (gained []report.Vulnerability, changed bool) {
	return opts.Rules.Rematch(r, db)
}
