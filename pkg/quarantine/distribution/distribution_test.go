package distribution_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/quarantine/distribution"
)

// registry is go-containerregistry's in-memory registry, made to behave
// like Distribution v3 where the enforcer depends on it. (These tests
// also passed against a real distribution/v3 v3.1.2 served in-process
// by handlers.NewApp; it is not used here because as a dependency of pkg
// it adds ~40 modules to pkg/go.mod and makes services/results and
// services/scanner need a go mod tidy to build outside the workspace.)
//   - blobs belong to repositories (a blob pushed to one is unknown to
//     the others), and an image manifest is refused when a blob it
//     names is not in its repository;
//   - POST /blobs/uploads/?mount=<digest>&from=<repo> links the blob
//     (201) when <repo> has it;
//   - DELETE of a manifest by digest also deletes the tags pointing at
//     it, or is refused (405 UNSUPPORTED) when deletes are disabled.
//
// Requests are recorded.
type registry struct {
	host     string
	inner    http.Handler
	blobs    *repoBlobs
	noDelete bool

	mu       sync.Mutex
	requests []string
}

func startRegistry(t *testing.T) *registry { return startRegistryWith(t, true) }

func startRegistryWith(t *testing.T, deleteEnabled bool) *registry {
	t.Helper()
	r := &registry{blobs: &repoBlobs{m: map[string]map[string][]byte{}}, noDelete: !deleteEnabled}
	r.inner = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithBlobHandler(r.blobs))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

func regError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, code, msg)
}

func (r *registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	line := req.Method + " " + req.URL.Path
	if req.URL.RawQuery != "" {
		line += "?" + req.URL.RawQuery
	}
	r.mu.Lock()
	r.requests = append(r.requests, line)
	r.mu.Unlock()

	p := strings.TrimPrefix(req.URL.Path, "/v2/")
	switch {
	case req.Method == http.MethodPost && strings.HasSuffix(p, "/blobs/uploads/") && req.URL.Query().Get("mount") != "":
		repo := strings.TrimSuffix(p, "/blobs/uploads/")
		dgst, from := req.URL.Query().Get("mount"), req.URL.Query().Get("from")
		if r.blobs.link(from, repo, dgst) {
			w.Header().Set("Location", "/v2/"+repo+"/blobs/"+dgst)
			w.Header().Set("Docker-Content-Digest", dgst)
			w.WriteHeader(http.StatusCreated)
			return
		}
	case req.Method == http.MethodPut && strings.Contains(p, "/manifests/"):
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		repo, _, _ := strings.Cut(p, "/manifests/")
		if types.MediaType(req.Header.Get("Content-Type")).IsImage() {
			m, err := v1.ParseManifest(bytes.NewReader(body))
			if err != nil {
				regError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
				return
			}
			for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
				if !r.blobs.has(repo, d.Digest.String()) {
					regError(w, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry: "+d.Digest.String())
					return
				}
			}
		}
	case req.Method == http.MethodDelete && strings.Contains(p, "/manifests/sha256:"):
		if r.noDelete {
			regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "The operation is unsupported.")
			return
		}
		repo, dgst, _ := strings.Cut(p, "/manifests/")
		for _, tag := range r.tagsOf(repo, dgst) {
			rec := httptest.NewRecorder()
			r.inner.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/v2/"+repo+"/manifests/"+tag, nil))
		}
	}
	r.inner.ServeHTTP(w, req)
}

