package formats_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/openvex/go-vex/pkg/vex"
	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
	"github.com/santhosh-tekuri/jsonschema/v6"
	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/customs-scan/customs/pkg/formats"
	"github.com/customs-scan/customs/pkg/ignore"
	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer/malware"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
)

var update = flag.Bool("update", false, "rewrite testdata/<case>/want.* from the current encoders")

// extensions of the golden files, per format.
var extensions = map[string]string{
	formats.JSON:      "json",
	formats.Table:     "txt",
	formats.CycloneDX: "cdx.json",
	formats.SPDXJSON:  "spdx.json",
	formats.SARIF:     "sarif.json",
	formats.OpenVEX:   "openvex.json",
}

// clock is the fixed time of every test scan and match.
var clock = time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC)

// plantedSecret is an AWS key pair in AWS's format, derived (not written
// here) so that no scanner of this repository flags the test source, and
// fixed so the golden files are.
func plantedSecret() (keyID, secret string) {
	id := sha256.Sum256([]byte("customs formats test: key id"))
	sec := sha256.Sum256([]byte("customs formats test: secret"))
	sec2 := sha256.Sum256(sec[:])
	keyID = "AKIA" + base32.StdEncoding.EncodeToString(id[:])[:16]
	secret = base64.StdEncoding.EncodeToString(append(sec[:], sec2[:]...))[:40]
	return keyID, secret
}

func testDB(t testing.TB) *vulndb.DB {
	return vulndbtest.Build(t, clock.Add(-24*time.Hour),
		"osv/other/DEBIAN-CVE-2024-0727.json", "osv/other/DSA-5532-1.json",
		"osv/go/GO-2024-2687.json", "osv/other/GHSA-35jh-r3h4-6jhm.json", "osv/other/GHSA-p6mc-m468-83gw.json")
}

func engineOptions(t testing.TB, db *vulndb.DB) inspect.Options {
	t.Helper()
	e, err := inspect.NewEngine(inspect.EngineConfig{IgnoreFiles: []string{"testdata/ignore.openvex.json"}}, scan.WithLimits(scan.DefaultLimits()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	opts := e.Options()
	opts.VulnDB = func() *vulndb.DB { return db }
	opts.Now = func() time.Time { return clock }
	return opts
}

var artifact = report.Artifact{Registry: "registry.example.com", Repository: "team/app", Tags: []string{"1.0"}}

// debianThreats is Debian 12 with an old libssl3 (two advisories, one
// ignored by testdata/ignore.openvex.json), a Go binary (its stdlib
// pinned to 1.22.1: one advisory), lodash 4.17.20 (one advisory with a
// CVSS vector), the EICAR file, a planted AWS key, run as root.
func debianThreats(t *testing.T) *report.Report {
	keyID, secret := plantedSecret()
	var rootfs []scantest.File
	for _, f := range scantest.DebianRootfs(t) {
		if f.Path == scantest.DpkgStatusPath {
			status := scantest.DebianStatus(t, "base-files", "bash", "libc6", "libssl3")
			f = scantest.Reg(scantest.DpkgStatusPath, strings.ReplaceAll(status, scantest.DebianVersion("libssl3"), "3.0.11-1~deb12u1"))
		}
		rootfs = append(rootfs, f)
	}
	img := scantest.Image(t,
		scantest.Layer(t, rootfs...),
		scantest.GoBinaryLayer(t),
		scantest.Layer(t,
			scantest.Reg("srv/app/node_modules/lodash/package.json", `{"name": "lodash", "version": "4.17.20", "license": "MIT"}`),
			scantest.Reg("opt/app/eicar.com", string(malware.EICAR())),
			scantest.Reg("app/.env", "AWS_ACCESS_KEY_ID="+keyID+"\nAWS_SECRET_ACCESS_KEY="+secret+"\n"),
		))
	db := testDB(t)
	opts := engineOptions(t, db)
	art := artifact
	d, _ := img.Digest()
	art.Digest = d.String()
	r, err := inspect.Image(context.Background(), art, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The Go binary is built by the test's toolchain: pin what depends on
	// it (its stdlib version; digests below).
	for i, p := range r.Packages {
		if p.Name == "stdlib" && p.Ecosystem == "Go" {
			r.Packages[i].Version, r.Packages[i].PURL = "1.22.1", "pkg:golang/stdlib@v1.22.1"
		}
	}
	if _, changed := opts.Rules.Rematch(r, db); !changed {
		t.Fatal("re-match did nothing")
	}
	stabilize(r, "debian-threats")
	return r
}

// distrolessClean has nothing to report: an empty SBOM's worth of edge cases.
func distrolessClean(t *testing.T) *report.Report {
	img := scantest.Image(t, scantest.Layer(t, scantest.DistrolessRootfs(t)...))
	opts := engineOptions(t, testDB(t))
	art := artifact
	art.Repository = "team/static"
	d, _ := img.Digest()
	art.Digest = d.String()
	r, err := inspect.Image(context.Background(), art, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	stabilize(r, "distroless-clean")
	return r
}

// index is the index report of a two-platform image.
func index(t *testing.T) *report.Report {
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img := scantest.Image(t, scantest.Layer(t, scantest.DistrolessRootfs(t)...), scantest.Layer(t, scantest.Reg("etc/arch", arch)))
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cfg = cfg.DeepCopy()
		cfg.Architecture = arch
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	opts := engineOptions(t, testDB(t))
	art := artifact
	art.Repository = "team/multi"
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	art.Digest = d.String()
	rs, err := inspect.Index(context.Background(), art, idx, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := rs[len(rs)-1]
	if len(r.Manifests) != 2 {
		t.Fatalf("index report: %+v", r)
	}
	stabilize(r, "index")
	return r
}

func fakeDigest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// stabilize replaces what depends on the toolchain or the build (the
// scanner version, the digests and sizes the Go binary changes) by fixed
// stand-ins, consistently across the report.
func stabilize(r *report.Report, name string) {
	r.Scanner.Version = "test"
	layers := map[string]string{}
	for i := range r.Layers {
		l := &r.Layers[i]
		layers[l.Digest] = fakeDigest(fmt.Sprintf("%s layer %d", name, i))
		l.Digest, l.DiffID = layers[l.Digest], fakeDigest(fmt.Sprintf("%s diff_id %d", name, i))
		l.Size = int64(1000 * (i + 1))
	}
	r.Artifact.Digest = fakeDigest(name)
	for i := range r.Packages {
		r.Packages[i].Layer = layers[r.Packages[i].Layer]
	}
	for i := range r.Vulnerabilities {
		r.Vulnerabilities[i].Layer = layers[r.Vulnerabilities[i].Layer]
	}
	for i := range r.IgnoredVulnerabilities {
		r.IgnoredVulnerabilities[i].Layer = layers[r.IgnoredVulnerabilities[i].Layer]
	}
	for i := range r.Findings {
		r.Findings[i].Layer = layers[r.Findings[i].Layer]
	}
	for i := range r.Manifests {
		r.Manifests[i].Digest = fakeDigest(fmt.Sprintf("%s manifest %d", name, i))
	}
}

var cases = []struct {
	name  string
	build func(t *testing.T) *report.Report
}{
	{"debian-threats", debianThreats},
	{"distroless-clean", distrolessClean},
	{"index", index},
}

func TestGolden(t *testing.T) {
	keyID, secret := plantedSecret()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.build(t)
			for _, name := range formats.Names() {
				enc, _, ok := formats.Lookup(name)
				if !ok {
					t.Fatalf("Lookup(%q) failed", name)
				}
				var buf bytes.Buffer
				if err := enc(&buf, r, formats.Options{Packages: true}); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				out := buf.Bytes()
				golden(t, filepath.Join("testdata", tc.name, "want."+extensions[name]), out)
				// No part of the planted secret, in any format (the JSON
				// report keeps only a redacted excerpt).
				for _, s := range []string{secret, secret[:20], secret[20:], keyID} {
					if bytes.Contains(out, []byte(s)) {
						t.Errorf("%s output holds (part of) the planted secret", name)
					}
				}
				// Encoding is deterministic.
				var again bytes.Buffer
				if err := enc(&again, r, formats.Options{Packages: true}); err != nil || !bytes.Equal(again.Bytes(), out) {
					t.Errorf("%s: a second encoding differs (%v)", name, err)
				}
				readBack(t, name, r, out)
			}
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the encoder's output (go test -update rewrites it); got:\n%s", path, got)
	}
}

// readBack validates out against the format's official schema and reads
// it with the format's own library.
func readBack(t *testing.T, name string, r *report.Report, out []byte) {
	t.Helper()
	switch name {
	case formats.JSON:
		var back report.Report
		if err := json.Unmarshal(out, &back); err != nil || back.Artifact.Digest != r.Artifact.Digest || len(back.Vulnerabilities) != len(r.Vulnerabilities) {
			t.Errorf("json: %v", err)
		}
	case formats.CycloneDX:
		validate(t, "cyclonedx", out)
		var bom cdx.BOM
		if err := cdx.NewBOMDecoder(bytes.NewReader(out), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
			t.Fatalf("cyclonedx decode: %v", err)
		}
		checkCycloneDX(t, r, &bom)
	case formats.SPDXJSON:
		validate(t, "spdx", out)
		doc, err := spdxjson.Read(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("spdx read: %v", err)
		}
		want := 1 + len(r.Packages) + len(r.Manifests)
		if r.OS.ID != "" {
			want++
		}
		if doc.SPDXVersion != "SPDX-2.3" || len(doc.Packages) != want || len(doc.Relationships) != want {
			t.Errorf("spdx: version %s, %d packages, %d relationships, want %d", doc.SPDXVersion, len(doc.Packages), len(doc.Relationships), want)
		}
		for _, p := range doc.Packages[1:] {
			if len(p.PackageExternalReferences) == 0 && p.PrimaryPackagePurpose != "OPERATING_SYSTEM" {
				t.Errorf("spdx: package %s has no purl", p.PackageName)
			}
		}
	case formats.SARIF:
		validate(t, "sarif", out)
		log, err := sarif.FromBytes(out)
		if err != nil {
			t.Fatalf("sarif read: %v", err)
		}
		checkSARIF(t, r, log)
	case formats.OpenVEX:
		doc, err := vex.Parse(out)
		if err != nil {
			t.Fatalf("openvex parse: %v", err)
		}
		if len(doc.Statements) != len(r.IgnoredVulnerabilities) {
			t.Errorf("openvex: %d statements for %d ignored", len(doc.Statements), len(r.IgnoredVulnerabilities))
		}
		// Customs reads its own export as ignore rules: the same
		// vulnerabilities are ignored again.
		path := filepath.Join(t.TempDir(), "export.openvex.json")
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		rules, err := ignore.Load(path)
		if err != nil {
			t.Fatalf("openvex export as ignore rules: %v", err)
		}
		var all []report.Vulnerability
		for _, iv := range r.IgnoredVulnerabilities {
			all = append(all, iv.Vulnerability)
		}
		kept, ignored := rules.Apply(r.Artifact, append(all, r.Vulnerabilities...), clock)
		if len(ignored) != len(r.IgnoredVulnerabilities) || len(kept) != len(r.Vulnerabilities) {
			t.Errorf("openvex round trip: %d ignored, %d kept; want %d, %d", len(ignored), len(kept), len(r.IgnoredVulnerabilities), len(r.Vulnerabilities))
		}
	}
}

func checkCycloneDX(t *testing.T, r *report.Report, bom *cdx.BOM) {
	t.Helper()
	if bom.SpecVersion != cdx.SpecVersion1_6 || bom.Metadata == nil || bom.Metadata.Component == nil ||
		!strings.HasPrefix(bom.Metadata.Component.PackageURL, "pkg:oci/") {
		t.Fatalf("cyclonedx: spec %v metadata %+v", bom.SpecVersion, bom.Metadata)
	}
	refs := map[string]bool{bom.Metadata.Component.BOMRef: true}
	if bom.Components != nil {
		for _, c := range *bom.Components {
			if refs[c.BOMRef] {
				t.Errorf("cyclonedx: bom-ref %s twice", c.BOMRef)
			}
			refs[c.BOMRef] = true
		}
	}
	nv := 0
	if bom.Vulnerabilities != nil {
		for _, v := range *bom.Vulnerabilities {
			nv++
			if v.Affects == nil || len(*v.Affects) == 0 {
				t.Errorf("cyclonedx: %s affects nothing", v.ID)
				continue
			}
			for _, a := range *v.Affects {
				if !refs[a.Ref] {
					t.Errorf("cyclonedx: %s affects unknown ref %s", v.ID, a.Ref)
				}
			}
		}
	}
	if nv != len(r.Vulnerabilities)+len(r.IgnoredVulnerabilities) {
		t.Errorf("cyclonedx: %d vulnerabilities", nv)
	}
	if bom.Dependencies != nil {
		for _, d := range *bom.Dependencies {
			if !refs[d.Ref] {
				t.Errorf("cyclonedx: dependency of unknown ref %s", d.Ref)
			}
			for _, on := range *d.Dependencies {
				if !refs[on] {
					t.Errorf("cyclonedx: dependency on unknown ref %s", on)
				}
			}
		}
	}
}

func checkSARIF(t *testing.T, r *report.Report, log *sarif.Report) {
	t.Helper()
	if log.Version != "2.1.0" || len(log.Runs) != 1 {
		t.Fatalf("sarif: version %s, %d runs", log.Version, len(log.Runs))
	}
	run := log.Runs[0]
	want := len(r.Vulnerabilities) + len(r.IgnoredVulnerabilities) + len(r.Findings)
	if len(run.Results) != want {
		t.Errorf("sarif: %d results, want %d", len(run.Results), want)
	}
	rules := run.Tool.Driver.Rules
	for _, res := range run.Results {
		if res.RuleIndex < 0 || res.RuleIndex >= len(rules) || *rules[res.RuleIndex].ID != *res.RuleID {
			t.Errorf("sarif: result of %s has rule index %d", *res.RuleID, res.RuleIndex)
		}
		if res.PartialFingerprints["customs/v1"] == "" || len(res.Locations) != 1 || res.Locations[0].PhysicalLocation.ArtifactLocation.URI == nil {
			t.Errorf("sarif: result of %s: fingerprints %v locations %d", *res.RuleID, res.PartialFingerprints, len(res.Locations))
		}
	}
	for _, rule := range rules {
		sev, _ := rule.Properties.Properties["security-severity"].(string)
		if !slices.Contains([]string{"", "9.5", "8.0", "5.5", "2.0"}, sev) {
			t.Errorf("sarif: rule %s security-severity %q", *rule.ID, sev)
		}
	}
}

var schemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	dir, err := schemaDir()
	if err != nil {
		return nil, err
	}
	// The schemas refer to each other by these ids: every one is loaded
	// from the local copy, nothing from the network.
	files := map[string]string{
		"http://cyclonedx.org/schema/bom-1.6.schema.json":                                            "cyclonedx-bom-1.6.schema.json",
		"http://cyclonedx.org/schema/spdx.schema.json":                                               "cyclonedx-spdx.schema.json",
		"http://cyclonedx.org/schema/jsf-0.82.schema.json":                                           "cyclonedx-jsf-0.82.schema.json",
		"http://spdx.org/rdf/terms/2.3":                                                              "spdx-2.3.schema.json",
		"https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json": "sarif-schema-2.1.0.json",
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for id, file := range files {
		f, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if err := c.AddResource(id, doc); err != nil {
			return nil, err
		}
	}
	out := map[string]*jsonschema.Schema{}
	for name, id := range map[string]string{
		"cyclonedx": "http://cyclonedx.org/schema/bom-1.6.schema.json",
		"spdx":      "http://spdx.org/rdf/terms/2.3",
		"sarif":     "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
	} {
		s, err := c.Compile(id)
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", name, err)
		}
		out[name] = s
	}
	return out, nil
})

// schemaDir finds shared/fixtures/schemas: beside the repository (the
// nearest ancestor holding go.work), or inside it in some checkouts.
func schemaDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; filepath.Dir(dir) != dir; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err != nil {
			continue
		}
		for _, c := range []string{filepath.Join(dir, "..", "shared", "fixtures", "schemas"), filepath.Join(dir, "shared", "fixtures", "schemas")} {
			if fi, err := os.Stat(c); err == nil && fi.IsDir() {
				return c, nil
			}
		}
		break
	}
	return "", fmt.Errorf("no shared/fixtures/schemas beside or inside the repository above %s: %w", wd, os.ErrNotExist)
}

// validate checks out against an official schema (shared/fixtures/schemas,
// beside the repository).
func validate(t *testing.T, schema string, out []byte) {
	t.Helper()
	all, err := schemas()
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("official schemas not found (../shared/fixtures/schemas beside the repository): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := all[schema].Validate(inst); err != nil {
		t.Errorf("%s output is not valid against the official schema: %v", schema, err)
	}
}
