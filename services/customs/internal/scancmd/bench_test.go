package scancmd

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// benchImage is a Debian-like layer plus a layer of 16 MiB of text files
// (hex of random bytes: compresses by half, like source trees).
func benchImage(b *testing.B) v1.Image {
	b.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	var files []scantest.File
	raw := make([]byte, 32<<10)
	for i := range 256 {
		for j := range raw {
			raw[j] = byte(rnd.Uint32())
		}
		files = append(files, scantest.Reg(fmt.Sprintf("srv/app/data/%03d.txt", i), hex.EncodeToString(raw)))
	}
	return scantest.Image(b, scantest.Layer(b, scantest.DebianRootfs(b)...), scantest.Layer(b, files...))
}

// BenchmarkRunWarm is `customs scan` on an image whose layers are all in
// the layer cache (filled by one cold run before the timer): what is left
// is the per-scan work outside the layers (engine and rules, manifest,
// config, merge, report), without process start-up. scripts/bench/warm-path.sh
// profiles it.
func BenchmarkRunWarm(b *testing.B) {
	img := benchImage(b)
	b.Run("input", func(b *testing.B) {
		file := filepath.Join(b.TempDir(), "image.tar")
		tag, _ := name.NewTag("customs-bench/app:latest")
		if err := tarball.WriteToFile(file, tag, img); err != nil {
			b.Fatal(err)
		}
		runWarm(b, Options{Input: file, LayerCacheDir: b.TempDir()})
	})
	b.Run("pull", func(b *testing.B) {
		reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		b.Cleanup(reg.Close)
		ref, _ := name.ParseReference(strings.TrimPrefix(reg.URL, "http://")+"/bench/app:latest", name.Insecure)
		if err := remote.Write(ref, img); err != nil {
			b.Fatal(err)
		}
		runWarm(b, Options{Ref: ref.String(), Insecure: true, LayerCacheDir: b.TempDir()})
	})
}

func runWarm(b *testing.B, opts Options) {
	ctx := context.Background()
	if err := Run(ctx, opts, io.Discard); err != nil { // fills the cache
		b.Fatal(err)
	}
	for b.Loop() {
		if err := Run(ctx, opts, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
