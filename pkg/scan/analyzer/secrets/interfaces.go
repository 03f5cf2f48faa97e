// Code in this file only checks, at compile time, that the analyzer still
// implements each optional interface it means to: a changed signature
// would otherwise silently turn the feature off.

package secrets

import (
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	engine "github.com/customs-scan/customs/pkg/secrets"
)

var (
	_ analyzer.Analyzer       = (*Analyzer)(nil)
	_ analyzer.ConfigAnalyzer = (*Analyzer)(nil)
	_ analyzer.Persistent     = (*Analyzer)(nil)
	_ analyzer.Sniffer        = (*Analyzer)(nil)
	_ analyzer.Windowed       = (*Analyzer)(nil)
	_ analyzer.WindowExact    = (*Analyzer)(nil)
	_ analyzer.Fingerprinter  = (*Analyzer)(nil)
	_ analyzer.ReaderAtUser   = (*Analyzer)(nil)
)

// A match shorter than the windows' overlap is whole in some window.
var _ = [analyzer.WindowOverlap - engine.MaxMatchBytes]struct{}{}
