package gate_test

import (
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/services/gate"
)

const (
	enforce     = quarantine.ModeEnforce
	quarantined = quarantine.StateQuarantined
	released    = quarantine.StateReleased
)

// A quarantined image is refused by tag and by digest, GET and HEAD, with
// the registry's DENIED error; its blobs still pull, other images pull, and
// once released it pulls again. Pushes go through the gate, so uploads
// (whose next request goes where Location says) work through it.
func TestQuarantinedImageIsRefused(t *testing.T) {
	h := newHarness(t, gate.Config{})
	bad, good := randomImage(t), randomImage(t)
	dBad := h.push(t, "demo/app:bad", bad)
	h.push(t, "demo/app:good", good)
	if n := h.direct.Load(); n != 0 {
		t.Fatalf("%d push requests reached the registry directly: a Location was not rewritten to the gate", n)
	}
	// The upload's Location names no host, so the client stays on the gate.
	st, hdr, body := h.do(t, http.MethodPost, "/v2/demo/app/blobs/uploads/")
	if loc := hdr.Get("Location"); st != http.StatusAccepted || !strings.HasPrefix(loc, "/v2/demo/app/blobs/uploads/") {
		t.Fatalf("POST upload through the gate: %d Location %q %s", st, loc, body)
	}

	// Clean before the record.
	if err := h.pull(t, "demo/app:bad"); err != nil {
		t.Fatalf("pull before quarantine: %v", err)
	}
	h.putRecord(t, h.gate, "demo/app", dBad.String(), quarantined, enforce, "malware: EICAR test file")
	h.waitStatus(t, http.MethodGet, "/v2/demo/app/manifests/bad", http.StatusForbidden)

	want := deniedBody("quarantined by Customs: malware: EICAR test file")
	for _, ref := range []string{"bad", dBad.String()} {
		path := "/v2/demo/app/manifests/" + ref
		st, hdr, body := h.do(t, http.MethodGet, path)
		if st != http.StatusForbidden || body != want || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %q %q, want 403 application/json %q", path, st, hdr.Get("Content-Type"), body, want)
		}
		if hdr.Get("Docker-Content-Digest") != "" || hdr.Get("Etag") != "" {
			t.Errorf("GET %s: the refusal carries the manifest's digest or ETag: %v", path, hdr)
		}
		st, _, body = h.do(t, http.MethodHead, path)
		if st != http.StatusForbidden || body != "" {
			t.Errorf("HEAD %s: %d %q, want 403 without a body", path, st, body)
		}
		err := h.pull(t, "demo/app"+map[bool]string{true: "@", false: ":"}[strings.Contains(ref, ":")]+ref)
		if terr := registryErr(t, err); terr.StatusCode != http.StatusForbidden || len(terr.Errors) != 1 ||
			terr.Errors[0].Code != "DENIED" || terr.Errors[0].Message != "quarantined by Customs: malware: EICAR test file" {
			t.Errorf("pull %s: %v, want 403 DENIED", ref, err)
		}
	}
	if _, err := remote.Head(h.ref(t, "demo/app:bad")); registryErr(t, err).StatusCode != http.StatusForbidden {
		t.Errorf("remote.Head: %v, want 403", err)
	}
	// A client holding the manifest from before may not be told 304 (use
	// your copy).
	if st, _, _ := h.do(t, http.MethodGet, "/v2/demo/app/manifests/bad", "If-None-Match", `"`+dBad.String()+`"`); st != http.StatusForbidden {
		t.Errorf("GET with If-None-Match of the quarantined digest: %d, want 403", st)
	}

	// Layers are shared between images: a quarantined image's blobs pull.
	layers, err := bad.Layers()
	if err != nil {
		t.Fatal(err)
	}
	repo := h.ref(t, "demo/app:bad").Context()
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Layer(repo.Digest(d.String()))
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Layer(got); err != nil {
			t.Errorf("blob %s of the quarantined image: %v", d, err)
		}
	}

	// Another image of the same repository is untouched, by tag and digest.
	dGood, _ := good.Digest()
	for _, ref := range []string{"demo/app:good", "demo/app@" + dGood.String()} {
		if err := h.pull(t, ref); err != nil {
			t.Errorf("pull %s: %v", ref, err)
		}
	}

	// Released: pulls again.
	h.putRecord(t, h.gate, "demo/app", dBad.String(), released, enforce, "malware: EICAR test file")
	h.waitStatus(t, http.MethodGet, "/v2/demo/app/manifests/bad", http.StatusOK)
	for _, ref := range []string{"demo/app:bad", "demo/app@" + dBad.String()} {
		if err := h.pull(t, ref); err != nil {
			t.Errorf("pull %s after release: %v", ref, err)
		}
	}

	// Upstream errors pass through as the registry wrote them.
	st, _, body = h.do(t, http.MethodGet, "/v2/demo/app/manifests/missing")
	if st != http.StatusNotFound || !strings.Contains(body, "MANIFEST_UNKNOWN") {
		t.Errorf("unknown tag: %d %s, want the registry's 404 MANIFEST_UNKNOWN", st, body)
	}
	if n := h.direct.Load(); n != 0 {
		t.Errorf("%d requests reached the registry directly", n)
	}
}

