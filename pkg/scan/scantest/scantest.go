// Package scantest builds real OCI images in memory for tests of the scan
// library and of everything built on it (end-to-end tests push these
// images to a registry with remote.Write).
//
//	img := scantest.Image(t,
//		scantest.Layer(t, scantest.DebianRootfs(t)...),
//		scantest.GoBinaryLayer(t))
//
// Layers are tar archives written with archive/tar, gzip-compressed by
// default (zstd and uncompressed on request); images are OCI
// (application/vnd.oci.image.manifest.v1+json), linux/amd64.
package scantest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// File is one tar entry.
type File struct {
	// Path is the entry name, written as given ("etc/os-release",
	// "./etc/x", even "../../etc/passwd" for hostile tests).
	Path    string
	Content []byte
	// Mode holds the permission bits; 0 means 0644 (0755 for directories).
	Mode int64
	// Typeflag defaults to tar.TypeReg.
	Typeflag byte
	// Linkname is the target of a symlink or hardlink.
	Linkname string
}

// Reg is a regular file (0644).
func Reg(path, content string) File { return File{Path: path, Content: []byte(content)} }

// Exec is an executable regular file (0755).
func Exec(path string, content []byte) File { return File{Path: path, Content: content, Mode: 0o755} }

// Dir is a directory.
func Dir(path string) File { return File{Path: path, Typeflag: tar.TypeDir} }

// Symlink is a symbolic link to target.
func Symlink(path, target string) File {
	return File{Path: path, Typeflag: tar.TypeSymlink, Linkname: target}
}

// Hardlink is a hard link to target (a root-relative path).
func Hardlink(path, target string) File {
	return File{Path: path, Typeflag: tar.TypeLink, Linkname: target}
}

// Whiteout deletes p from lower layers: it is the entry "<dir>/.wh.<base>".
func Whiteout(p string) File {
	return File{Path: path.Join(path.Dir(p), ".wh."+path.Base(p))}
}

// Opaque hides every lower-layer child of dir: "<dir>/.wh..wh..opq".
func Opaque(dir string) File { return File{Path: path.Join(dir, ".wh..wh..opq")} }

// Compression of a layer.
type Compression int

const (
	Gzip Compression = iota
	Zstd
	Uncompressed
)

func (c Compression) mediaType() types.MediaType {
	switch c {
	case Zstd:
		return types.OCILayerZStd
	case Uncompressed:
		return types.OCIUncompressedLayer
	}
	return types.OCILayer
}

