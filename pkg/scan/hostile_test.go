package scan_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

func scanErr(t testing.TB, img v1.Image, opts ...scan.Option) (*scan.Result, error) {
	t.Helper()
	res, err := scanImage(context.Background(), img, opts...)
	if err == nil {
		t.Fatalf("scan.Image succeeded, want an error; result: %+v", res)
	}
	return res, err
}

func isRejected(err error) bool { return errors.Is(err, scan.ErrRejected) }

// wantRejected checks err is a rejection (not a limit unless limit) whose
// message contains every part.
func wantRejected(t *testing.T, err error, limit bool, parts ...string) {
	t.Helper()
	if !errors.Is(err, scan.ErrRejected) {
		t.Fatalf("err = %v, want ErrRejected", err)
	}
	if errors.Is(err, scan.ErrLimitExceeded) != limit {
		t.Errorf("errors.Is(err, ErrLimitExceeded) = %v, want %v (err: %v)", !limit, limit, err)
	}
	var re *scan.RejectedError
	if !errors.As(err, &re) {
		t.Errorf("err %v is not a *scan.RejectedError", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("message %q does not contain %q", err, p)
		}
	}
}

func TestHostilePaths(t *testing.T) {
	for _, tc := range []struct{ name, problem string }{
		{"../../etc/passwd", "escapes the image root"},
		{"a/../../x", "escapes the image root"},
		{"..", "escapes the image root"},
		{"./../x", "escapes the image root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := scantest.Layer(t, scantest.DebianRootfs(t)...)
			evil := scantest.Layer(t, scantest.Reg("etc/ok", "fine"), scantest.Reg(tc.name, "root::0:0::/root:/bin/sh\n"))
			_, err := scanErr(t, scantest.Image(t, base, evil))
			wantRejected(t, err, false, fmt.Sprintf("tar entry %q %s", tc.name, tc.problem),
				"scan: image rejected: layer "+layerDigest(t, evil)+" (#2)")
		})
	}
	// A hardlink whose target escapes the root is hostile too.
	_, err := scanErr(t, scantest.Image(t, scantest.Layer(t, scantest.Hardlink("etc/shadow2", "../../etc/shadow"))))
	wantRejected(t, err, false, `tar entry "etc/shadow2" is a hardlink to "../../etc/shadow"`)

	// Harmless: "./" prefixes, inner "..", symlinks pointing anywhere.
	res := mustScan(t, scantest.Image(t, scantest.Layer(t,
		scantest.Reg("./etc/../etc/os-release", "ID=debian\nVERSION_ID=12\n"),
		scantest.Symlink("etc/evil", "../../../../etc/shadow"),
		scantest.Symlink("etc/abs", "/etc/shadow"),
		scantest.Reg("./"+scantest.DpkgStatusPath, scantest.DebianStatus(t, "bash")))))
	if res.OS.ID != "debian" || len(res.Packages) != 1 || res.Packages[0].Path != scantest.DpkgStatusPath {
		t.Errorf("OS %+v packages %+v", res.OS, res.Packages)
	}
}

// Builders such as ko write absolute entry names; by default they are read
// relative to the root, and WithAbsolutePaths(false) rejects them.
func TestAbsolutePaths(t *testing.T) {
	strict := scantest.Layer(t, scantest.Reg("etc/ok", "fine"), scantest.Reg("/etc/passwd", "root::0:0::/root:/bin/sh\n"))
	_, err := scanErr(t, scantest.Image(t, strict), scan.WithAbsolutePaths(false))
	wantRejected(t, err, false, `tar entry "/etc/passwd" is an absolute path`)

	img := scantest.Image(t, scantest.Layer(t,
		scantest.Reg("/etc/os-release", "ID=debian\nVERSION_ID=12\n"),
		scantest.Reg("/../../"+scantest.DpkgStatusPath, scantest.DebianStatus(t, "bash")),
		scantest.Exec("/ko-app/app", scantest.GoBinary(t))))
	res := mustScan(t, img)
	if res.OS.ID != "debian" {
		t.Errorf("OS = %+v", res.OS)
	}
	paths := map[string]bool{}
	for _, p := range res.Packages {
		paths[p.Path] = true
	}
	if !paths[scantest.DpkgStatusPath] || !paths["ko-app/app"] || len(paths) != 2 {
		t.Errorf("package paths = %v", paths)
	}
	_, err = scanErr(t, scantest.Image(t, scantest.Layer(t, scantest.Reg("a/../../x", ""))))
	wantRejected(t, err, false, "escapes the image root")
}

