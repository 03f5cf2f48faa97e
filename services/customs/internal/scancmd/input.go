package scancmd

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// maxMetadataBytes bounds index.json, manifests and configs read from a tarball.
const maxMetadataBytes = 8 << 20

// ociTar reads an OCI image layout packed in a tar file in place: one pass
// over the headers records where each blob starts, and blobs are then read
// as sections of the file, never extracted.
type ociTar struct {
	f       *os.File
	entries map[string]section // cleaned path → location
}

type section struct{ off, size int64 }

// countingReader tells archive/tar's consumer where in the file it is.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Seek lets archive/tar skip entry data instead of reading it (it seeks
// when its reader is an io.Seeker): indexing a 100 MB tarball reads its
// headers only, not every layer once more before the scan.
func (c *countingReader) Seek(offset int64, whence int) (int64, error) {
	s, ok := c.r.(io.Seeker)
	if !ok {
		return 0, errors.ErrUnsupported
	}
	pos, err := s.Seek(offset, whence)
	if err == nil {
		c.n = pos
	}
	return pos, err
}

// openTarInput opens a docker-save or OCI-layout tarball. It returns either
// an image or an index (for a layout with several manifests), and a name
// for the report (the image's repo tag when docker save recorded one).
func openTarInput(file string) (img v1.Image, idx v1.ImageIndex, repoTag string, closeFn func() error, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, "", nil, fmt.Errorf("open input: %w", err)
	}
	ot := &ociTar{f: f, entries: map[string]section{}}
	if err := ot.index(); err != nil {
		f.Close()
		return nil, nil, "", nil, err
	}
	if _, ok := ot.entries["index.json"]; ok {
		img, idx, err := ot.openLayout()
		if err != nil {
			f.Close()
			return nil, nil, "", nil, err
		}
		return img, idx, "", f.Close, nil
	}
	if _, ok := ot.entries["manifest.json"]; !ok {
		f.Close()
		return nil, nil, "", nil, errors.New("input is neither a docker-save tarball (manifest.json) nor an OCI layout (index.json)")
	}
	// docker save: go-containerregistry reads it in place.
	var mf tarball.Manifest
	if err := ot.readJSON("manifest.json", &mf); err != nil {
		f.Close()
		return nil, nil, "", nil, err
	}
	if len(mf) != 1 {
		f.Close()
		return nil, nil, "", nil, fmt.Errorf("docker-save tarball holds %d images; save one image per tarball", len(mf))
	}
	if len(mf[0].RepoTags) > 0 {
		repoTag = mf[0].RepoTags[0]
	}
	// go-containerregistry reads the config (and manifest) whole: check
	// their sizes from the tar headers first, so a 300 MB "config" is
	// refused before it is in memory.
	cfg, ok := ot.entries[path.Clean(strings.TrimPrefix(mf[0].Config, "./"))]
	if !ok {
		f.Close()
		return nil, nil, "", nil, fmt.Errorf("docker-save tarball has no config %s", mf[0].Config)
	}
	if cfg.size > maxMetadataBytes {
		f.Close()
		return nil, nil, "", nil, fmt.Errorf("config %s is %d bytes, more than %d", mf[0].Config, cfg.size, maxMetadataBytes)
	}
	img, err = ot.dockerSave(mf[0])
	if err != nil {
		f.Close()
		return nil, nil, "", nil, err
	}
	if img != nil {
		return img, nil, repoTag, f.Close, nil
	}
	img, err = tarball.ImageFromPath(file, nil)
	f.Close()
	if err != nil {
		return nil, nil, "", nil, fmt.Errorf("read docker-save tarball: %w", err)
	}
	return img, nil, repoTag, func() error { return nil }, nil
}