// A dry-run record says what would have happened; it blocks nothing.
func TestDryRunRecordDoesNotBlock(t *testing.T) {
	h := newHarness(t, gate.Config{})
	d := h.push(t, "demo/dry:v1", randomImage(t))
	h.putRecord(t, h.gate, "demo/dry", d.String(), quarantined, quarantine.ModeDryRun, "would be quarantined")
	h.sync(t)
	for _, ref := range []string{"demo/dry:v1", "demo/dry@" + d.String()} {
		if err := h.pull(t, ref); err != nil {
			t.Errorf("pull %s with a dry-run record: %v", ref, err)
		}
	}
}

// Platform manifests have records of their own: one platform of an index
// is refused, the index and the other platform are served.
func TestQuarantinedPlatformOfIndex(t *testing.T) {
	h := newHarness(t, gate.Config{})
	amd, arm := randomImage(t), randomImage(t)
	linux := func(arch string) *v1.Platform { return &v1.Platform{OS: "linux", Architecture: arch} }
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: linux("amd64")}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: linux("arm64")}},
	)
	if err := remote.WriteIndex(h.ref(t, "demo/multi:v1"), idx); err != nil {
		t.Fatalf("push index through the gate: %v", err)
	}
	dArm, _ := arm.Digest()
	h.putRecord(t, h.gate, "demo/multi", dArm.String(), quarantined, enforce, "secret: private key")
	h.waitStatus(t, http.MethodGet, "/v2/demo/multi/manifests/"+dArm.String(), http.StatusForbidden)

	if _, err := remote.Index(h.ref(t, "demo/multi:v1")); err != nil {
		t.Errorf("the index itself: %v", err)
	}
	err := h.pull(t, "demo/multi:v1", remote.WithPlatform(*linux("arm64")))
	if terr := registryErr(t, err); terr.StatusCode != http.StatusForbidden || terr.Errors[0].Code != "DENIED" ||
		terr.Errors[0].Message != "quarantined by Customs: secret: private key" {
		t.Errorf("arm64: %v, want 403 DENIED", err)
	}
	if err := h.pull(t, "demo/multi:v1", remote.WithPlatform(*linux("amd64"))); err != nil {
		t.Errorf("amd64: %v", err)
	}
}

// Push events name the registry by the host the pusher used: a record under
// the upstream's name or any configured name blocks as well.
func TestRecordsUnderOtherRegistryNames(t *testing.T) {
	h := newHarness(t, gate.Config{})
	d := h.push(t, "demo/alt:v1", randomImage(t))
	h.putRecord(t, h.registry, "demo/alt", d.String(), quarantined, enforce, "pushed to the registry directly")
	h.waitStatus(t, http.MethodGet, "/v2/demo/alt/manifests/v1", http.StatusForbidden)

	h2 := newHarness(t, gate.Config{RegistryNames: []string{"registry.example:5000", "other.example"}})
	d2 := h2.push(t, "demo/alt:v1", randomImage(t))
	h2.putRecord(t, "other.example", "demo/alt", d2.String(), quarantined, enforce, "named other.example")
	h2.waitStatus(t, http.MethodGet, "/v2/demo/alt/manifests/v1", http.StatusForbidden)
	if _, _, body := h2.do(t, http.MethodGet, "/v2/demo/alt/manifests/v1"); body != deniedBody("quarantined by Customs: named other.example") {
		t.Errorf("body %q", body)
	}
	// A record of another repository or another registry blocks nothing.
	h2.putRecord(t, "elsewhere.example", "demo/alt2", d2.String(), quarantined, enforce, "not this registry")
	d3 := h2.push(t, "demo/alt2:v1", randomImage(t))
	h2.putRecord(t, "other.example", "demo/alt3", d3.String(), quarantined, enforce, "not this repository")
	h2.sync(t)
	if err := h2.pull(t, "demo/alt2:v1"); err != nil {
		t.Errorf("record of another registry blocked: %v", err)
	}
}

