// Package osvfeedtest serves a local OSV mirror for tests: real records
// from pkg/vulndb/testdata zipped per ecosystem, with ETags, conditional
// requests and a count of full downloads.
package osvfeedtest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
)

// Mirror is a test OSV mirror: <URL>/<ecosystem>/all.zip.
type Mirror struct {
	URL string
	mu  sync.Mutex
	// dumps by ecosystem.
	dumps map[string][]byte
	full  map[string]int
	reqs  int
}

// New serves dumps built from records (paths relative to
// vulndbtest.TestData(), e.g. "osv/go/GO-2020-0015.json") per ecosystem.
func New(t testing.TB, records map[string][]string) *Mirror {
	t.Helper()
	m := &Mirror{dumps: map[string][]byte{}, full: map[string]int{}}
	for eco, files := range records {
		m.Set(t, eco, files...)
	}
	srv := httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(srv.Close)
	m.URL = srv.URL
	return m
}

// Zip zips records (paths relative to vulndbtest.TestData()).
func Zip(t testing.TB, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(vulndbtest.TestData(), f))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(filepath.Base(f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Set replaces an ecosystem's dump with the given records.
func (m *Mirror) Set(t testing.TB, eco string, files ...string) { m.SetRaw(eco, Zip(t, files...)) }

// SetRaw replaces an ecosystem's dump with raw bytes (a corrupt zip).
func (m *Mirror) SetRaw(eco string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dumps[eco] = data
}

// Downloads is how many times an ecosystem's dump was sent in full (a 304
// does not count).
func (m *Mirror) Downloads(eco string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.full[eco]
}

// Requests counts every request.
func (m *Mirror) Requests() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reqs
}

func (m *Mirror) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reqs++
	eco, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/all.zip")
	data, found := m.dumps[eco]
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	sum := sha256.Sum256(data)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	m.full[eco]++
	w.Header().Set("Content-Type", "application/zip")
	w.Write(data)
}