// dockerSave serves a docker-save tarball's layers in place when they
// are all stored uncompressed (classic `docker save`) or all compressed,
// and returns nil otherwise (mixed, or foreign layer sources), leaving it
// to go-containerregistry's reader. That reader would gzip each
// uncompressed layer twice — once for a digest, once to stream it — for
// the scan to gunzip it again: five times the CPU of the scan itself. An
// uncompressed layer's digest is its diff_id, which the scan verifies as
// it streams. Compressed layers are hashed for their digests, in
// parallel, and described exactly as go-containerregistry describes them
// (application/vnd.docker.image.rootfs.diff.tar.gzip), so the image
// digest is the same as with its reader.
func (o *ociTar) dockerSave(m tarball.Descriptor) (v1.Image, error) {
	raw, err := o.readAll(path.Clean(strings.TrimPrefix(m.Config, "./")))
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil || len(cfg.RootFS.DiffIDs) != len(m.Layers) || len(m.LayerSources) > 0 {
		return nil, nil // let go-containerregistry's reader say what is wrong
	}
	cfgDigest, cfgSize, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	im := &plainImage{o: o, config: raw, layers: map[v1.Hash]layerFile{}}
	man := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.DockerManifestSchema2,
		Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: cfgSize, Digest: cfgDigest},
		Layers:        make([]v1.Descriptor, len(m.Layers)),
	}
	names := make([]string, len(m.Layers))
	compressed := 0
	for i, lp := range m.Layers {
		name := path.Clean(strings.TrimPrefix(lp, "./"))
		s, ok := o.entries[name]
		if !ok {
			return nil, fmt.Errorf("docker-save tarball has no layer %s", lp)
		}
		head := make([]byte, 4)
		n, _ := o.f.ReadAt(head, s.off)
		if n >= 2 && head[0] == 0x1f && head[1] == 0x8b || n == 4 && bytes.Equal(head, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			compressed++
			man.Layers[i] = v1.Descriptor{MediaType: types.DockerLayer, Size: s.size}
		} else {
			man.Layers[i] = v1.Descriptor{MediaType: types.DockerUncompressedLayer, Size: s.size, Digest: cfg.RootFS.DiffIDs[i]}
		}
		names[i] = name
	}
	if compressed != 0 && compressed != len(m.Layers) {
		return nil, nil
	}
	if compressed > 0 {
		// The digests nothing records: hashed here, a layer per CPU.
		var g errgroup.Group
		g.SetLimit(runtime.GOMAXPROCS(0))
		for i := range man.Layers {
			g.Go(func() error {
				s := o.entries[names[i]]
				h, _, err := v1.SHA256(io.NewSectionReader(o.f, s.off, s.size))
				if err != nil {
					return fmt.Errorf("read layer %s: %w", names[i], err)
				}
				man.Layers[i].Digest = h
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	for i, l := range man.Layers {
		im.layers[l.Digest] = layerFile{name: names[i], mediaType: l.MediaType}
	}
	if im.manifest, err = json.Marshal(man); err != nil {
		return nil, err
	}
	return partial.CompressedToImage(im)
}

// plainImage is a partial.CompressedImageCore over a docker-save
// tarball's layers, read in place.
type plainImage struct {
	o        *ociTar
	config   []byte
	manifest []byte
	layers   map[v1.Hash]layerFile // by digest
}

type layerFile struct {
	name      string // path in the tarball
	mediaType types.MediaType
}

func (p *plainImage) RawConfigFile() ([]byte, error) { return p.config, nil }
func (p *plainImage) RawManifest() ([]byte, error)   { return p.manifest, nil }
func (p *plainImage) MediaType() (types.MediaType, error) {
	return types.DockerManifestSchema2, nil
}
func (p *plainImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	l, ok := p.layers[h]
	if !ok {
		return nil, fmt.Errorf("layer %s not in the tarball", h)
	}
	s := p.o.entries[l.name]
	return &tarLayer{o: p.o, desc: v1.Descriptor{MediaType: l.mediaType, Size: s.size, Digest: h}, path: l.name}, nil
}

func (o *ociTar) index() error {
	cr := &countingReader{r: o.f}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read input tarball: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		// archive/tar has consumed exactly the header when Next returns.
		o.entries[path.Clean(strings.TrimPrefix(h.Name, "./"))] = section{off: cr.n, size: h.Size}
	}
}

func (o *ociTar) open(name string) (io.ReadCloser, error) {
	s, ok := o.entries[name]
	if !ok {
		return nil, fmt.Errorf("input tarball has no %s", name)
	}
	return io.NopCloser(io.NewSectionReader(o.f, s.off, s.size)), nil
}

func (o *ociTar) readAll(name string) ([]byte, error) {
	s, ok := o.entries[name]
	if !ok {
		return nil, fmt.Errorf("input tarball has no %s", name)
	}
	if s.size > maxMetadataBytes {
		return nil, fmt.Errorf("%s is %d bytes, more than %d", name, s.size, maxMetadataBytes)
	}
	b := make([]byte, s.size)
	if _, err := o.f.ReadAt(b, s.off); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

func (o *ociTar) readJSON(name string, v any) error {
	b, err := o.readAll(name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", name, err)
	}
	return nil
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// open resolves index.json: a single image (possibly behind a nested
// index with one entry) becomes an image, several become an index.
func (o *ociTar) openLayout() (v1.Image, v1.ImageIndex, error) {
	raw, err := o.readAll("index.json")
	if err != nil {
		return nil, nil, err
	}
	idx := &tarIndex{o: o, raw: raw}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, err
	}
	if len(im.Manifests) == 1 {
		d := im.Manifests[0]
		switch {
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			return img, nil, err
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			return nil, child, err
		}
	}
	return nil, idx, nil
}

// tarIndex is a v1.ImageIndex over blobs in the tar.
type tarIndex struct {
	o   *ociTar
	raw []byte
}

func (t *tarIndex) MediaType() (types.MediaType, error) {
	im, err := t.IndexManifest()
	if err != nil {
		return "", err
	}
	if im.MediaType != "" {
		return im.MediaType, nil
	}
	return types.OCIImageIndex, nil
}
func (t *tarIndex) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(t.raw))
	return h, err
}
func (t *tarIndex) Size() (int64, error) { return int64(len(t.raw)), nil }
func (t *tarIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(t.raw))
}
func (t *tarIndex) RawManifest() ([]byte, error) { return t.raw, nil }
func (t *tarIndex) Image(h v1.Hash) (v1.Image, error) {
	raw, err := t.o.readAll(blobPath(h))
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&tarImage{o: t.o, raw: raw})
}
func (t *tarIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	raw, err := t.o.readAll(blobPath(h))
	if err != nil {
		return nil, err
	}
	return &tarIndex{o: t.o, raw: raw}, nil
}