// modTime is fixed so that layers are reproducible.
var modTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Tar returns the tar archive of files, in order.
func Tar(t testing.TB, files ...File) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := writeEntry(tw, f); err != nil {
			t.Fatalf("scantest: tar entry %q: %v", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeEntry(tw *tar.Writer, f File) error {
	typ := f.Typeflag
	if typ == 0 {
		typ = tar.TypeReg
	}
	mode := f.Mode
	if mode == 0 {
		mode = 0o644
		if typ == tar.TypeDir {
			mode = 0o755
		}
	}
	hdr := &tar.Header{
		Name:     f.Path,
		Typeflag: typ,
		Mode:     mode,
		Linkname: f.Linkname,
		ModTime:  modTime,
		Format:   tar.FormatPAX,
	}
	if typ == tar.TypeReg {
		hdr.Size = int64(len(f.Content))
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if typ == tar.TypeReg {
		_, err := tw.Write(f.Content)
		return err
	}
	return nil
}

// Layer returns a gzip-compressed layer of files.
func Layer(t testing.TB, files ...File) v1.Layer {
	t.Helper()
	return LayerWith(t, Gzip, files...)
}

// LayerWith returns a layer of files with the given compression.
func LayerWith(t testing.TB, c Compression, files ...File) v1.Layer {
	t.Helper()
	return LayerFromTar(t, c, Tar(t, files...))
}

// LayerFromTar compresses an uncompressed tar stream into a layer.
func LayerFromTar(t testing.TB, c Compression, tarball []byte) v1.Layer {
	t.Helper()
	return RawLayer(Compress(t, c, tarball), sha256Hash(tarball), c.mediaType())
}

// CompressZstd compresses b with zstd, the encoder set by opts (a
// window size, say: zstd.WithWindowSize).
func CompressZstd(t testing.TB, b []byte, opts ...zstd.EOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Compress compresses b.
func Compress(t testing.TB, c Compression, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c {
	case Uncompressed:
		return b
	case Zstd:
		return CompressZstd(t, b)
	default:
		w = gzip.NewWriter(&buf)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// RawLayer is a layer made of exactly these compressed bytes: its digest
// and size are computed from them, its diff_id is the one given (tests of
// corrupt layers give anything they like).
func RawLayer(compressed []byte, diffID v1.Hash, mt types.MediaType) v1.Layer {
	return &memLayer{b: compressed, digest: sha256Hash(compressed), diffID: diffID, mt: mt}
}

type memLayer struct {
	b      []byte
	digest v1.Hash
	diffID v1.Hash
	mt     types.MediaType
}

func (l *memLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *memLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *memLayer) Size() (int64, error)                { return int64(len(l.b)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.b)), nil
}

// Uncompressed decompresses on the fly (gzip and zstd are sniffed).
func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	r := bytes.NewReader(l.b)
	switch {
	case bytes.HasPrefix(l.b, []byte{0x1f, 0x8b}):
		return gzip.NewReader(r)
	case bytes.HasPrefix(l.b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}

// WithDigest returns l claiming digest d (a digest mismatch: the content
// does not hash to d).
func WithDigest(l v1.Layer, d v1.Hash) v1.Layer { return &lyingLayer{Layer: l, digest: d} }

type lyingLayer struct {
	v1.Layer
	digest v1.Hash
}

func (l *lyingLayer) Digest() (v1.Hash, error) { return l.digest, nil }

// Counting returns l whose Compressed streams count the bytes read into n.
func Counting(l v1.Layer) (v1.Layer, *atomic.Int64) {
	c := &countingLayer{Layer: l}
	return c, &c.n
}

type countingLayer struct {
	v1.Layer
	n atomic.Int64
}

func (l *countingLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return &countingReader{ReadCloser: rc, n: &l.n}, nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// Image returns an OCI image (linux/amd64) of layers, bottom first, built
// with go-containerregistry's mutate package.
func Image(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Config returns the config Image would write for layers: linux/amd64,
// rootfs.diff_ids from the layers. Tests edit it and pass its JSON to
// ImageWithConfig.
func Config(t testing.TB, layers ...v1.Layer) *v1.ConfigFile {
	t.Helper()
	cfg := &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}}
	for _, l := range layers {
		d, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, d)
	}
	return cfg
}

// MarshalConfig encodes cfg.
func MarshalConfig(t testing.TB, cfg *v1.ConfigFile) []byte {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ImageWithConfig returns an OCI image whose config blob is exactly
// rawConfig (not recomputed from the layers: it may lie about diff_ids,
// be huge or be invalid) and whose manifest lists layers as they describe
// themselves (Digest, Size, MediaType).
func ImageWithConfig(t testing.TB, rawConfig []byte, layers ...v1.Layer) v1.Image {
	t.Helper()
	ri := &rawImage{config: rawConfig, layers: map[v1.Hash]v1.Layer{}}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config: v1.Descriptor{
			MediaType: types.OCIConfigJSON,
			Size:      int64(len(rawConfig)),
			Digest:    sha256Hash(rawConfig),
		},
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		mt, err := l.MediaType()
		if err != nil {
			t.Fatal(err)
		}
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: mt, Size: size, Digest: d})
		ri.layers[d] = l
	}
	var err error
	if ri.manifest, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	img, err := partial.CompressedToImage(ri)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type rawImage struct {
	config, manifest []byte
	layers           map[v1.Hash]v1.Layer
}

func (i *rawImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *rawImage) RawManifest() ([]byte, error)        { return i.manifest, nil }
func (i *rawImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i *rawImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := i.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("scantest: image has no layer %s", h)
}

func sha256Hash(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// Hash returns the sha256 v1.Hash of b.
func Hash(b []byte) v1.Hash { return sha256Hash(b) }

// MustHash parses "sha256:<hex>".
func MustHash(t testing.TB, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
