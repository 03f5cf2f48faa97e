package scantest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// ZerosLayer returns a layer holding one regular file, name, of size
// zero bytes, compressed with c: a decompression bomb
// when size is large (512 MiB of zeros is about 0.5 MiB of gzip). It is
// built streaming: only the compressed bytes are held in memory.
func ZerosLayer(t testing.TB, c Compression, name string, size int64) v1.Layer {
	t.Helper()
	var out bytes.Buffer
	var cw io.WriteCloser
	switch c {
	case Zstd:
		zw, err := zstd.NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		cw = zw
	case Uncompressed:
		t.Fatal("scantest: ZerosLayer needs a compression")
	default:
		zw, err := gzip.NewWriterLevel(&out, gzip.BestSpeed)
		if err != nil {
			t.Fatal(err)
		}
		cw = zw
	}
	diff := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(diff, cw))
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: modTime}); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(zeros)))
		if _, err := tw.Write(zeros[:n]); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))}
	return RawLayer(out.Bytes(), diffID, c.mediaType())
}