// tarImage is a partial.CompressedImageCore over blobs in the tar.
type tarImage struct {
	o   *ociTar
	raw []byte
}

func (t *tarImage) manifest() (*v1.Manifest, error) { return v1.ParseManifest(bytes.NewReader(t.raw)) }
func (t *tarImage) RawManifest() ([]byte, error)    { return t.raw, nil }
func (t *tarImage) MediaType() (types.MediaType, error) {
	m, err := t.manifest()
	if err != nil {
		return "", err
	}
	if m.MediaType != "" {
		return m.MediaType, nil
	}
	return types.OCIManifestSchema1, nil
}
func (t *tarImage) RawConfigFile() ([]byte, error) {
	m, err := t.manifest()
	if err != nil {
		return nil, err
	}
	return t.o.readAll(blobPath(m.Config.Digest))
}
func (t *tarImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := t.manifest()
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if l.Digest == h {
			return &tarLayer{o: t.o, desc: l}, nil
		}
	}
	if m.Config.Digest == h {
		return &tarLayer{o: t.o, desc: m.Config}, nil
	}
	return nil, fmt.Errorf("layer %s not in manifest", h)
}

type tarLayer struct {
	o    *ociTar
	desc v1.Descriptor
	path string // in the tarball; "" means blobs/<digest> (OCI layout)
}

func (l *tarLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *tarLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *tarLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *tarLayer) Compressed() (io.ReadCloser, error) {
	if l.path != "" {
		return l.o.open(l.path)
	}
	return l.o.open(blobPath(l.desc.Digest))
}
