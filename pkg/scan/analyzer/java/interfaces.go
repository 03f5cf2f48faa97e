// Code in this file only checks, at compile time, that the analyzer still
// implements each optional interface it means to: a changed signature
// would otherwise silently turn the feature off.

package java

import "github.com/customs-scan/customs/pkg/scan/analyzer"

var (
	_ analyzer.Analyzer     = (*Analyzer)(nil)
	_ analyzer.ReaderAtUser = (*Analyzer)(nil)
)
