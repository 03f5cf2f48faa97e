package gate

import (
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
)

// nopJS stands in for JetStream where New only needs one to exist.
type nopJS struct{ jetstream.JetStream }

// The defaults live in the env tags (what cmd/gate parses) and in
// withDefaults (what Go callers that leave a field zero get): both give the
// same configuration.
func TestDefaultsAgree(t *testing.T) { svcmaintest.CheckDefaults(t, Config.withDefaults) }

// Validate accepts zero values other than the upstream (the defaults),
// refuses a missing or malformed upstream, an unknown unscanned policy and
// registry names that are not host[:port].
func TestValidate(t *testing.T) {
	up := "http://registry:5000"
	type c = svcmaintest.Case[Config]
	svcmaintest.CheckValidate(t,
		c{Config: Config{Upstream: up}},
		c{Config: Config{Upstream: "https://registry.example.com/", Unscanned: "DENY", RegistryNames: []string{"registry.example.com", "gate:5080"}}},
		c{Config: Config{}, Want: "CUSTOMS_GATE_UPSTREAM is required"},
		c{Config: Config{Upstream: "registry:5000"}, Want: "CUSTOMS_GATE_UPSTREAM"},
		c{Config: Config{Upstream: "ftp://registry:5000"}, Want: "CUSTOMS_GATE_UPSTREAM"},
		c{Config: Config{Upstream: "http://registry:5000/prefix"}, Want: "no path"},
		c{Config: Config{Upstream: "http://user:pw@registry:5000"}, Want: "credentials"},
		c{Config: Config{Upstream: up, Unscanned: "block"}, Want: "CUSTOMS_GATE_UNSCANNED"},
		c{Config: Config{Upstream: up, RegistryNames: []string{"http://registry:5000"}}, Want: "CUSTOMS_GATE_REGISTRY_NAMES"},
		c{Config: Config{Upstream: up, RegistryNames: []string{" "}}, Want: "CUSTOMS_GATE_REGISTRY_NAMES"},
	)
}

// Without CUSTOMS_GATE_REGISTRY_NAMES, records are looked up under the
// gate's address and the upstream's, with the loopback spellings of a
// loopback or unspecified address.
func TestDefaultRegistryNames(t *testing.T) {
	for _, tc := range []struct {
		addr, upstream string
		want           []string
	}{
		{"127.0.0.1:5080", "http://registry:5000", []string{"127.0.0.1:5080", "localhost:5080", "[::1]:5080", "registry:5000"}},
		{"0.0.0.0:5080", "http://Registry:5000", []string{"0.0.0.0:5080", "127.0.0.1:5080", "localhost:5080", "[::1]:5080", "registry:5000"}},
		{"gate.example:443", "https://localhost:5000", []string{"gate.example:443", "localhost:5000", "127.0.0.1:5000", "[::1]:5000"}},
		{":5080", "https://registry.example", []string{":5080", "127.0.0.1:5080", "localhost:5080", "[::1]:5080", "registry.example"}},
	} {
		s, err := New(Config{Addr: tc.addr, Upstream: tc.upstream}, Deps{JetStream: nopJS{}})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.RegistryNames(); !slices.Equal(got, tc.want) {
			t.Errorf("addr %s upstream %s: names %q, want %q", tc.addr, tc.upstream, got, tc.want)
		}
	}
	s, err := New(Config{Upstream: "http://registry:5000", RegistryNames: []string{"Gate:5080", "registry:5000", "gate:5080"}}, Deps{JetStream: nopJS{}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.RegistryNames(), []string{"gate:5080", "registry:5000"}; !slices.Equal(got, want) {
		t.Errorf("configured names %q, want %q", got, want)
	}
}

// A relative Location is what lets an upload's next request come back
// through the gate, whichever name the registry put in it.
func TestRewriteLocation(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:5080", Upstream: "http://registry:80"}, Deps{JetStream: nopJS{}})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"http://registry:80/v2/a/blobs/uploads/u?_state=x": "/v2/a/blobs/uploads/u?_state=x",
		"http://registry/v2/a/blobs/uploads/u":             "/v2/a/blobs/uploads/u",
		"http://localhost:5080/v2/a/blobs/uploads/u":       "/v2/a/blobs/uploads/u",
		"http://gate.internal:5080/v2/a/":                  "/v2/a/",
		"https://s3.example/bucket/blob?sig=1":             "https://s3.example/bucket/blob?sig=1",
		"/v2/a/blobs/uploads/u":                            "/v2/a/blobs/uploads/u",
	} {
		h := map[string][]string{"Location": {in}}
		s.rewriteLocation(h, "gate.internal:5080")
		if got := h["Location"][0]; got != want {
			t.Errorf("Location %s → %s, want %s", in, got, want)
		}
	}
}

func TestParseManifestPath(t *testing.T) {
	for p, want := range map[string][2]string{
		"/v2/demo/app/manifests/latest":            {"demo/app", "latest"},
		"/v2/a/manifests/b/manifests/sha256:abc":   {"a/manifests/b", "sha256:abc"},
		"/v2/demo/app/blobs/sha256:abc":            {},
		"/v2/demo/app/manifests/":                  {},
		"/v2/manifests/x":                          {},
		"/v2/demo/app/manifests/latest/extra/path": {},
	} {
		repo, ref, ok := parseManifestPath(p)
		if ok != (want != [2]string{}) || repo != want[0] || ref != want[1] {
			t.Errorf("%s: %q %q %v, want %q", p, repo, ref, ok, want)
		}
	}
}
