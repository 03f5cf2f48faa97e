package scan_test

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

func TestLimitErrorsMatchBothSentinels(t *testing.T) {
	if !errors.Is(scan.ErrLimitExceeded, scan.ErrRejected) {
		t.Error("ErrLimitExceeded does not match ErrRejected")
	}
	if errors.Is(scan.ErrRejected, scan.ErrLimitExceeded) {
		t.Error("ErrRejected matches ErrLimitExceeded")
	}
}

func TestDefaultLimits(t *testing.T) {
	l := scan.DefaultLimits()
	want := scan.Limits{MaxLayers: 256, MaxConfigBytes: 8 << 20, MaxUncompressedBytes: 16 << 30,
		MaxFiles: 2_000_000, MaxFileSize: 4 << 30, MaxAnalyzedFileSize: 256 << 20}
	if l != want {
		t.Errorf("DefaultLimits() = %+v", l)
	}
}

func TestLimits(t *testing.T) {
	twoMiB := bytes.Repeat([]byte{0}, 2<<20)
	t.Run("uncompressed bytes", func(t *testing.T) {
		l := scantest.Layer(t, scantest.File{Path: "zeros", Content: twoMiB})
		_, err := scanErr(t, scantest.Image(t, l), scan.WithLimits(scan.Limits{MaxUncompressedBytes: 1 << 20}))
		wantRejected(t, err, true, "uncompressed size exceeds limit of 1048576 bytes", layerDigest(t, l)+" (#1)")
	})
	t.Run("uncompressed bytes across layers", func(t *testing.T) {
		half := bytes.Repeat([]byte{0}, 700<<10)
		a := scantest.Layer(t, scantest.File{Path: "a", Content: half})
		b := scantest.Layer(t, scantest.File{Path: "b", Content: half})
		_, err := scanErr(t, scantest.Image(t, a, b), scan.WithLimits(scan.Limits{MaxUncompressedBytes: 1 << 20}))
		wantRejected(t, err, true, "uncompressed size exceeds limit")
		mustScan(t, scantest.Image(t, a), scan.WithLimits(scan.Limits{MaxUncompressedBytes: 1 << 20}))
	})
	t.Run("files", func(t *testing.T) {
		var files []scantest.File
		for i := 0; i < 60; i++ {
			files = append(files, scantest.Reg("f/"+itoa(i), "x"))
		}
		img := scantest.Image(t, scantest.Layer(t, files[:30]...), scantest.Layer(t, files[30:]...))
		_, err := scanErr(t, img, scan.WithLimits(scan.Limits{MaxFiles: 50}))
		wantRejected(t, err, true, "more than 50 tar entries")
		mustScan(t, img, scan.WithLimits(scan.Limits{MaxFiles: 60}))
	})
	t.Run("file size", func(t *testing.T) {
		l := scantest.Layer(t, scantest.Reg("small", "x"), scantest.File{Path: "big/file", Content: twoMiB})
		_, err := scanErr(t, scantest.Image(t, l), scan.WithLimits(scan.Limits{MaxFileSize: 1 << 20}))
		wantRejected(t, err, true, `tar entry "big/file" is 2097152 bytes, more than the limit of 1048576 bytes`)
	})
	t.Run("layers", func(t *testing.T) {
		var layers []v1.Layer
		for i := 0; i < 5; i++ {
			layers = append(layers, scantest.Layer(t, scantest.Reg("f"+itoa(i), "x")))
		}
		_, err := scanErr(t, scantest.Image(t, layers...), scan.WithLimits(scan.Limits{MaxLayers: 4}))
		wantRejected(t, err, true, "image has 5 layers, more than the limit of 4")
		mustScan(t, scantest.Image(t, layers...), scan.WithLimits(scan.Limits{MaxLayers: 5}))
	})
	t.Run("ratio", func(t *testing.T) {
		l := scantest.ZerosLayer(t, scantest.Zstd, "zeros", 64<<20)
		_, err := scanErr(t, scantest.Image(t, l), scan.WithLimits(scan.Limits{MaxLayerRatio: 100}))
		wantRejected(t, err, true, "ratio exceeds limit of 100:1")
		mustScan(t, scantest.Image(t, l)) // off by default
	})
	t.Run("negative means unlimited", func(t *testing.T) {
		l := scantest.Layer(t, scantest.File{Path: "zeros", Content: twoMiB})
		mustScan(t, scantest.Image(t, l), scan.WithLimits(scan.Limits{MaxUncompressedBytes: -1, MaxFileSize: -1, MaxFiles: -1, MaxLayers: -1}))
	})
	t.Run("file too large to analyze is skipped, not an error", func(t *testing.T) {
		status := scantest.DebianStatus(t, "bash") + strings.Repeat("\n", 3<<20)
		img := scantest.Image(t, scantest.Layer(t, scantest.Reg(scantest.DpkgStatusPath, status)))
		res := mustScan(t, img, scan.WithLimits(scan.Limits{MaxAnalyzedFileSize: 1 << 20}))
		if len(res.Packages) != 0 {
			t.Errorf("packages = %+v", res.Packages)
		}
		if res := mustScan(t, img); len(res.Packages) != 1 {
			t.Errorf("packages with default limits = %+v", res.Packages)
		}
	})
}

// A decompression bomb — 512 MiB of zeros, about 0.5 MiB of gzip — fails
// as soon as the uncompressed limit is crossed: only a small part of the
// compressed stream is read, and memory stays small.
func TestGzipBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 512 MiB bomb")
	}
	const size = 512 << 20
	bomb := scantest.ZerosLayer(t, scantest.Gzip, "bomb", size)
	total, _ := bomb.Size()
	t.Logf("bomb: %d MiB of zeros in %d KiB of gzip", size>>20, total>>10)
	counted, read := scantest.Counting(bomb)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	lim := scan.DefaultLimits()
	lim.MaxUncompressedBytes = 32 << 20 // default-ish limits scaled down 512x
	lim.MaxFileSize = 8 << 20
	_, err := scanErr(t, scantest.Image(t, counted), scan.WithLimits(lim))
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	// The single 512 MiB entry is refused from its header, before any of
	// its data is decompressed.
	wantRejected(t, err, true, `tar entry "bomb" is 536870912 bytes`)
	if n := read.Load(); n > 256<<10 || n >= total/2 {
		t.Errorf("read %d of %d compressed bytes", n, total)
	}

	// Same bomb, file size allowed: the byte limit stops it after 32 MiB.
	lim.MaxFileSize = 1 << 30
	counted, read = scantest.Counting(bomb)
	_, err = scanErr(t, scantest.Image(t, counted), scan.WithLimits(lim))
	wantRejected(t, err, true, "uncompressed size exceeds limit of 33554432 bytes")
	// What 32 MiB of the bomb take (a sixteenth), the read-ahead, and as
	// much again for the decompressor's own buffering: well short of the
	// whole stream.
	if n, most := read.Load(), total/16+scan.ReadAhead+total/16; n > most || n >= total*3/4 {
		t.Errorf("read %d of %d compressed bytes for 32 MiB decompressed, more than %d", n, total, most)
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<20 {
		t.Errorf("heap grew by %d MiB", grew>>20)
	}
	t.Logf("compressed bytes read before failing: %d KiB of %d KiB", read.Load()>>10, total>>10)
}