func TestCorruptLayers(t *testing.T) {
	tarball := scantest.Tar(t, scantest.DebianRootfs(t)...)
	gz := scantest.Compress(t, scantest.Gzip, tarball)
	diffID := scantest.Hash(tarball)

	t.Run("corrupt gzip", func(t *testing.T) {
		bad := bytes.Clone(gz)
		for i := len(bad) / 3; i < len(bad)/3+64; i++ {
			bad[i] ^= 0x5a
		}
		_, err := scanErr(t, scantest.Image(t, scantest.RawLayer(bad, diffID, types.OCILayer)))
		wantRejected(t, err, false, "corrupt gzip data")
	})
	t.Run("truncated gzip", func(t *testing.T) {
		_, err := scanErr(t, scantest.Image(t, scantest.RawLayer(gz[:len(gz)/2], diffID, types.OCILayer)))
		wantRejected(t, err, false)
	})
	t.Run("bad gzip checksum", func(t *testing.T) {
		bad := bytes.Clone(gz)
		bad[len(bad)-6] ^= 0xff // CRC-32 in the trailer
		_, err := scanErr(t, scantest.Image(t, scantest.RawLayer(bad, diffID, types.OCILayer)))
		wantRejected(t, err, false, "corrupt gzip data")
	})
	t.Run("garbage instead of tar", func(t *testing.T) {
		junk := bytes.Repeat([]byte("not a tar archive "), 100)
		_, err := scanErr(t, scantest.Image(t, scantest.RawLayer(junk, scantest.Hash(junk), types.OCIUncompressedLayer)))
		wantRejected(t, err, false, "invalid tar archive")
	})
	t.Run("truncated tar", func(t *testing.T) {
		short := tarball[:1000]
		_, err := scanErr(t, scantest.Image(t, scantest.RawLayer(short, scantest.Hash(short), types.OCIUncompressedLayer)))
		wantRejected(t, err, false, "truncated")
	})
	t.Run("digest mismatch", func(t *testing.T) {
		l := scantest.WithDigest(scantest.RawLayer(gz, diffID, types.OCILayer), scantest.Hash([]byte("something else")))
		_, err := scanErr(t, scantest.Image(t, l))
		wantRejected(t, err, false, "not the layer digest")
	})
	t.Run("diff_id mismatch", func(t *testing.T) {
		l := scantest.RawLayer(gz, scantest.Hash([]byte("not the tar")), types.OCILayer)
		_, err := scanErr(t, scantest.Image(t, l))
		wantRejected(t, err, false, "diff_id")
	})
	t.Run("diff_id mismatch in config", func(t *testing.T) {
		l := scantest.LayerFromTar(t, scantest.Gzip, tarball)
		cfg := scantest.Config(t, l)
		cfg.RootFS.DiffIDs[0] = scantest.Hash([]byte("lie"))
		_, err := scanErr(t, scantest.ImageWithConfig(t, scantest.MarshalConfig(t, cfg), l))
		wantRejected(t, err, false, "diff_id")
	})
	t.Run("trailing garbage after the gzip stream", func(t *testing.T) {
		bad := append(bytes.Clone(gz), []byte("garbage after the end")...)
		_, err := scanErr(t, scantest.Image(t, scantest.RawLayer(bad, diffID, types.OCILayer)))
		wantRejected(t, err, false)
	})
	t.Run("data after the tar end marker is covered by the diff_id", func(t *testing.T) {
		padded := append(bytes.Clone(tarball), bytes.Repeat([]byte{0}, 4096)...)
		res := mustScan(t, scantest.Image(t, scantest.LayerFromTar(t, scantest.Gzip, padded)))
		if len(res.Packages) != 3 {
			t.Errorf("packages = %+v", res.Packages)
		}
	})
	t.Run("unsupported media type", func(t *testing.T) {
		l := scantest.RawLayer(gz, diffID, "application/vnd.cncf.helm.chart.content.v1.tar+gzip")
		_, err := scanErr(t, scantest.Image(t, l))
		wantRejected(t, err, false, "unsupported layer media type")
		l = scantest.RawLayer(gz, diffID, "application/vnd.oci.image.layer.v1.tar+gzip+encrypted")
		_, err = scanErr(t, scantest.Image(t, l))
		wantRejected(t, err, false, "unsupported layer media type")
	})
	t.Run("xz", func(t *testing.T) {
		xz := append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, make([]byte, 64)...)
		_, err := scanErr(t, scantest.Image(t, scantest.RawLayer(xz, scantest.Hash(xz), types.DockerLayer)))
		wantRejected(t, err, false, "xz")
	})
	t.Run("media type lies: gzip content labelled uncompressed", func(t *testing.T) {
		res := mustScan(t, scantest.Image(t, scantest.RawLayer(gz, diffID, types.OCIUncompressedLayer)))
		if len(res.Packages) != 3 {
			t.Errorf("packages = %+v", res.Packages)
		}
	})
}

