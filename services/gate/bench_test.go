package gate_test

// What the gate costs: a manifest GET through the gate (upstream round trip
// plus the decision) against the same GET sent to the registry, and a
// 32 MiB blob streamed through the gate against the registry directly.
//
//	go test -run '^$' -bench . -benchtime 2s ./services/gate

import (
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/customs-scan/customs/services/gate"
)

func BenchmarkManifestGet(b *testing.B) {
	h := newHarness(b, gate.Config{})
	d := h.push(b, "bench/app:v1", randomImage(b))
	path := "/v2/bench/app/manifests/" + d.String()
	for _, target := range []struct{ name, host string }{{"direct", h.registry}, {"gate", h.gate}} {
		b.Run(target.name, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{Proxy: nil}}
			req, err := http.NewRequest(http.MethodGet, "http://"+target.host+path, nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Accept", manifestAccept)
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", path, resp.StatusCode)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
		})
	}
}

func BenchmarkBlobGet(b *testing.B) {
	h := newHarness(b, gate.Config{})
	layer, err := random.Layer(32<<20, types.DockerLayer)
	if err != nil {
		b.Fatal(err)
	}
	repo := h.ref(b, "bench/blob:v1").Context()
	if err := remote.WriteLayer(repo, layer); err != nil {
		b.Fatalf("push blob through the gate: %v", err)
	}
	d, _ := layer.Digest()
	size, _ := layer.Size()
	path := "/v2/bench/blob/blobs/" + d.String()
	for _, target := range []struct{ name, host string }{{"direct", h.registry}, {"gate", h.gate}} {
		b.Run(target.name, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{Proxy: nil}}
			b.SetBytes(size)
			for b.Loop() {
				resp, err := c.Get("http://" + target.host + path)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || n != size {
					b.Fatalf("GET blob: %d, %d of %d bytes, %v", resp.StatusCode, n, size, err)
				}
			}
		})
	}
}
