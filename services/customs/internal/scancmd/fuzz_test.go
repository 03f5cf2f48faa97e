package scancmd

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// fuzzScanLimits keep the scan of one fuzzed tarball fast.
var fuzzScanLimits = scan.Limits{
	MaxLayers: 4, MaxConfigBytes: 1 << 20, MaxUncompressedBytes: 4 << 20,
	MaxFiles: 4096, MaxFileSize: 2 << 20, MaxAnalyzedFileSize: 1 << 20, MaxLayerRatio: 2000,
}

// FuzzOpenTarInput opens arbitrary `customs scan --input` tarballs
// (docker save, OCI layout) and reads everything the scan reads: the
// image or index, manifests, configs, each layer's blob, then scans the
// images with small limits. data is the tarball itself (raw), or a list
// of entries, [1-byte name length][name][4-byte little-endian content
// length][content] repeated, written as a valid tar, so that mutations
// reach the JSON and the layout logic past tar's header checksums. It
// checks that nothing panics, that a failure returns nothing to close,
// and that success returns exactly one of an image and an index.
func FuzzOpenTarInput(f *testing.F) {
	dir := f.TempDir()
	img := scantest.Image(f, scantest.Layer(f, scantest.Reg("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
		scantest.Reg(scantest.DpkgStatusPath, scantest.DebianStatus(f, "bash"))))
	other := scantest.Image(f, scantest.Layer(f, scantest.Reg("etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\n")))

	var saved bytes.Buffer
	tag, err := name.NewTag("example.com/team/debian:12")
	if err != nil {
		f.Fatal(err)
	}
	if err := tarball.Write(tag, img, &saved); err != nil {
		f.Fatal(err)
	}
	single := ociLayoutTar(f, filepath.Join(dir, "single"), img)
	multi := ociLayoutTar(f, filepath.Join(dir, "multi"), img, other)
	nested := ociLayoutTar(f, filepath.Join(dir, "nested"), mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img}))
	for _, tb := range [][]byte{saved.Bytes(), single, multi, nested} {
		f.Add(true, tb)
		f.Add(false, entriesOf(f, tb))
	}
	f.Add(false, encodeEntries(map[string][]byte{
		"manifest.json": []byte(`[{"Config":"config.json","RepoTags":["x:1"],"Layers":["l.tar"]}]`),
		"config.json":   []byte(`{"rootfs":{"type":"layers","diff_ids":["sha256:00"]}}`),
		"l.tar":         nil,
	}))
	f.Add(false, encodeEntries(map[string][]byte{
		"index.json":                []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:` + sixtyFour + `","size":1}]}`),
		"blobs/sha256/" + sixtyFour: []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:` + sixtyFour + `","size":1}]}`),
	}))
	f.Add(true, []byte("not a tarball at all"))

	file := filepath.Join(dir, "input.tar")
	f.Fuzz(func(t *testing.T, raw bool, data []byte) {
		if len(data) > 8<<20 {
			return
		}
		defer watchdog(fuzzInputTimeout)()
		content := data
		if !raw {
			content = tarOf(t, decodeEntries(data))
		}
		if err := os.WriteFile(file, content, 0o600); err != nil {
			t.Fatal(err)
		}
		img, idx, _, closeFn, err := openTarInput(file)
		if err != nil {
			if img != nil || idx != nil || closeFn != nil {
				t.Fatalf("openTarInput failed (%v) but returned something", err)
			}
			return
		}
		defer closeFn()
		if (img == nil) == (idx == nil) || closeFn == nil {
			t.Fatalf("openTarInput: image %v, index %v, close %v", img != nil, idx != nil, closeFn != nil)
		}
		if img != nil {
			readImage(t, img)
		} else {
			readIndex(t, idx, 0)
		}
	})
}

// fuzzInputTimeout bounds one input (milliseconds for the seeds): a hang
// crashes the run with every goroutine's stack, so that the fuzzing
// engine keeps the input.
const fuzzInputTimeout = 20 * time.Second