// With unscanned=deny a manifest is served only once a complete scan of it
// was stored; a failed scan is refused with its reason.
func TestUnscannedDeny(t *testing.T) {
	h := newHarness(t, gate.Config{Unscanned: gate.UnscannedDeny})
	img, other := randomImage(t), randomImage(t)
	d := h.push(t, "demo/new:v1", img)
	h.push(t, "demo/new:other", other)
	dOther, _ := other.Digest()

	for _, m := range []string{http.MethodGet, http.MethodHead} {
		st, hdr, body := h.do(t, m, "/v2/demo/new/manifests/v1")
		want := deniedBody("not yet scanned by Customs")
		if m == http.MethodHead {
			want = ""
		}
		if st != http.StatusForbidden || hdr.Get("Retry-After") != "10" || body != want {
			t.Errorf("%s before a verdict: %d Retry-After %q %q, want 403, 10, %q", m, st, hdr.Get("Retry-After"), body, want)
		}
	}
	if terr := registryErr(t, h.pull(t, "demo/new:v1")); terr.StatusCode != http.StatusForbidden || terr.Errors[0].Code != "DENIED" {
		t.Errorf("pull before a verdict: %v", terr)
	}

	h.putVerdict(t, d.String(), "failed", "", "pull timed out")
	st, hdr, body := h.do(t, http.MethodGet, "/v2/demo/new/manifests/v1")
	if st != http.StatusForbidden || body != deniedBody("Customs scan failed: pull timed out") || hdr.Get("Retry-After") != "" {
		t.Errorf("failed scan: %d Retry-After %q %q", st, hdr.Get("Retry-After"), body)
	}

	h.putVerdict(t, d.String(), "complete", "pass", "")
	for _, ref := range []string{"demo/new:v1", "demo/new@" + d.String()} {
		if err := h.pull(t, ref); err != nil {
			t.Errorf("pull %s after a complete scan: %v", ref, err)
		}
	}

	// A quarantine record wins over a complete scan.
	h.putVerdict(t, dOther.String(), "complete", "quarantine", "")
	h.putRecord(t, h.gate, "demo/new", dOther.String(), quarantined, enforce, "miner")
	h.waitStatus(t, http.MethodGet, "/v2/demo/new/manifests/other", http.StatusForbidden)
	if _, _, body := h.do(t, http.MethodGet, "/v2/demo/new/manifests/other"); body != deniedBody("quarantined by Customs: miner") {
		t.Errorf("quarantined and scanned: %q", body)
	}

	// NATS down: what is known to be scanned is still served (remembered);
	// what is not is refused with 503, never allowed; not ready.
	unknown := h.push(t, "demo/new:unknown", randomImage(t))
	h.nats.Shutdown()
	if err := h.pull(t, "demo/new:v1"); err != nil {
		t.Errorf("scanned image while NATS is down: %v", err)
	}
	st, hdr, body = h.do(t, http.MethodGet, "/v2/demo/new/manifests/"+unknown.String())
	if st != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(body, `"code":"UNAVAILABLE"`) {
		t.Errorf("unscanned image while NATS is down: %d Retry-After %q %s, want 503 UNAVAILABLE", st, hdr.Get("Retry-After"), body)
	}
	if st, _, _ := h.do(t, http.MethodGet, "/readyz"); st != http.StatusServiceUnavailable {
		t.Errorf("/readyz while NATS is down: %d", st)
	}
	h.nats.Restart()
	h.waitReady(t)
	h.waitStatus(t, http.MethodGet, "/v2/demo/new/manifests/"+unknown.String(), http.StatusForbidden)
}

// Until the records are read (here: NATS is down when the gate starts)
// manifests get 503 with Retry-After and blobs pass; once NATS is back the
// gate binds the buckets itself, reads the records and refuses.
func TestNotReadyUntilRecordsRead(t *testing.T) {
	cfg := gate.Config{RegistryNames: []string{"registry.test:5000"}}
	h := newHarness(t, cfg)
	img := randomImage(t)
	d := h.push(t, "demo/early:v1", img)
	h.putRecord(t, "registry.test:5000", "demo/early", d.String(), quarantined, enforce, "bad")
	h.nats.Shutdown()
	h.startGate(t, cfg) // a second gate, started while NATS is down

	for _, m := range []string{http.MethodGet, http.MethodHead} {
		st, hdr, _ := h.do(t, m, "/v2/demo/early/manifests/v1")
		if st != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
			t.Errorf("%s before the records are read: %d Retry-After %q, want 503 with Retry-After", m, st, hdr.Get("Retry-After"))
		}
	}
	if st, _, _ := h.do(t, http.MethodGet, "/readyz"); st != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the records are read: %d", st)
	}
	if st, _, _ := h.do(t, http.MethodGet, "/v2/"); st != http.StatusOK {
		t.Errorf("GET /v2/ before the records are read: %d", st)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, _ := layers[0].Digest()
	if st, _, _ := h.do(t, http.MethodGet, "/v2/demo/early/blobs/"+ld.String()); st != http.StatusOK {
		t.Errorf("GET blob before the records are read: %d", st)
	}

	h.nats.Restart()
	h.waitReady(t)
	st, _, body := h.do(t, http.MethodGet, "/v2/demo/early/manifests/v1")
	if st != http.StatusForbidden || body != deniedBody("quarantined by Customs: bad") {
		t.Errorf("once ready: %d %q, want the record read at start to refuse", st, body)
	}
}
