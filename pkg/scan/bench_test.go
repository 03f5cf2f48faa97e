package scan_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// benchImage is a synthetic Debian-like image of about 50 MB uncompressed
// in 4 gzip layers: a base with os-release and a dpkg status, thousands
// of text files (compressible like real /usr/share), shell scripts and
// ELF executables (some of them Go binaries), and an upper layer
// rewriting the status. It returns the image and its uncompressed size.
func benchImage(b *testing.B) (v1.Image, int64) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the of and to in is for on that by this with from package debian " +
		"file system library version license copyright data config server client error value " +
		"return function struct string int64 module import export default option limit layer")
	text := func(n int) []byte {
		var sb strings.Builder
		for sb.Len() < n {
			sb.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(12) == 0 {
				sb.WriteByte('\n')
			} else {
				sb.WriteByte(' ')
			}
		}
		return []byte(sb.String()[:n])
	}
	gobin := scantest.GoBinary(b)
	var total int64
	var layers []v1.Layer
	add := func(files []scantest.File) {
		for _, f := range files {
			total += int64(len(f.Content))
		}
		layers = append(layers, scantest.Layer(b, files...))
	}
	base := scantest.DebianRootfs(b)
	for i := 0; i < 4500; i++ {
		base = append(base, scantest.File{Path: fmt.Sprintf("usr/share/doc/pkg%d/copyright", i), Content: text(4000 + rng.IntN(4000))})
	}
	add(base)
	var bins []scantest.File
	for i := 0; i < 400; i++ {
		bins = append(bins, scantest.Exec(fmt.Sprintf("usr/bin/tool%d", i), append([]byte("#!/bin/sh\n"), text(3000)...)))
	}
	for i := 0; i < 4; i++ {
		bins = append(bins, scantest.Exec(fmt.Sprintf("usr/local/bin/app%d", i), gobin))
	}
	add(bins)
	var docs []scantest.File
	for i := 0; i < 3000; i++ {
		docs = append(docs, scantest.File{Path: fmt.Sprintf("usr/share/man/man1/page%d.1", i), Content: text(2000 + rng.IntN(6000))})
	}
	add(docs)
	add([]scantest.File{scantest.Reg(scantest.DpkgStatusPath, scantest.DebianStatus(b, scantest.DebianStanzaNames...))})
	return scantest.Image(b, layers...), total
}

func BenchmarkImage(b *testing.B) {
	img, size := benchImage(b)
	var compressed int64
	ls, _ := img.Layers()
	for _, l := range ls {
		n, _ := l.Size()
		compressed += n
	}
	b.Logf("image: %d layers, %.1f MB of file content, %.1f MB compressed", len(ls), float64(size)/1e6, float64(compressed)/1e6)
	ctx := context.Background()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		res, err := scanImage(ctx, img)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Packages) < 7 {
			b.Fatalf("packages = %d", len(res.Packages))
		}
	}
}
