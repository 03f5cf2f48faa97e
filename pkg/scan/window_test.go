package scan_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer/malware"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// A miner padded past the sizes the scan holds in memory is still read,
// window by window: size limits are not an evasion path for signatures.
func TestPaddedMinerIsFoundPastTheSizeLimits(t *testing.T) {
	const pool = "stratum+tcp://pool.supportxmr.com:3333"
	lim := scan.DefaultLimits()
	lim.MaxAnalyzedFileSize = 1 << 20 // windows of 256 KiB
	m, err := malware.New(malware.WithMaxFileBytes(512 << 10))
	if err != nil {
		t.Fatal(err)
	}
	padded := func(at int, size int) []byte {
		b := bytes.Repeat([]byte{0x90}, size)
		b[0], b[1], b[2], b[3] = 0x7f, 'E', 'L', 'F'
		copy(b[at:], "\x00xmrig/6.21.0 (Linux x64) "+pool+"\x00")
		return b
	}
	cases := map[string]scantest.File{
		// over the analyzer's own limit, under the scan's: in memory
		"over analyzer limit": scantest.Exec("usr/bin/a", padded(700<<10, 900<<10)),
		// over the scan's limit: streamed
		"over scan limit": scantest.Exec("usr/bin/b", padded(2<<20, 3<<20)),
		// the signature straddles a window boundary (windows advance by
		// 256 KiB - 64 KiB)
		"across a window boundary": scantest.Exec("usr/bin/c", padded(192<<10-10, 3<<20)),
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			img := scantest.Image(t, scantest.Layer(t, f))
			res, err := scan.Image(context.Background(), img, scan.WithLimits(lim), scan.WithAnalyzers(m))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(res.Findings, func(x report.Finding) bool {
				return x.Path == f.Path && x.Kind == report.KindMalware
			}) {
				t.Fatalf("no malware finding in %s (%d bytes): %+v", f.Path, len(f.Content), res.Findings)
			}
		})
	}
	// A large clean file stays clean.
	clean := scantest.Image(t, scantest.Layer(t, scantest.Exec("usr/bin/d", bytes.Repeat([]byte{0x90}, 3<<20))))
	res, err := scan.Image(context.Background(), clean, scan.WithLimits(lim), scan.WithAnalyzers(m))
	if err != nil || len(res.Findings) != 0 {
		t.Fatalf("clean large file: %v %+v", err, res.Findings)
	}
}