func watchdog(d time.Duration) (stop func()) {
	t := time.AfterFunc(d, func() {
		buf := make([]byte, 1<<20)
		panic(fmt.Sprintf("input took more than %v:\n%s", d, buf[:runtime.Stack(buf, true)]))
	})
	return func() { t.Stop() }
}

const sixtyFour = "6e3d7f910f1db7976dd42dca966c8d5d6525a03e0b813708c5b325ede094c338"

// readImage reads what a scan of img reads, and scans it.
func readImage(t *testing.T, img v1.Image) {
	t.Helper()
	_, _ = img.Digest()
	_, _ = img.MediaType()
	_, _ = img.Manifest()
	_, _ = img.ConfigFile()
	if layers, err := img.Layers(); err == nil {
		for i, l := range layers {
			if i == 8 {
				break
			}
			_, _ = l.Digest()
			_, _ = l.DiffID()
			_, _ = l.Size()
			_, _ = l.MediaType()
			if rc, err := l.Compressed(); err == nil {
				_, _ = io.CopyN(io.Discard, rc, 1<<20)
				_ = rc.Close()
			}
		}
	}
	_, _ = scan.Image(context.Background(), img, scan.WithAnalyzers(inspect.PackageAnalyzers()...), scan.WithLimits(fuzzScanLimits), scan.WithConcurrency(1))
}

// readIndex reads idx and its children, nested indexes to a small depth
// (a layout can make an index its own child).
func readIndex(t *testing.T, idx v1.ImageIndex, depth int) {
	t.Helper()
	_, _ = idx.Digest()
	_, _ = idx.MediaType()
	im, err := idx.IndexManifest()
	if err != nil {
		return
	}
	for i, d := range im.Manifests {
		if i == 8 {
			break
		}
		switch {
		case d.MediaType.IsImage():
			if img, err := idx.Image(d.Digest); err == nil {
				readImage(t, img)
			}
		case d.MediaType.IsIndex() && depth < 3:
			if child, err := idx.ImageIndex(d.Digest); err == nil {
				readIndex(t, child, depth+1)
			}
		}
	}
}

// ociLayoutTar writes an OCI layout of images (or of one index) in dir
// and returns it packed in a tar.
func ociLayoutTar(t testing.TB, dir string, items ...any) []byte {
	t.Helper()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		switch v := it.(type) {
		case v1.Image:
			err = lp.AppendImage(v)
		case v1.ImageIndex:
			err = lp.AppendIndex(v)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type tarEntry struct {
	name string
	data []byte
}

// entriesOf returns the encoded entries of a tarball (a seed for the
// structured form).
func entriesOf(t testing.TB, tb []byte) []byte {
	t.Helper()
	var out []byte
	tr := tar.NewReader(bytes.NewReader(tb))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = appendEntry(out, h.Name, b)
	}
}

func encodeEntries(m map[string][]byte) []byte {
	var out []byte
	for _, k := range []string{"manifest.json", "config.json", "l.tar", "index.json", "blobs/sha256/" + sixtyFour} {
		if v, ok := m[k]; ok {
			out = appendEntry(out, k, v)
		}
	}
	return out
}

func appendEntry(out []byte, name string, data []byte) []byte {
	name = name[:min(len(name), 255)]
	out = append(out, byte(len(name)))
	out = append(out, name...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(data)))
	return append(out, data...)
}

// decodeEntries reads what appendEntry writes; lengths past the end are
// cut to what is there.
func decodeEntries(b []byte) []tarEntry {
	var out []tarEntry
	for len(b) > 0 {
		n := min(int(b[0]), len(b)-1)
		e := tarEntry{name: string(b[1 : 1+n])}
		b = b[1+n:]
		if len(b) < 4 {
			out = append(out, e)
			break
		}
		m := int(min(binary.LittleEndian.Uint32(b), uint32(len(b)-4)))
		e.data, b = b[4:4+m], b[4+m:]
		out = append(out, e)
	}
	return out
}

func tarOf(t *testing.T, es []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}); err != nil {
			continue // a name tar cannot write
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}
