package egress

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Foreign (non-distributable) layers list URLs in their descriptor, and
// go-containerregistry fetches them when the registry does not serve the
// blob: hosts chosen by whoever pushed the image. Unless the policy allows
// foreign layers, such a layer is fetched from the registry only, and a
// registry that does not have it fails the scan with a fixed reason (the
// image cannot be scanned without fetching what the policy forbids).

// Image returns img, or, when foreign layers are not allowed, img whose
// layers that list URLs are fetched from repo only (with opts, which must
// carry the same transport as the pull).
func (p *Policy) Image(img v1.Image, repo name.Repository, opts ...remote.Option) v1.Image {
	if p.ForeignLayers() {
		return img
	}
	return &registryOnlyImage{Image: img, repo: repo, opts: opts}
}

// Index is Image for every image of idx.
func (p *Policy) Index(idx v1.ImageIndex, repo name.Repository, opts ...remote.Option) v1.ImageIndex {
	if p.ForeignLayers() {
		return idx
	}
	return &registryOnlyIndex{index: idx, p: p, repo: repo, opts: opts}
}

// registryOnlyIndex embeds the index under another name: its method
// ImageIndex would clash with the embedded field.
type registryOnlyIndex struct {
	index
	p    *Policy
	repo name.Repository
	opts []remote.Option
}

func (i *registryOnlyIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := i.index.Image(h)
	if err != nil {
		return nil, err
	}
	return i.p.Image(img, i.repo, i.opts...), nil
}

func (i *registryOnlyIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := i.index.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return i.p.Index(idx, i.repo, i.opts...), nil
}

type index = v1.ImageIndex

type registryOnlyImage struct {
	v1.Image
	repo name.Repository
	opts []remote.Option
}

// foreign is the set of layer digests whose descriptor lists URLs.
func (i *registryOnlyImage) foreign() (map[v1.Hash]bool, error) {
	m, err := i.Manifest()
	if err != nil {
		return nil, err
	}
	out := map[v1.Hash]bool{}
	if m == nil {
		return out, nil
	}
	for _, l := range m.Layers {
		if len(l.URLs) > 0 {
			out[l.Digest] = true
		}
	}
	return out, nil
}

func (i *registryOnlyImage) wrap(l v1.Layer, foreign map[v1.Hash]bool) (v1.Layer, error) {
	d, err := l.Digest()
	if err != nil {
		return nil, err
	}
	if !foreign[d] {
		return l, nil
	}
	return &registryOnlyLayer{Layer: l, ref: i.repo.Digest(d.String()), opts: i.opts}, nil
}

func (i *registryOnlyImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	foreign, err := i.foreign()
	if err != nil {
		return nil, err
	}
	if len(foreign) == 0 {
		return ls, nil
	}
	out := make([]v1.Layer, len(ls))
	for k, l := range ls {
		if out[k], err = i.wrap(l, foreign); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (i *registryOnlyImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	return i.wrapped(i.Image.LayerByDigest(h))
}

func (i *registryOnlyImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	return i.wrapped(i.Image.LayerByDiffID(h))
}

func (i *registryOnlyImage) wrapped(l v1.Layer, err error) (v1.Layer, error) {
	if err != nil {
		return nil, err
	}
	foreign, err := i.foreign()
	if err != nil {
		return nil, err
	}
	return i.wrap(l, foreign)
}

// registryOnlyLayer reads a foreign layer's blob from the registry, never
// from its URLs.
type registryOnlyLayer struct {
	v1.Layer
	ref  name.Digest
	opts []remote.Option
}

func (l *registryOnlyLayer) blob() (v1.Layer, error) {
	rl, err := remote.Layer(l.ref, l.opts...)
	if err != nil {
		return nil, fmt.Errorf("foreign layer %s: %w", l.ref.DigestStr(), err)
	}
	return rl, nil
}

func (l *registryOnlyLayer) Compressed() (io.ReadCloser, error) {
	rl, err := l.blob()
	if err != nil {
		return nil, err
	}
	rc, err := rl.Compressed()
	return rc, l.notServed(err)
}

func (l *registryOnlyLayer) Uncompressed() (io.ReadCloser, error) {
	rl, err := l.blob()
	if err != nil {
		return nil, err
	}
	rc, err := rl.Uncompressed()
	return rc, l.notServed(err)
}

// notServed turns the registry's 404 into the refusal it amounts to.
func (l *registryOnlyLayer) notServed(err error) error {
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		// Callers name the layer; the message stays fixed.
		return &RefusedError{
			Host:   l.ref.RegistryStr(),
			Reason: "foreign layer not served by the registry; its URLs are not fetched (CUSTOMS_ALLOW_FOREIGN_LAYERS)",
		}
	}
	return err
}