func TestConfigProblems(t *testing.T) {
	l := scantest.Layer(t, scantest.DebianRootfs(t)...)
	t.Run("invalid JSON", func(t *testing.T) {
		_, err := scanErr(t, scantest.ImageWithConfig(t, []byte("{not json"), l))
		wantRejected(t, err, false, "invalid config")
	})
	t.Run("too large", func(t *testing.T) {
		cfg := scantest.Config(t, l)
		cfg.Config.Env = []string{"BIG=" + strings.Repeat("x", 2<<20)}
		_, err := scanErr(t, scantest.ImageWithConfig(t, scantest.MarshalConfig(t, cfg), l),
			scan.WithLimits(scan.Limits{MaxConfigBytes: 1 << 20}))
		wantRejected(t, err, true, "config is", "more than the limit of 1048576 bytes")
	})
	t.Run("diff_ids do not match the layers", func(t *testing.T) {
		cfg := scantest.Config(t, l, l)
		_, err := scanErr(t, scantest.ImageWithConfig(t, scantest.MarshalConfig(t, cfg), l))
		wantRejected(t, err, false, "config lists 2 diff_ids for 1 layers")
	})
	t.Run("platform", func(t *testing.T) {
		cfg := scantest.Config(t, l)
		cfg.Architecture, cfg.Variant = "arm64", "v8"
		res := mustScan(t, scantest.ImageWithConfig(t, scantest.MarshalConfig(t, cfg), l))
		if res.Platform != "linux/arm64/v8" {
			t.Errorf("platform %q", res.Platform)
		}
		cfg.OS, cfg.Architecture, cfg.Variant = "", "", ""
		res = mustScan(t, scantest.ImageWithConfig(t, scantest.MarshalConfig(t, cfg), l))
		if res.Platform != "" {
			t.Errorf("platform %q", res.Platform)
		}
	})
}

// errLayer fails while streaming, like a registry connection that drops.
type errLayer struct {
	v1.Layer
	after int
	err   error
}

func (l *errLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(rc)
	return io.NopCloser(io.MultiReader(bytes.NewReader(b[:l.after]), &failReader{l.err})), nil
}

type failReader struct{ err error }

func (f *failReader) Read([]byte) (int, error) { return 0, f.err }

// verifyError mimics go-containerregistry's internal/verify message.
type verifyError struct{}

func (verifyError) Error() string {
	return `error verifying sha256 checksum after reading 10 bytes; got "sha256:aa", want "sha256:bb"`
}

func TestNetworkErrorsAreNotRejections(t *testing.T) {
	l := scantest.Layer(t, scantest.DebianRootfs(t)...)
	netErr := errors.New("read tcp 10.0.0.1:443: connection reset by peer")
	_, err := scanErr(t, scantest.Image(t, &errLayer{Layer: l, after: 100, err: netErr}))
	if isRejected(err) || !errors.Is(err, netErr) {
		t.Errorf("err = %v: want the network error, not a rejection", err)
	}
	// A registry that served bytes not matching the digest: rejected.
	_, err = scanErr(t, scantest.Image(t, &errLayer{Layer: l, after: 100, err: verifyError{}}))
	wantRejected(t, err, false, "does not match the layer digest")
}

// slowLayer blocks in Read until closed.
type slowLayer struct {
	v1.Layer
}

func (l *slowLayer) Compressed() (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		rc, _ := l.Layer.Compressed()
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		_, _ = pw.Write(b[:50]) // then hang until the reader is closed
	}()
	return pr, nil
}

