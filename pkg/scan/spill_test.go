package scan_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer/gobinary"
	"github.com/customs-scan/customs/pkg/scan/analyzer/malware"
	"github.com/customs-scan/customs/pkg/scan/analyzer/rust"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// A large executable is analyzed from a temporary file instead of
// memory: the Go binary analyzer finds its modules and the malware
// analyzer the pool URL appended to it, exactly as when the file is
// held in memory, while the memory budget's peak stays far below the
// file's size and no temporary file is left behind.
func TestLargeExecutableReadFromDisk(t *testing.T) {
	exe, err := os.Executable() // this test binary: Go, with build info
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin = append(bin, "\x00stratum+tcp://pool.minexmr.com:4444\x00"...)
	img := scantest.Image(t, scantest.Layer(t, scantest.Exec("usr/local/bin/app", bin)))
	lim := scan.DefaultLimits()
	lim.MaxAnalyzedFileSize = int64(len(bin)) + 1 // windows of a quarter of it: it is large
	m, err := malware.New()
	if err != nil {
		t.Fatal(err)
	}
	run := func(tmp string) (*scan.Result, int64) {
		t.Setenv("TMPDIR", tmp)
		mem, err := scan.NewMemory(64<<20, 2)
		if err != nil {
			t.Fatal(err)
		}
		res, err := scan.Image(context.Background(), img, scan.WithLimits(lim), scan.WithMemory(mem),
			scan.WithAnalyzers(gobinary.New(), rust.New(), m))
		if err != nil {
			t.Fatal(err)
		}
		return res, mem.Peak()
	}
	tmp := t.TempDir()
	onDisk, diskPeak := run(tmp)
	// No temporary directory: the file is read into memory instead.
	inMemory, memPeak := run(filepath.Join(tmp, "missing"))

	if memPeak < int64(len(bin)) {
		t.Errorf("in memory, the budget's peak is %d bytes, less than the %d-byte file: is it charged?", memPeak, len(bin))
	}
	if diskPeak > int64(len(bin))/4 {
		t.Errorf("from disk, the budget's peak is %d bytes for a %d-byte file", diskPeak, len(bin))
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left in the temporary directory: %v", left)
	}
	var goMods int
	for _, p := range onDisk.Packages {
		if p.Ecosystem == gobinary.Ecosystem && p.Path == "usr/local/bin/app" {
			goMods++
		}
	}
	if goMods < 2 { // the main module and stdlib
		t.Errorf("from disk, %d Go modules in the test binary: %+v", goMods, onDisk.Packages)
	}
	var miner bool
	for _, f := range onDisk.Findings {
		miner = miner || f.Kind == report.KindMalware && f.Excerpt == "stratum+tcp://pool.minexmr.com:4444"
	}
	if !miner {
		t.Errorf("from disk, no miner finding: %+v", onDisk.Findings)
	}
	if !reflect.DeepEqual(onDisk.Packages, inMemory.Packages) || !reflect.DeepEqual(onDisk.Findings, inMemory.Findings) {
		t.Errorf("from disk:\n%+v\n%+v\nin memory:\n%+v\n%+v", onDisk.Packages, onDisk.Findings, inMemory.Packages, inMemory.Findings)
	}
}
