package scan_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// blobTamperer serves one blob wrong: corrupted (same length) or cut
// short (a dropped connection).
type blobTamperer struct {
	next   http.Handler
	digest string
	mode   string // "corrupt" | "drop" | ""
}

func (b *blobTamperer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.mode == "" || r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+b.digest) {
		b.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	b.next.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	switch b.mode {
	case "corrupt":
		bad := append([]byte(nil), body...)
		bad[5] ^= 0xff // gzip MTIME: still valid gzip, only the digest is wrong
		_, _ = w.Write(bad)
	case "drop":
		_, _ = w.Write(body[:len(body)/2]) // shorter than Content-Length: the connection is closed
	}
}

// Through a real (in-memory) registry and go-containerregistry's remote
// package: digests verified by ggcr are classified correctly.
func TestRemoteRegistry(t *testing.T) {
	debian := scantest.Layer(t, scantest.DebianRootfs(t)...)
	app := scantest.GoBinaryLayer(t)
	img := scantest.Image(t, debian, app)
	tamper := &blobTamperer{next: registry.New(registry.Logger(nopLogger()))}
	srv := httptest.NewServer(tamper)
	defer srv.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/customs/test:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pull := func() v1.Image {
		t.Helper()
		ri, err := remote.Image(ref, remote.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		return ri
	}

	res, err := scanImage(ctx, pull())
	if err != nil {
		t.Fatal(err)
	}
	if res.OS.ID != "debian" || len(res.Packages) != 5 || res.Platform != "linux/amd64" {
		t.Errorf("OS %+v platform %q packages %+v", res.OS, res.Platform, res.Packages)
	}

	d, _ := debian.Digest()
	tamper.digest = d.String()
	tamper.mode = "corrupt"
	_, err = scanErr(t, pull())
	wantRejected(t, err, false, d.String()+" (#1)", "does not match the layer digest")
	t.Logf("corrupted blob: %v", err)

	tamper.mode = "drop"
	_, err = scanErr(t, pull())
	if errors.Is(err, scan.ErrRejected) {
		t.Errorf("dropped connection classified as a rejection: %v", err)
	}
	t.Logf("dropped connection: %v", err)
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }
