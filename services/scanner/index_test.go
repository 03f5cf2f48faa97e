package scanner_test

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/services/scanner"
)

func (e *env) pushIndex(t *testing.T, repo string, imgs map[string]v1.Image) string {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	for arch, img := range imgs {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: arch},
		}})
	}
	ref, err := name.ParseReference(e.host+"/"+repo+":latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// reportsByDigest waits for n report events and decodes them.
func (e *env) reportsByDigest(t *testing.T, n int) map[string]*report.Report {
	t.Helper()
	out := map[string]*report.Report{}
	for _, m := range queuetest.WaitMsgs(t, e.js, queue.ReportsStream, n) {
		_, r := decodeReport(t, m.Data)
		out[r.Artifact.Digest] = r
	}
	return out
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// One hostile platform must not hide the good one: each platform's report
// is published, and the index's lists the failed one with its reason.
func TestIndexWithOneBadPlatformReportsTheGoodOne(t *testing.T) {
	e := start(t, scanner.Config{})
	good := scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...))
	bad := scantest.Image(t, scantest.Layer(t, scantest.Reg("../../etc/passwd", "root:x:0:0::/root:/bin/sh\n")))
	digest := e.pushIndex(t, "team/multi", map[string]v1.Image{"amd64": good, "arm64": bad})
	e.enqueue(t, "team/multi", digest)

	got := e.reportsByDigest(t, 3)
	g, b, idx := got[digestOf(t, good)], got[digestOf(t, bad)], got[digest]
	if g == nil || b == nil || idx == nil {
		t.Fatalf("reports for %v, want both platforms and the index", got)
	}
	if g.Status != report.StatusComplete || len(g.Packages) == 0 {
		t.Errorf("good platform: %s %d packages", g.Status, len(g.Packages))
	}
	if b.Status != report.StatusFailed || !strings.Contains(b.Error, "escapes") || b.Verdict != report.VerdictQuarantine {
		t.Errorf("bad platform: %s %s %q", b.Status, b.Verdict, b.Error)
	}
	if idx.Status != report.StatusComplete || idx.Verdict != report.VerdictQuarantine || len(idx.Manifests) != 2 {
		t.Fatalf("index: %s %s %+v", idx.Status, idx.Verdict, idx.Manifests)
	}
	for _, m := range idx.Manifests {
		if m.Digest == b.Artifact.Digest && (m.Status != report.StatusFailed || !strings.Contains(m.Error, "escapes")) {
			t.Errorf("index lists the bad platform as %+v", m)
		}
		if m.Digest == g.Artifact.Digest && m.Status != "" {
			t.Errorf("index lists the good platform as %+v", m)
		}
	}
}

// Per-image limits alone let every platform of an index spend a full
// image's budget: the job's total is bounded too.
func TestIndexPlatformsTogetherAreBoundedByTheJobLimit(t *testing.T) {
	blob := strings.Repeat("customs", 200_000) // 1.4 MB per image
	one := scantest.Image(t, scantest.Layer(t, scantest.Reg("data/a.bin", blob)))
	two := scantest.Image(t, scantest.Layer(t, scantest.Reg("data/b.bin", blob+"x")))
	e := start(t, scanner.Config{Limits: scanner.LimitsConfig{
		MaxUncompressedBytes: 2 << 20, MaxJobUncompressedBytes: 2 << 20,
	}})
	digest := e.pushIndex(t, "team/big", map[string]v1.Image{"amd64": one, "arm64": two})
	e.enqueue(t, "team/big", digest)

	got := e.reportsByDigest(t, 3)
	idx := got[digest]
	if idx == nil {
		t.Fatalf("no index report among %d", len(got))
	}
	var failed int
	for _, m := range idx.Manifests {
		if m.Status == report.StatusFailed {
			failed++
			if !strings.Contains(m.Error, "job's images together exceed") {
				t.Errorf("platform failed with %q, want the job limit", m.Error)
			}
		}
	}
	// Each image alone fits its own limit; together they do not.
	if failed != 1 || idx.Verdict != report.VerdictQuarantine {
		t.Fatalf("index verdict %s with %d failed platforms: %+v", idx.Verdict, failed, idx.Manifests)
	}
}

// A child manifest over the manifest size limit is refused like a top-level one.
func TestIndexChildManifestSizeIsLimited(t *testing.T) {
	small := scantest.Image(t, scantest.Layer(t, scantest.Reg("etc/a", "a")))
	var layers []v1.Layer
	for i := range 40 {
		layers = append(layers, scantest.Layer(t, scantest.Reg("etc/f", strings.Repeat("x", i+1))))
	}
	big := scantest.Image(t, layers...) // a manifest of ~8 KB
	e := start(t, scanner.Config{Limits: scanner.LimitsConfig{MaxManifestBytes: 4096}})
	digest := e.pushIndex(t, "team/m", map[string]v1.Image{"amd64": small, "arm64": big})
	e.enqueue(t, "team/m", digest)
	got := e.reportsByDigest(t, 3)
	b := got[digestOf(t, big)]
	if b == nil || b.Status != report.StatusFailed || !strings.Contains(b.Error, "more than the limit of 4096") {
		t.Fatalf("big child manifest: %+v", b)
	}
	if s := got[digestOf(t, small)]; s == nil || s.Status != report.StatusComplete {
		t.Fatalf("small child: %+v", s)
	}
}