func TestContextCancellation(t *testing.T) {
	l := scantest.Layer(t, scantest.DebianRootfs(t)...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := scanImage(ctx, scantest.Image(t, l)); !errors.Is(err, context.Canceled) || isRejected(err) {
		t.Errorf("cancelled before: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := scanImage(ctx, scantest.Image(t, l, &slowLayer{Layer: scantest.Layer(t, scantest.AlpineRootfs(t)...)}))
	if !errors.Is(err, context.DeadlineExceeded) || isRejected(err) {
		t.Errorf("stuck layer: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %v", d)
	}
}

// panicky analyzers must not take the scan down (nor fail it).
type panicky struct{}

func (panicky) Name() string                          { return "panicky" }
func (panicky) Version() int                          { return 1 }
func (panicky) Match(string, fs.FileMode, int64) bool { return true }
func (panicky) Analyze(context.Context, *analyzer.File) (*analyzer.Result, error) {
	panic("boom")
}

func TestAnalyzerPanic(t *testing.T) {
	img := scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...))
	res := mustScan(t, img, scan.WithAnalyzers(append(inspect.PackageAnalyzers(), panicky{})...))
	if len(res.Packages) != 3 {
		t.Errorf("packages = %+v", res.Packages)
	}
}

// Tar entry types that never create analyzable files are accepted.
func TestOddEntries(t *testing.T) {
	img := scantest.Image(t, scantest.Layer(t, append(scantest.DebianRootfs(t),
		scantest.File{Path: "dev/null", Typeflag: tar.TypeChar},
		scantest.File{Path: "dev/sda", Typeflag: tar.TypeBlock},
		scantest.File{Path: "run/fifo", Typeflag: tar.TypeFifo},
		scantest.Hardlink("usr/bin/bash2", "usr/lib/os-release"),
	)...))
	res := mustScan(t, img)
	if len(res.Packages) != 3 {
		t.Errorf("packages = %+v", res.Packages)
	}
}

// picky fails on files holding a crafted marker, as an analyzer meeting
// content its engine cannot handle does; it reads large files window by
// window.
type picky struct{}

func (picky) Name() string                                { return "picky" }
func (picky) Version() int                                { return 1 }
func (picky) Match(p string, _ fs.FileMode, _ int64) bool { return strings.HasPrefix(p, "srv/") }
func (picky) MatchLarge(p string, _ fs.FileMode, _ int64) bool {
	return strings.HasPrefix(p, "srv/")
}
func (picky) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	if bytes.Contains(f.Data, []byte("CRAFTED")) {
		return nil, errors.New("cannot handle this file")
	}
	return nil, nil
}

// An analyzer failure skips the file, is logged with the analyzer, layer
// and path through the context's logger, and reaches WithAnalyzerErrors
// (for a file read whole and for a window of a large one).
func TestAnalyzerErrors(t *testing.T) {
	big := strings.Repeat("x", 600<<10) + "CRAFTED"
	img := scantest.Image(t, scantest.Layer(t, append(scantest.DebianRootfs(t),
		scantest.Reg("srv/ok.txt", "fine"),
		scantest.Reg("srv/crafted.txt", "a CRAFTED file"),
		scantest.Reg("srv/big.txt", big),
	)...))
	var logs bytes.Buffer
	ctx := zerolog.New(&logs).WithContext(context.Background())
	var mu sync.Mutex
	failed := map[string]int{}
	res, err := scan.Image(ctx, img,
		scan.WithAnalyzers(append(inspect.PackageAnalyzers(), picky{})...),
		scan.WithLimits(scan.Limits{MaxAnalyzedFileSize: 512 << 10}),
		scan.WithAnalyzerErrors(func(name string, err error) {
			mu.Lock()
			defer mu.Unlock()
			failed[name+": "+err.Error()]++
		}))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Packages) != 3 {
		t.Errorf("packages = %+v", res.Packages)
	}
	if failed["picky: cannot handle this file"] != 2 || len(failed) != 1 {
		t.Errorf("analyzer errors = %v, want picky's twice", failed)
	}
	for _, want := range []string{
		`"analyzer":"picky"`, `"path":"srv/crafted.txt"`, `"message":"scan: analyzer failed; file skipped"`,
		`"path":"srv/big.txt"`, `"message":"scan: analyzer failed on a window; window skipped"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}
