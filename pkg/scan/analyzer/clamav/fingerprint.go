package clamav

import "github.com/customs-scan/customs/pkg/scan/analyzer"

var _ analyzer.Fingerprinter = (*Analyzer)(nil)

// Fingerprint implements analyzer.Fingerprinter: clamd's detections
// depend on its signature database, which freshclam replaces several
// times a day behind our back, so a scan with ClamAV caches no layer.
//
// Keying on clamd's VERSION reply (it names the database version) was
// the alternative; it was not chosen because VERSION is a network call
// that Fingerprint (no context, no error) would hide, because the reply
// is read at another moment than the INSTREAM calls it would vouch for
// (clamd reloads its database while a scan runs), and because a key that
// changes every few hours would rarely hit: the whole layer is downloaded
// for clamd anyway, which is what the cache saves.
func (*Analyzer) Fingerprint() string { return analyzer.Uncacheable }
