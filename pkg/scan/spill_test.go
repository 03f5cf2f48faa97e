package scan_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer/gobinary"
	"github.com/customs-scan/customs/pkg/scan/analyzer/java"
	"github.com/customs-scan/customs/pkg/scan/analyzer/malware"
	"github.com/customs-scan/customs/pkg/scan/analyzer/rust"
	"github.com/customs-scan/customs/pkg/scan/analyzer/secrets"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// scanBothWays scans img with TMPDIR set to tmp (large files go there),
// then to a directory that does not exist (they are read into memory),
// each with a 64 MiB budget whose peak it returns.
func scanBothWays(t *testing.T, tmp string, img v1.Image, lim scan.Limits, analyzers ...scan.Analyzer) (onDisk, inMemory *scan.Result, diskPeak, memPeak int64) {
	t.Helper()
	run := func(dir string) (*scan.Result, int64) {
		t.Setenv("TMPDIR", dir)
		mem, err := scan.NewMemory(64<<20, 2)
		if err != nil {
			t.Fatal(err)
		}
		res, err := scan.Image(context.Background(), img, scan.WithLimits(lim), scan.WithMemory(mem), scan.WithAnalyzers(analyzers...))
		if err != nil {
			t.Fatal(err)
		}
		return res, mem.Peak()
	}
	onDisk, diskPeak = run(tmp)
	inMemory, memPeak = run(filepath.Join(tmp, "missing"))
	return onDisk, inMemory, diskPeak, memPeak
}

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
	tmp := t.TempDir()
	onDisk, inMemory, diskPeak, memPeak := scanBothWays(t, tmp, img, lim, gobinary.New(), rust.New(), m)

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

// A large jar is walked from a temporary file instead of memory by the
// Java, secrets and malware analyzers (pkg/archive's WalkAt): the same
// package, secret and miner script as in memory, for a fraction of the
// jar's size in the memory budget.
func TestLargeArchiveReadFromDisk(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	token := []byte("ghp_")
	for range 36 {
		token = append(token, alnum[rng.IntN(len(alnum))])
	}
	padding := make([]byte, 8<<20) // incompressible, stored: the jar is large
	for i := range padding {
		padding[i] = byte(rng.Uint32())
	}
	var jar bytes.Buffer
	zw := zip.NewWriter(&jar)
	for _, e := range []struct {
		name   string
		data   []byte
		method uint16
	}{
		{"META-INF/maven/com.example/billing/pom.properties", []byte("groupId=com.example\nartifactId=billing\nversion=1.4.2\n"), zip.Deflate},
		{"BOOT-INF/classes/application.properties", []byte("github.token=" + string(token) + "\n"), zip.Deflate},
		{"BOOT-INF/bin/start.sh", []byte("#!/bin/sh\n./xmrig --url gulf.moneroocean.stream:10128 --donate-level 1\n"), zip.Deflate},
	} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	// Stored images no analyzer reads: memory holds the entries read, not
	// the jar.
	for i := range 32 {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("static/img%d.png", i), Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(append([]byte("\x89PNG\r\n\x1a\n"), padding[i<<18:(i+1)<<18]...))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	img := scantest.Image(t, scantest.Layer(t, scantest.File{Path: "app/billing.jar", Content: jar.Bytes()}))
	lim := scan.DefaultLimits()
	lim.MaxAnalyzedFileSize = 16 << 20 // windows of 4 MiB: the 8 MiB jar is large
	m, err := malware.New()
	if err != nil {
		t.Fatal(err)
	}
	sa, err := secrets.New()
	if err != nil {
		t.Fatal(err)
	}
	onDisk, inMemory, diskPeak, memPeak := scanBothWays(t, t.TempDir(), img, lim, java.New(), sa, m)
	size := int64(jar.Len())
	if memPeak < size {
		t.Errorf("in memory, the budget's peak is %d bytes, less than the %d-byte jar", memPeak, size)
	}
	if diskPeak > size/2 {
		t.Errorf("from disk, the budget's peak is %d bytes for a %d-byte jar", diskPeak, size)
	}
	kinds := map[string]bool{}
	for _, p := range onDisk.Packages {
		if p.Name == "com.example:billing" && p.Version == "1.4.2" {
			kinds["package"] = true
		}
	}
	for _, f := range onDisk.Findings {
		kinds[string(f.Kind)+" "+f.Path] = true
	}
	for _, want := range []string{"package", "secret app/billing.jar!/BOOT-INF/classes/application.properties", "malware app/billing.jar!/BOOT-INF/bin/start.sh"} {
		if !kinds[want] {
			t.Errorf("from disk, no %s: %+v %+v", want, onDisk.Packages, onDisk.Findings)
		}
	}
	if !reflect.DeepEqual(onDisk.Packages, inMemory.Packages) || !reflect.DeepEqual(onDisk.Findings, inMemory.Findings) {
		t.Errorf("from disk:\n%+v\n%+v\nin memory:\n%+v\n%+v", onDisk.Packages, onDisk.Findings, inMemory.Packages, inMemory.Findings)
	}
}