// tagsOf lists repo's tags pointing at dgst, through the inner registry.
func (r *registry) tagsOf(repo, dgst string) []string {
	rec := httptest.NewRecorder()
	r.inner.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/tags/list", nil))
	var list struct {
		Tags []string `json:"tags"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &list)
	var out []string
	for _, tag := range list.Tags {
		rec := httptest.NewRecorder()
		r.inner.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/v2/"+repo+"/manifests/"+tag, nil))
		if rec.Header().Get("Docker-Content-Digest") == dgst {
			out = append(out, tag)
		}
	}
	return out
}

// repoBlobs keeps blobs per repository.
type repoBlobs struct {
	mu sync.Mutex
	m  map[string]map[string][]byte // repo -> digest -> content
}

func (b *repoBlobs) has(repo, dgst string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.m[repo][dgst]
	return ok
}

func (b *repoBlobs) link(from, to, dgst string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.m[from][dgst]
	if !ok {
		return false
	}
	if b.m[to] == nil {
		b.m[to] = map[string][]byte{}
	}
	b.m[to][dgst] = c
	return true
}

func (b *repoBlobs) Get(_ context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.m[repo][h.String()]
	if !ok {
		return nil, ggcrregistry.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(c)), nil
}

func (b *repoBlobs) Stat(_ context.Context, repo string, h v1.Hash) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.m[repo][h.String()]
	if !ok {
		return 0, ggcrregistry.ErrNotFound
	}
	return int64(len(c)), nil
}

func (b *repoBlobs) Put(_ context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	defer rc.Close()
	c, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	// ggcr's registry names the repository of a chunked upload's final
	// PUT (/v2/<repo>/blobs/uploads/<id>) "<repo>/blobs".
	repo = strings.TrimSuffix(repo, "/blobs")
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m[repo] == nil {
		b.m[repo] = map[string][]byte{}
	}
	b.m[repo][h.String()] = c
	return nil
}

func (r *registry) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.requests
	r.requests = nil
	return q
}

func (r *registry) exists(t *testing.T, ref string) bool {
	t.Helper()
	_, err := remote.Head(mustRef(t, r.host+"/"+ref))
	if err == nil {
		return true
	}
	if !strings.Contains(err.Error(), "404") {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return false
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func push(t *testing.T, reg *registry, repo, tag string, img remote.Taggable) string {
	t.Helper()
	if err := remote.Push(mustRef(t, reg.host+"/"+repo+":"+tag), img); err != nil {
		t.Fatal(err)
	}
	d, err := img.(interface{ Digest() (v1.Hash, error) }).Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestMoveImage(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	dgst := push(t, reg, "team/app", "v1", img)
	if err := remote.Tag(mustRef(t, reg.host+"/team/app:latest").(name.Tag), img); err != nil {
		t.Fatal(err)
	}
	other, _ := random.Image(512, 1)
	push(t, reg, "team/app", "v2", other)
	reg.take()

	m, err := distribution.NewMove(distribution.MoveConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ref := quarantine.Ref{Registry: reg.host, Repository: "team/app", Digest: dgst}

	detail, err := m.Quarantine(ctx, ref, "malware")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(detail)
	if !strings.Contains(detail, "original tags: latest, v1") {
		t.Errorf("detail = %q", detail)
	}
	// Every blob (config and layers) was mounted, none uploaded.
	var mounts int
	for _, r := range reg.take() {
		if strings.HasPrefix(r, "POST /v2/quarantine/team/app/blobs/uploads/") {
			if !strings.Contains(r, "from=team%2Fapp") || !strings.Contains(r, "mount=sha256") {
				t.Errorf("upload without a mount: %s", r)
			}
			mounts++
		}
		if strings.HasPrefix(r, "PATCH ") || (strings.HasPrefix(r, "PUT ") && strings.Contains(r, "/blobs/")) {
			t.Errorf("blob uploaded: %s", r)
		}
	}
	if mounts != 3 {
		t.Errorf("%d mounts, want 3 (config and two layers)", mounts)
	}
	if reg.exists(t, "team/app@"+dgst) || reg.exists(t, "team/app:v1") || reg.exists(t, "team/app:latest") {
		t.Error("the original or its tags are still there")
	}
	if !reg.exists(t, "quarantine/team/app@"+dgst) || !reg.exists(t, "quarantine/team/app:"+strings.Replace(dgst, ":", "-", 1)) {
		t.Error("no quarantine copy")
	}
	if !reg.exists(t, "team/app:v2") {
		t.Error("the other image went too")
	}
	// The copy is whole: its blobs can be read.
	q, err := remote.Image(mustRef(t, reg.host+"/quarantine/team/app@"+dgst))
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := q.Layers()
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}

	st, err := m.Status(ctx, ref)
	if err != nil || !st.Blocked {
		t.Fatalf("status: %+v, %v", st, err)
	}
	// Twice: already moved.
	if detail, err := m.Quarantine(ctx, ref, "malware"); err != nil || !strings.Contains(detail, "already moved") {
		t.Fatalf("second quarantine: %q, %v", detail, err)
	}

	// Meanwhile "latest" is pushed again with another image.
	newer, _ := random.Image(256, 1)
	push(t, reg, "team/app", "latest", newer)

	ref.Tags = []string{"v1", "latest"}
	detail, err = m.Release(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(detail)
	if !strings.Contains(detail, "restored tags v1") || !strings.Contains(detail, "left alone (now on another image): latest") {
		t.Errorf("detail = %q", detail)
	}
	if !reg.exists(t, "team/app@"+dgst) || reg.exists(t, "quarantine/team/app@"+dgst) {
		t.Error("not moved back")
	}
	d, err := remote.Head(mustRef(t, reg.host+"/team/app:v1"))
	if err != nil || d.Digest.String() != dgst {
		t.Errorf("v1 = %v, %v", d, err)
	}
	nd, _ := newer.Digest()
	if d, err := remote.Head(mustRef(t, reg.host+"/team/app:latest")); err != nil || d.Digest != nd {
		t.Errorf("latest = %v, %v; want the newer image", d, err)
	}
	st, err = m.Status(ctx, ref)
	if err != nil || st.Blocked {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if detail, err := m.Release(ctx, ref); err != nil || !strings.Contains(detail, "already back") {
		t.Fatalf("second release: %q, %v", detail, err)
	}
}

func TestMoveIndex(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	idx, err := random.Index(512, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	dgst := push(t, reg, "team/multi", "v1", idx)
	m, err := distribution.NewMove(distribution.MoveConfig{Prefix: "jail"})
	if err != nil {
		t.Fatal(err)
	}
	ref := quarantine.Ref{Registry: reg.host, Repository: "team/multi", Digest: dgst}
	if _, err := m.Quarantine(ctx, ref, ""); err != nil {
		t.Fatal(err)
	}
	if reg.exists(t, "team/multi@"+dgst) || !reg.exists(t, "jail/team/multi@"+dgst) {
		t.Fatal("index not moved")
	}
	// The children were copied (by digest) before the index.
	im, _ := idx.IndexManifest()
	for _, c := range im.Manifests {
		if !reg.exists(t, "jail/team/multi@"+c.Digest.String()) {
			t.Errorf("child %s not copied", c.Digest)
		}
	}
	if _, err := m.Quarantine(ctx, ref, ""); err != nil {
		t.Fatal(err)
	}
	ref.Tags = []string{"v1"}
	if _, err := m.Release(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if !reg.exists(t, "team/multi:v1") || reg.exists(t, "jail/team/multi@"+dgst) {
		t.Fatal("index not moved back")
	}
	got, err := remote.Index(mustRef(t, reg.host+"/team/multi:v1"))
	if err != nil {
		t.Fatal(err)
	}
	if gd, _ := got.Digest(); gd.String() != dgst {
		t.Errorf("v1 is %s", gd)
	}
}

func TestMoveErrors(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	m, _ := distribution.NewMove(distribution.MoveConfig{})
	ref := quarantine.Ref{Registry: reg.host, Repository: "team/none", Digest: "sha256:" + strings.Repeat("ab", 32)}
	if _, err := m.Quarantine(ctx, ref, ""); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("quarantine of a missing image: %v", err)
	}
	if _, err := m.Release(ctx, ref); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("release of a missing image: %v", err)
	}
	ref.Repository = "quarantine/team/app"
	if _, err := m.Quarantine(ctx, ref, ""); err == nil {
		t.Error("an image inside the prefix was accepted")
	}
}

func TestMoveDeleteDisabled(t *testing.T) {
	// A registry that refuses deletes (Distribution's default): the error
	// carries its answer, and the copy stays.
	ctx := context.Background()
	reg := startRegistryWith(t, false)
	img, _ := random.Image(256, 1)
	dgst := push(t, reg, "team/app", "v1", img)

	m, _ := distribution.NewMove(distribution.MoveConfig{})
	ref := quarantine.Ref{Registry: reg.host, Repository: "team/app", Digest: dgst}
	_, err := m.Quarantine(ctx, ref, "")
	if err == nil || !strings.Contains(err.Error(), "UNSUPPORTED") || !strings.Contains(err.Error(), "the copy") {
		t.Fatalf("err = %v, want the registry's UNSUPPORTED", err)
	}
	st, err := m.Status(ctx, ref)
	if err != nil || st.Blocked || !strings.Contains(st.Detail, "did not finish") {
		t.Fatalf("status: %+v, %v", st, err)
	}
}

func TestGate(t *testing.T) {
	ctx := context.Background()
	dgst := "sha256:" + strings.Repeat("cd", 32)
	blocked := map[string]bool{"/v2/team/app/manifests/" + dgst: true}
	var seen []string
	var mu sync.Mutex
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodHead && blocked[r.URL.Path]:
			w.WriteHeader(http.StatusForbidden)
		case r.Method == http.MethodHead && strings.HasPrefix(r.URL.Path, "/v2/team/ok/manifests/"):
			w.Header().Set("Docker-Content-Digest", dgst)
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Content-Length", "2")
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(gate.Close)

	g, err := distribution.NewGate(distribution.GateConfig{URL: gate.URL})
	if err != nil {
		t.Fatal(err)
	}
	ref := quarantine.Ref{Registry: "registry.example.com", Repository: "team/app", Digest: dgst}
	if d, err := g.Quarantine(ctx, ref, "x"); err != nil || d != "pulls refused by the Customs gate" {
		t.Errorf("quarantine: %q, %v", d, err)
	}
	if _, err := g.Release(ctx, ref); err != nil {
		t.Error(err)
	}
	st, err := g.Status(ctx, ref)
	if err != nil || !st.Blocked {
		t.Errorf("status of a refused image: %+v, %v", st, err)
	}
	ok := ref
	ok.Repository = "team/ok"
	st, err = g.Status(ctx, ok)
	if err != nil || st.Blocked {
		t.Errorf("status of a served image: %+v, %v", st, err)
	}
	if !slices.Contains(seen, "HEAD /v2/team/app/manifests/"+dgst) {
		t.Errorf("requests: %v", seen)
	}

	none, err := distribution.NewGate(distribution.GateConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st, err = none.Status(ctx, ref)
	if err != nil || st.Blocked || !strings.HasPrefix(st.Detail, "unknown") {
		t.Errorf("status without URL: %+v, %v", st, err)
	}
	if _, err := distribution.NewGate(distribution.GateConfig{URL: "https://u:p@gate.example.com"}); err == nil {
		t.Error("a gate URL with credentials was accepted")
	}
}
