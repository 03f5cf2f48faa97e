package scancmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// classicSave writes what classic `docker save` writes: manifest.json,
// the config, and each layer as an uncompressed <id>/layer.tar. Layer
// contents may be replaced (tamper) after the config names their diff_ids.
func classicSave(t *testing.T, layers [][]byte, tamper func(i int, b []byte) []byte) string {
	t.Helper()
	cfg := v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}}
	var es []tarEntry
	var paths []string
	for i, l := range layers {
		d, _, err := v1.SHA256(bytes.NewReader(l))
		if err != nil {
			t.Fatal(err)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, d)
		p := d.Hex[:12] + "/layer.tar"
		paths = append(paths, p)
		if tamper != nil {
			l = tamper(i, l)
		}
		es = append(es, tarEntry{name: p, data: l})
	}
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	man, err := json.Marshal(tarball.Manifest{{Config: "config.json", RepoTags: []string{"example.com/team/app:1"}, Layers: paths}})
	if err != nil {
		t.Fatal(err)
	}
	es = append(es, tarEntry{name: "config.json", data: rawCfg}, tarEntry{name: "manifest.json", data: man})
	p := filepath.Join(t.TempDir(), "saved.tar")
	if err := os.WriteFile(p, tarOf(t, es), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A classic docker-save tarball (uncompressed layers) is scanned as
// stored: layer digests are the diff_ids, packages are found, and a
// layer whose bytes do not match its diff_id is refused.
func TestClassicDockerSave(t *testing.T) {
	base := scantest.Tar(t, scantest.DebianRootfs(t)...)
	app := scantest.Tar(t, scantest.Reg("app/node_modules/left-pad/package.json", `{"name":"left-pad","version":"1.3.0"}`))
	input := classicSave(t, [][]byte{base, app}, nil)
	t.Setenv("CUSTOMS_DB", filepath.Join(t.TempDir(), "none.gob.gz")) // missing: packages not checked

	img, _, repoTag, closeFn, err := openTarInput(input)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if repoTag != "example.com/team/app:1" {
		t.Errorf("repo tag %q", repoTag)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range ls {
		d, _ := l.Digest()
		diff, _ := l.DiffID()
		if d != diff {
			t.Errorf("layer %d: digest %s, diff_id %s; an uncompressed layer's digest is its diff_id", i, d, diff)
		}
	}

	var out bytes.Buffer
	if err := Run(context.Background(), Options{Input: input}, &out); err != nil {
		t.Fatal(err)
	}
	var r report.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Status != "" && r.Status != report.StatusComplete || len(r.Layers) != 2 || r.Layers[0].Digest != r.Layers[0].DiffID {
		t.Errorf("status %q, layers %+v", r.Status, r.Layers)
	}
	var names []string
	for _, p := range r.Packages {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "left-pad") || !strings.Contains(got, "bash") {
		t.Errorf("packages %s; want bash (dpkg) and left-pad (npm)", got)
	}

	// Same size, one byte changed: the digest (the diff_id) no longer holds.
	bad := classicSave(t, [][]byte{base, app}, func(i int, b []byte) []byte {
		if i == 1 {
			b = bytes.Clone(b)
			b[600] ^= 1
		}
		return b
	})
	err = Run(context.Background(), Options{Input: bad}, &out)
	if err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("tampered layer: %v; want a digest mismatch", err)
	}
}

// Compressed docker-save tarballs (what go-containerregistry writes) are
// read in place too, described as its reader describes them: the same
// image digest and layer digests.
func TestCompressedDockerSaveUnchanged(t *testing.T) {
	img := scantest.Image(t,
		scantest.Layer(t, scantest.Reg("etc/os-release", "ID=debian\nVERSION_ID=12\n")),
		scantest.LayerWith(t, scantest.Zstd, scantest.Reg("app/a.txt", "a")),
		scantest.Layer(t, scantest.Reg("app/b.txt", "b")))
	p := filepath.Join(t.TempDir(), "saved.tar")
	if err := tarball.WriteToFile(p, name.MustParseReference("x:1").(name.Tag), img); err != nil {
		t.Fatal(err)
	}
	got, _, _, closeFn, err := openTarInput(p)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	ggcr, err := tarball.ImageFromPath(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ggcr.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := got.Digest(); err != nil || d != want {
		t.Errorf("digest %s (%v); want %s", d, err, want)
	}
	gl, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	wl, err := ggcr.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(gl) != 3 || len(wl) != 3 {
		t.Fatalf("%d and %d layers; want 3", len(gl), len(wl))
	}
	for i := range gl {
		gd, _ := gl[i].Digest()
		wd, _ := wl[i].Digest()
		if gd != wd {
			t.Errorf("layer %d: digest %s; go-containerregistry says %s", i, gd, wd)
		}
	}
}
