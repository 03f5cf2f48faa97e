package scan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// The decompression pipeline (pipe.go) must not change a report or an
// error: every image here is scanned by the sequential walk and by the
// pipelined one, with every detector, and the results compared whole
// (packages, findings, layer attribution, OS, layers).
func TestPipelineSameResults(t *testing.T) {
	const token = "ghp_Zq8Lr2Xv9Tb4Nc6Md1Pw7Ks3Hy5Fj0GaUeWi"
	// Larger than MaxAnalyzedFileSize below: streamed in windows, with
	// the token at the end.
	var big strings.Builder
	for big.Len() < 3<<20 {
		big.WriteString("function f(e,t){return e.render(t,\"children\")}\n")
	}
	big.WriteString("const githubToken=\"" + token + "\";\n")

	status := scantest.DpkgStatusPath
	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	upper := scantest.LayerWith(t, scantest.Zstd,
		scantest.Reg(status, scantest.DebianStatus(t, "base-files", "libc6", "zlib1g")),
		scantest.Whiteout("usr/share/doc/bash"),
		scantest.Reg("app/node_modules/left-pad/package.json", `{"name":"left-pad","version":"1.3.0"}`),
		scantest.Reg("app/.env", "GITHUB_TOKEN="+token+"\n"),
		scantest.Reg("app/dist/main.js", big.String()),
		scantest.Symlink("opt/d", "/var/lib/dpkg"),
	)
	plain := scantest.LayerWith(t, scantest.Uncompressed,
		scantest.Reg("opt/d/status", scantest.DebianStatus(t, "bash")),
		scantest.Reg("etc/ssh/sshd_config", "PermitRootLogin yes\n"),
	)
	images := map[string]v1.Image{
		"debian":      scantest.Image(t, base),
		"multi-layer": scantest.Image(t, base, upper, scantest.GoBinaryLayer(t), plain),
	}

	lim := scan.DefaultLimits()
	lim.MaxAnalyzedFileSize = 1 << 20
	e, err := inspect.NewEngine(inspect.EngineConfig{}, scan.WithLimits(lim))
	if err != nil {
		t.Fatal(err)
	}
	run := func(sequential bool, img v1.Image) ([]byte, error) {
		defer scan.SetSequentialWalk(sequential)()
		res, err := e.Options().Scanner.Image(context.Background(), img)
		if err != nil {
			return nil, err
		}
		return json.Marshal(res)
	}
	for name, img := range images {
		seq, err := run(true, img)
		if err != nil {
			t.Fatalf("%s, sequential: %v", name, err)
		}
		pipe, err := run(false, img)
		if err != nil {
			t.Fatalf("%s, pipelined: %v", name, err)
		}
		if !bytes.Equal(seq, pipe) {
			t.Errorf("%s: reports differ\nsequential: %s\npipelined:  %s", name, seq, pipe)
		}
		if name == "multi-layer" && (!bytes.Contains(seq, []byte("app/dist/main.js")) || !bytes.Contains(seq, []byte("left-pad"))) {
			t.Errorf("%s: the report lacks the windowed secret or the npm package: %s", name, seq)
		}
	}

	// Errors too: corrupt and hostile layers fail with the same message.
	tarball := scantest.Tar(t, scantest.DebianRootfs(t)...)
	gz := scantest.Compress(t, scantest.Gzip, tarball)
	diffID := scantest.Hash(tarball)
	corrupt := bytes.Clone(gz)
	for i := len(corrupt) / 3; i < len(corrupt)/3+64; i++ {
		corrupt[i] ^= 0x5a
	}
	crc := bytes.Clone(gz)
	crc[len(crc)-6] ^= 0xff
	junk := bytes.Repeat([]byte("not a tar archive "), 100)
	short := tarball[:1000]
	small := lim
	small.MaxUncompressedBytes = 2 << 20
	for name, tc := range map[string]struct {
		l    v1.Layer
		opts []scan.Option
	}{
		"corrupt gzip":    {l: scantest.RawLayer(corrupt, diffID, types.OCILayer)},
		"truncated gzip":  {l: scantest.RawLayer(gz[:len(gz)/2], diffID, types.OCILayer)},
		"bad gzip crc":    {l: scantest.RawLayer(crc, diffID, types.OCILayer)},
		"not a tar":       {l: scantest.RawLayer(junk, scantest.Hash(junk), types.OCIUncompressedLayer)},
		"truncated tar":   {l: scantest.RawLayer(short, scantest.Hash(short), types.OCIUncompressedLayer)},
		"trailing bytes":  {l: scantest.RawLayer(append(bytes.Clone(gz), "junk"...), diffID, types.OCILayer)},
		"diff_id":         {l: scantest.RawLayer(gz, scantest.Hash([]byte("not the tar")), types.OCILayer)},
		"digest":          {l: scantest.WithDigest(scantest.RawLayer(gz, diffID, types.OCILayer), scantest.Hash([]byte("x")))},
		"byte limit":      {l: scantest.ZerosLayer(t, scantest.Gzip, "zeros", 8<<20), opts: []scan.Option{scan.WithLimits(small)}},
		"escaping name":   {l: scantest.Layer(t, scantest.Reg("../../etc/passwd", "x"))},
		"zstd byte limit": {l: scantest.ZerosLayer(t, scantest.Zstd, "zeros", 8<<20), opts: []scan.Option{scan.WithLimits(small)}},
	} {
		img := scantest.Image(t, tc.l)
		var msgs [2]string
		for i, sequential := range []bool{true, false} {
			restore := scan.SetSequentialWalk(sequential)
			_, err := scanImage(context.Background(), img, tc.opts...)
			restore()
			if err == nil {
				t.Fatalf("%s: no error (sequential %v)", name, sequential)
			}
			msgs[i] = err.Error()
		}
		if msgs[0] != msgs[1] {
			t.Errorf("%s: sequential %q, pipelined %q", name, msgs[0], msgs[1])
		}
	}
}
