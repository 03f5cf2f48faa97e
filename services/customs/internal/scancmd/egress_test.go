package scancmd

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/customs-scan/customs/pkg/egress"
	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// `customs scan` pulls from the registry the user named, and from
// nowhere else: a blob redirect to another listener is refused unless
// that host is given as a redirect host, and then gets no credentials.
func TestScanFollowsRedirectsOnlyToGivenHosts(t *testing.T) {
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var mu sync.Mutex
	var storageAuth []string
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		storageAuth = append(storageAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(storage.Close)
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
			http.Redirect(w, r, storage.URL+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	ref, _ := name.ParseReference(host+"/team/app:latest", name.Insecure)
	if err := remote.Write(ref, scantest.Image(t, scantest.Layer(t, scantest.Reg("etc/motd", "hello")))); err != nil {
		t.Fatal(err)
	}
	opts := Options{Ref: ref.String(), Insecure: true, Engine: inspect.EngineConfig{Detectors: []string{inspect.DetectorSecrets}}}

	err := Run(context.Background(), opts, io.Discard)
	if !egress.Refused(err) || !strings.Contains(err.Error(), "egress refused "+strings.TrimPrefix(storage.URL, "http://")) {
		t.Fatalf("redirect to a host not given: %v", err)
	}
	mu.Lock()
	n := len(storageAuth)
	mu.Unlock()
	if n != 0 {
		t.Fatalf("the redirect target was contacted %d times", n)
	}

	opts.RedirectHosts = []string{strings.TrimPrefix(storage.URL, "http://")}
	if err := Run(context.Background(), opts, io.Discard); err != nil {
		t.Fatalf("redirect to a given host: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(storageAuth) == 0 {
		t.Fatal("the redirect was not followed")
	}
	for _, a := range storageAuth {
		if a != "" {
			t.Errorf("redirect host got Authorization %q", a)
		}
	}
}
