package customs_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer/malware"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
)

func saveImage(t *testing.T, img v1.Image, file string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), file)
	if err := tarball.WriteToFile(p, name.MustParseReference("example.com/team/app:1").(name.Tag), img); err != nil {
		t.Fatal(err)
	}
	return p
}

// exitCode runs customs scan and returns its exit code and stdout.
func exitCode(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	out, errOut, err := runScan(t, args...)
	if err == nil {
		return 0, out, errOut
	}
	var ee *exec.ExitError
	if !asExit(err, &ee) {
		t.Fatalf("customs scan %v: %v", args, err)
	}
	return ee.ExitCode(), out, errOut
}

// customs scan --fail-on in CI: the output is written, then the command
// exits with --exit-code (default 1) when the verdict reaches the given
// one or a vulnerability (not an ignored one) or finding reaches the
// given severity.
func TestScanFailOn(t *testing.T) {
	db := writeDB(t, vulndbtest.Build(t, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "osv/other/GHSA-35jh-r3h4-6jhm.json"))
	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	// lodash 4.17.20: GHSA-35jh-r3h4-6jhm, HIGH (verdict warn).
	vulnerable := saveImage(t, scantest.Image(t, base, scantest.Layer(t,
		scantest.Reg("srv/app/node_modules/lodash/package.json", `{"name": "lodash", "version": "4.17.20"}`))), "vulnerable.tar")
	infected := saveImage(t, scantest.Image(t, base, scantest.Layer(t, scantest.Reg("opt/eicar.com", string(malware.EICAR())))), "infected.tar")
	clean := saveImage(t, scantest.Image(t, base), "clean.tar")
	vex := filepath.Join(t.TempDir(), "vex.json")
	if err := os.WriteFile(vex, []byte(`{
  "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://vex.example.com/1", "author": "test",
  "timestamp": "2026-10-01T00:00:00Z", "version": 1,
  "statements": [{"vulnerability": {"name": "CVE-2021-23337"}, "products": [{"@id": "example.com/team/app"}],
    "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"}]
}`), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"--input", vulnerable}, 0}, // no --fail-on: never fails
		{[]string{"--input", vulnerable, "--fail-on", "high"}, 1},
		{[]string{"--input", vulnerable, "--fail-on", "HIGH", "--exit-code", "4"}, 4},
		{[]string{"--input", vulnerable, "--fail-on", "critical"}, 0},
		{[]string{"--input", vulnerable, "--fail-on", "warn"}, 1},
		{[]string{"--input", vulnerable, "--fail-on", "quarantine"}, 0},
		{[]string{"--input", vulnerable, "--fail-on", "high", "--ignore", vex}, 0}, // ignored: not counted
		{[]string{"--input", infected, "--fail-on", "quarantine", "--exit-code", "3"}, 3},
		{[]string{"--input", infected, "--fail-on", "warn", "--format", "sarif"}, 1},
		{[]string{"--input", clean, "--fail-on", "warn"}, 0},
		{[]string{"--input", clean, "--fail-on", "high"}, 0},
		{[]string{"--input", clean, "--fail-on", "medium"}, 1}, // runs as root: a MEDIUM finding
		// Usage errors: 2.
		{[]string{"--input", clean, "--fail-on", "severe"}, 2},
		{[]string{"--input", clean, "--exit-code", "3"}, 2},
		{[]string{"--input", clean, "--fail-on", "warn", "--exit-code", "0"}, 2},
		{[]string{"--input", clean, "--format", "pdf"}, 2},
	} {
		args := append([]string{"--db", db}, c.args...)
		code, out, errOut := exitCode(t, args...)
		if code != c.code {
			t.Errorf("customs scan %s: exit %d, want %d; stderr %s", strings.Join(c.args, " "), code, c.code, errOut)
			continue
		}
		if c.code == 2 {
			continue
		}
		// The output is complete whatever the exit code.
		if !json.Valid([]byte(out)) {
			t.Errorf("customs scan %s: stdout is not JSON:\n%.300s", strings.Join(c.args, " "), out)
		}
		if c.code != 0 && !strings.Contains(errOut, "--fail-on") {
			t.Errorf("customs scan %s: stderr does not say why: %s", strings.Join(c.args, " "), errOut)
		}
	}
}

// Every --format writes its document; the single-image formats ask for
// --platform on an index of several platforms.
func TestScanFormats(t *testing.T) {
	img := scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...))
	saved := saveImage(t, img, "debian.tar")
	for format, want := range map[string]string{
		"json":      `"schema_version": "v1"`,
		"table":     "verdict:",
		"cyclonedx": `"specVersion": "1.6"`,
		"spdx-json": `"spdxVersion": "SPDX-2.3"`,
		"sarif":     `"version": "2.1.0"`,
		"openvex":   `"@context": "https://openvex.dev/ns/v0.2.0"`,
	} {
		out, errOut, err := runScan(t, "--format", format, "--input", saved)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("--format %s: %v %s\n%.300s", format, err, errOut, out)
		}
	}

	// A two-platform OCI layout.
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		i := scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...), scantest.Layer(t, scantest.Reg("etc/arch", arch)))
		cfg, _ := i.ConfigFile()
		cfg = cfg.DeepCopy()
		cfg.Architecture = arch
		i, _ = mutate.ConfigFile(i, cfg)
		adds = append(adds, mutate.IndexAddendum{Add: i, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	dir := t.TempDir()
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(mutate.AppendManifests(empty.Index, adds...)); err != nil {
		t.Fatal(err)
	}
	oci := filepath.Join(dir, "index.tar")
	tarDir(t, filepath.Join(dir, "layout"), oci)
	code, _, errOut := exitCode(t, "--format", "cyclonedx", "--input", oci)
	if code != 2 || !strings.Contains(errOut, "--platform") || !strings.Contains(errOut, "linux/arm64") {
		t.Errorf("cyclonedx of an index: exit %d, %s", code, errOut)
	}
	out, errOut, err := runScan(t, "--format", "cyclonedx", "--platform", "linux/arm64", "--input", oci)
	if err != nil || !strings.Contains(out, "arch=arm64") {
		t.Errorf("cyclonedx --platform linux/arm64: %v %s\n%.300s", err, errOut, out)
	}
	out, _, err = runScan(t, "--platform", "linux/amd64", "--input", oci)
	var r report.Report
	if err != nil || json.Unmarshal([]byte(out), &r) != nil || r.Artifact.Platform != "linux/amd64" {
		t.Errorf("json --platform linux/amd64: %v\n%.300s", err, out)
	}
	if code, _, errOut := exitCode(t, "--platform", "linux/s390x", "--input", oci); code != 2 || !strings.Contains(errOut, "linux/amd64") {
		t.Errorf("unknown platform: exit %d %s", code, errOut)
	}
}
