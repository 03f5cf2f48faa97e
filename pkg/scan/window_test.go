package scan_test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
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

// A file too large to read whole is matched window by window; an ELF
// file's code segment, which its program headers (in the first window)
// locate, is skipped as a whole file's code sections are: a miner string
// in read-only data, in writable data or after the segments is found in
// whichever window holds it, one inside the machine code is not looked
// for.
func TestWindowsSkipELFCode(t *testing.T) {
	const (
		mib  = 1 << 20
		pool = "stratum+tcp://pool.supportxmr.com:3333"
	)
	lim := scan.DefaultLimits()
	lim.MaxAnalyzedFileSize = mib // windows of 256 KiB
	m, err := malware.New(malware.WithMaxFileBytes(512 << 10))
	if err != nil {
		t.Fatal(err)
	}
	elfWith := func(at int) []byte {
		b := scantest.ELF(3*mib, elf.ELFCLASS64, binary.LittleEndian,
			scantest.Segment{Off: 0, Size: mib, Flags: elf.PF_R},
			scantest.Segment{Off: mib, Size: mib, Flags: elf.PF_R | elf.PF_X},
			scantest.Segment{Off: 2 * mib, Size: mib / 2, Flags: elf.PF_R | elf.PF_W})
		copy(b[at:], "\x00xmrig/6.21.0 (Linux x64) "+pool+"\x00")
		return b
	}
	for name, c := range map[string]struct {
		at    int
		found bool
	}{
		"read-only data":      {700 << 10, true},
		"writable data":       {2*mib + 100<<10, true},
		"after the segments":  {2*mib + 800<<10, true},
		"in the code segment": {mib + 300<<10, false},
	} {
		t.Run(name, func(t *testing.T) {
			img := scantest.Image(t, scantest.Layer(t, scantest.Exec("usr/bin/big", elfWith(c.at))))
			res, err := scan.Image(context.Background(), img, scan.WithLimits(lim), scan.WithAnalyzers(m))
			if err != nil {
				t.Fatal(err)
			}
			found := slices.ContainsFunc(res.Findings, func(x report.Finding) bool { return x.Kind == report.KindMalware })
			if found != c.found {
				t.Fatalf("miner string at %d: found %v, want %v: %+v", c.at, found, c.found, res.Findings)
			}
		})
	}
}
