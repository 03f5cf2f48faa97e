package ignore

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/report"
)

const (
	digestV1 = "sha256:58a9dfbd5f30947506cb84c6f274080e2669b1afe7cb00d0f2c73d952aae1c85"
	digestV2 = "sha256:60adeb44bbc9eb4fac944bfe0c87d6938c75757264c69ae748765ed3ba257b2a"
	digestB  = "sha256:d9298a10d1b0735837dc4bd85dac641b0f3cef27a47e5d53a54f2f3f5b2fcffa"

	vexApp    = "testdata/vex/app.openvex.json"
	vexUpdate = "testdata/vex/app-update.openvex.json"
	yamlTeamA = "testdata/ignore/team-a.yaml"
)

var (
	appV1 = report.Artifact{Registry: "registry.example.com", Repository: "team-a/app", Digest: digestV1}
	appV2 = report.Artifact{Registry: "registry.example.com", Repository: "team-a/app", Digest: digestV2}
	teamB = report.Artifact{Registry: "registry.example.com", Repository: "team-b/app", Digest: digestB}

	// now is before every expiry in team-a.yaml except CVE-2022-1304's.
	now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
)

func deb(id, name, version string, aliases ...string) report.Vulnerability {
	return report.Vulnerability{
		ID: id, Aliases: aliases, Package: name, Version: version, Severity: report.SeverityHigh,
		Ecosystem: "Debian:12",
		PURL:      fmt.Sprintf("pkg:deb/debian/%s@%s?arch=amd64&distro=debian-12", name, version),
	}
}

func golang(id, module, version string, aliases ...string) report.Vulnerability {
	return report.Vulnerability{
		ID: id, Aliases: aliases, Package: module, Version: version, Severity: report.SeverityHigh,
		Ecosystem: "Go", PURL: fmt.Sprintf("pkg:golang/%s@%s", module, version),
	}
}

func pypi(id, name, version string) report.Vulnerability {
	return report.Vulnerability{
		ID: id, Package: name, Version: version, Severity: report.SeverityMedium,
		Ecosystem: "PyPI", PURL: fmt.Sprintf("pkg:pypi/%s@%s", name, version),
	}
}

func mustLoad(t *testing.T, paths ...string) *Rules {
	t.Helper()
	r, err := Load(paths...)
	if err != nil {
		t.Fatalf("Load(%v): %v", paths, err)
	}
	return r
}

func TestApply(t *testing.T) {
	type want struct {
		status, justification, reason, source string // status "" = kept
	}
	tests := []struct {
		name  string
		paths []string
		art   report.Artifact
		vuln  report.Vulnerability
		now   time.Time
		want  want
	}{
		// OpenVEX
		{
			name: "oci purl digest and subcomponent purl match", paths: []string{"testdata/vex"},
			art: appV1, vuln: deb("DEBIAN-CVE-2023-0464", "libssl3", "3.0.11-1~deb12u2", "CVE-2023-0464"),
			want: want{"not_affected", "vulnerable_code_not_in_execute_path", "The app never enables X.509 policy checking (-policy / X509_V_FLAG_POLICY_CHECK).", vexApp},
		},
		{
			name: "subcomponent names another package", paths: []string{"testdata/vex"},
			art: appV1, vuln: deb("CVE-2023-0464", "libcurl4", "7.88.1-10+deb12u5"),
		},
		{
			name: "oci purl digest mismatch", paths: []string{"testdata/vex"},
			art: appV2, vuln: deb("CVE-2023-0464", "libssl3", "3.0.11-1~deb12u2"),
		},
		{
			name: "product @id digest, matched through the vulnerability's alias", paths: []string{"testdata/vex"},
			art: appV1, vuln: golang("GO-2024-2887", "stdlib", "v1.22.3", "CVE-2024-24790"),
			want: want{"fixed", "", "Rebuilt with Go 1.22.4; the scanner reads the module's go.mod toolchain line.", vexApp},
		},
		{
			name: "product @id digest mismatch", paths: []string{"testdata/vex"},
			art: appV2, vuln: golang("GO-2024-2887", "stdlib", "v1.22.3", "CVE-2024-24790"),
		},
		{
			name: "matched through the statement's alias, product by hash, versioned subcomponent", paths: []string{"testdata/vex"},
			art: appV1, vuln: golang("CVE-2023-45288", "golang.org/x/net", "v0.17.0"),
			want: want{"not_affected", "vulnerable_code_not_in_execute_path", "The app serves HTTP/1.1 only; the HTTP/2 server is never started.", vexApp},
		},
		{
			name: "versioned subcomponent, other version", paths: []string{"testdata/vex"},
			art: appV1, vuln: golang("CVE-2023-45288", "golang.org/x/net", "v0.18.0"),
		},
		{
			name: "latest statement wins: affected after not_affected", paths: []string{"testdata/vex"},
			art: appV1, vuln: deb("CVE-2023-5678", "libssl3", "3.0.11-1~deb12u2"),
		},
		{
			name: "under_investigation is kept", paths: []string{vexApp},
			art: appV1, vuln: deb("CVE-2024-2511", "libssl3", "3.0.11-1~deb12u2"),
		},
		{
			name: "later document supersedes under_investigation (image reference by digest)", paths: []string{vexApp, vexUpdate},
			art: appV1, vuln: deb("CVE-2024-2511", "libssl3", "3.0.11-1~deb12u2"),
			want: want{"not_affected", "vulnerable_code_not_in_execute_path", "TLS session resumption is disabled (SSL_OP_NO_TICKET, no session cache).", vexUpdate},
		},
		{
			name: "latest wins whatever the load order", paths: []string{vexUpdate, vexApp},
			art: appV1, vuln: deb("CVE-2024-2511", "libssl3", "3.0.11-1~deb12u2"),
			want: want{"not_affected", "vulnerable_code_not_in_execute_path", "TLS session resumption is disabled (SSL_OP_NO_TICKET, no session cache).", vexUpdate},
		},
		{
			name: "repository-wide product, any digest", paths: []string{"testdata/vex"},
			art: appV2, vuln: deb("CVE-2024-6119", "libssl3", "3.0.13-1~deb12u1"),
			want: want{"not_affected", "vulnerable_code_not_in_execute_path", "No image of this repository performs X.509 name checks on otherName subject alternative names.", vexApp},
		},
		{
			name: "repository-wide product, other repository", paths: []string{"testdata/vex"},
			art: teamB, vuln: deb("CVE-2024-6119", "libssl3", "3.0.13-1~deb12u1"),
		},
		// Ignore file
		{
			name: "ignore entry matched through alias and package", paths: []string{yamlTeamA},
			art: teamB, vuln: deb("DEBIAN-CVE-2023-2650", "libssl3", "3.0.9-1", "CVE-2023-2650"),
			want: want{"not_affected", "", "OBJ_obj2txt is only reached with trusted certificates", yamlTeamA},
		},
		{
			name: "ignore entry, other package", paths: []string{yamlTeamA},
			art: teamB, vuln: deb("DEBIAN-CVE-2023-2650", "openssl", "3.0.9-1", "CVE-2023-2650"),
		},
		{
			name: "ignore entry applies through its expiry date", paths: []string{yamlTeamA},
			now: time.Date(2027, 1, 1, 23, 59, 0, 0, time.UTC),
			art: teamB, vuln: deb("CVE-2023-2650", "libssl3", "3.0.9-1"),
			want: want{"not_affected", "", "OBJ_obj2txt is only reached with trusted certificates", yamlTeamA},
		},
		{
			name: "ignore entry expired the day after", paths: []string{yamlTeamA},
			now: time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC),
			art: teamB, vuln: deb("CVE-2023-2650", "libssl3", "3.0.9-1"),
		},
		{
			name: "expired ignore entry", paths: []string{yamlTeamA},
			art: appV1, vuln: deb("CVE-2022-1304", "e2fsprogs", "1.47.0-2"),
		},
		{
			name: "purl and repository glob match", paths: []string{yamlTeamA},
			art: appV1, vuln: pypi("CVE-2022-40897", "setuptools", "65.5.0"),
			want: want{"not_affected", "", "setuptools is a build dependency, never imported at runtime", yamlTeamA},
		},
		{
			name: "repository glob, other team", paths: []string{yamlTeamA},
			art: teamB, vuln: pypi("CVE-2022-40897", "setuptools", "65.5.0"),
		},
		{
			name: "repository glob does not cross /", paths: []string{yamlTeamA},
			art: report.Artifact{Repository: "team-a/tools/app", Digest: digestB}, vuln: pypi("CVE-2022-40897", "setuptools", "65.5.0"),
		},
		{
			name: "purl names another package", paths: []string{yamlTeamA},
			art: appV1, vuln: pypi("CVE-2022-40897", "setuptools-scm", "8.0.4"),
		},
		{
			name: "digest match", paths: []string{yamlTeamA},
			art: appV1, vuln: deb("CVE-2023-24329", "python3.11", "3.11.2-6"),
			want: want{"not_affected", "", "urllib.parse is not used on untrusted URLs in this release", yamlTeamA},
		},
		{
			name: "digest mismatch", paths: []string{yamlTeamA},
			art: appV2, vuln: deb("CVE-2023-24329", "python3.11", "3.11.2-6"),
		},
		{
			name: "IDs compare case-insensitively", paths: []string{yamlTeamA},
			art: appV2, vuln: deb("CVE-2023-4911", "libc6", "2.36-9+deb12u1"),
			want: want{"not_affected", "", "no setuid binaries in the image", yamlTeamA},
		},
		// Both
		{
			name: "an ignore entry overrides VEX affected", paths: []string{"testdata/vex", "testdata/override.yaml"},
			art: appV1, vuln: deb("CVE-2023-5678", "libssl3", "3.0.11-1~deb12u2"),
			want: want{"not_affected", "", "DH is not used by any protocol the app speaks", "testdata/override.yaml"},
		},
		{
			name: "VEX is consulted before the ignore file", paths: []string{"testdata/override.yaml", "testdata/vex"},
			art: appV1, vuln: deb("CVE-2023-0464", "libssl3", "3.0.11-1~deb12u2"),
			want: want{"not_affected", "vulnerable_code_not_in_execute_path", "The app never enables X.509 policy checking (-policy / X509_V_FLAG_POLICY_CHECK).", vexApp},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustLoad(t, tt.paths...)
			at := now
			if !tt.now.IsZero() {
				at = tt.now
			}
			kept, ignored := r.Apply(tt.art, []report.Vulnerability{tt.vuln}, at)
			if len(kept)+len(ignored) != 1 {
				t.Fatalf("kept %d + ignored %d, want 1 in all", len(kept), len(ignored))
			}
			if tt.want.status == "" {
				if len(kept) != 1 {
					t.Fatalf("ignored %+v, want kept", ignored[0])
				}
				return
			}
			if len(ignored) != 1 {
				t.Fatalf("kept, want ignored with status %s", tt.want.status)
			}
			got := ignored[0]
			if !slices.Equal(got.Aliases, tt.vuln.Aliases) || got.Key() != tt.vuln.Key() || got.PURL != tt.vuln.PURL {
				t.Errorf("ignored vulnerability %+v, want %+v", got.Vulnerability, tt.vuln)
			}
			if g := (want{got.Status, got.Justification, got.Reason, got.Source}); g != tt.want {
				t.Errorf("got %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

func TestApplyKeepsOrder(t *testing.T) {
	r := mustLoad(t, "testdata/vex", "testdata/ignore")
	in := []report.Vulnerability{
		deb("CVE-2023-5678", "libssl3", "3.0.11-1~deb12u2"),                         // kept
		deb("CVE-2023-0464", "libssl3", "3.0.11-1~deb12u2"),                         // ignored
		deb("CVE-2022-1304", "e2fsprogs", "1.47.0-2"),                               // kept
		pypi("CVE-2022-40897", "setuptools", "65.5.0"),                              // ignored
		deb("CVE-2024-2511", "libssl3", "3.0.11-1~deb12u2"),                         // ignored
		deb("CVE-2099-0001", "zlib1g", "1:1.2.13.dfsg-1"),                           // kept
		deb("DEBIAN-CVE-2023-2650", "libssl3", "3.0.11-1~deb12u2", "CVE-2023-2650"), // ignored
	}
	kept, ignored := r.Apply(appV1, in, now)
	var gotKept, gotIgnored []string
	for _, v := range kept {
		gotKept = append(gotKept, v.ID)
	}
	for _, v := range ignored {
		gotIgnored = append(gotIgnored, v.ID)
	}
	if w := []string{"CVE-2023-5678", "CVE-2022-1304", "CVE-2099-0001"}; !slices.Equal(gotKept, w) {
		t.Errorf("kept %v, want %v", gotKept, w)
	}
	if w := []string{"CVE-2023-0464", "CVE-2022-40897", "CVE-2024-2511", "DEBIAN-CVE-2023-2650"}; !slices.Equal(gotIgnored, w) {
		t.Errorf("ignored %v, want %v", gotIgnored, w)
	}
}

func TestNilAndEmpty(t *testing.T) {
	in := []report.Vulnerability{deb("CVE-2023-0464", "libssl3", "3.0.11-1~deb12u2")}
	var r *Rules
	if r.Len() != 0 {
		t.Errorf("nil Len = %d", r.Len())
	}
	kept, ignored := r.Apply(appV1, in, now)
	if len(kept) != 1 || ignored != nil {
		t.Errorf("nil rules: kept %v ignored %v", kept, ignored)
	}
	kept[0].ID = "changed"
	if in[0].ID != "CVE-2023-0464" {
		t.Error("kept aliases the input slice")
	}

	r, err := LoadBytes("empty.yaml", []byte("ignore:\n#  - id: CVE-2023-0464\n"))
	if err != nil || r.Len() != 0 {
		t.Fatalf("commented-out list: %v, Len %d", err, r.Len())
	}
	r, err = Load(t.TempDir())
	if err != nil || r.Len() != 0 {
		t.Fatalf("empty directory: %v, Len %d", err, r.Len())
	}
}

func TestLen(t *testing.T) {
	for _, tt := range []struct {
		paths []string
		want  int
	}{
		{[]string{vexApp}, 7},
		{[]string{"testdata/vex"}, 8},
		{[]string{yamlTeamA}, 5},
		{[]string{"testdata/vex", yamlTeamA}, 13},
	} {
		if got := mustLoad(t, tt.paths...).Len(); got != tt.want {
			t.Errorf("Load(%v).Len() = %d, want %d", tt.paths, got, tt.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string // substrings of the error
	}{
		{"bad-status.openvex.json", []string{
			"testdata/invalid/bad-status.openvex.json: statements[0] (CVE-2023-0464): invalid status value \"not-affected\"",
		}},
		{"no-justification.openvex.json", []string{
			"statements[0] (CVE-2023-0465): either justification or impact statement must be defined",
			"statements[1] (CVE-2023-0466): no products",
		}},
		{"legacy-v0.0.1.openvex.json", []string{"legacy-v0.0.1.openvex.json: OpenVEX v0.0.1 (unversioned @context) is not supported (want @context https://openvex.dev/ns/v0.2.0)"}},
		{"broken.openvex.json", []string{"broken.openvex.json: invalid OpenVEX JSON: unexpected end of JSON input"}},
		{"csaf.json", []string{"csaf.json: CSAF documents are not supported"}},
		{"missing-reason.yaml", []string{
			"missing-reason.yaml: line 5: ignore[1] (CVE-2022-40897): reason is required",
			"line 7: ignore[2]: id is required",
		}},
		{"unknown-field.yaml", []string{"unknown-field.yaml: not an OpenVEX document nor a valid ignore file", "line 4: field expiry not found"}},
		{"bad-values.yaml", []string{
			`line 2: ignore[0] (CVE-2023-2650): repository pattern "team-[a/*": syntax error in pattern`,
			`line 5: ignore[1] (CVE-2023-2651): expires "next year": want a date`,
			`line 8: ignore[2] (CVE-2023-2652): purl "setuptools" is not a package URL`,
			`line 11: ignore[3] (CVE-2023-2653): digest "58a9`,
		}},
		{"policy.yaml", []string{"policy.yaml: not an OpenVEX document nor a valid ignore file", "field warn_at not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r, err := Load(filepath.Join("testdata/invalid", tt.file))
			if err == nil {
				t.Fatalf("no error, %d rules", r.Len())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadBytesErrors(t *testing.T) {
	tests := []struct{ data, want string }{
		{"", "x: empty file"},
		{"  \n", "x: empty file"},
		{"# only a comment\n", "x: no top-level 'ignore' list"},
		{"[1, 2]", "x: not an OpenVEX document nor a valid ignore file"},
		{"ignore: []\n---\nignore: []\n", "x: more than one YAML document"},
		{`{"@context": "https://www.w3.org/2018/credentials/v1"}`, `x: @context "https://www.w3.org/2018/credentials/v1" is not OpenVEX`},
		{`{"bomFormat": "CycloneDX", "specVersion": "1.5"}`, "x: CycloneDX VEX is not supported"},
		{`{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "x"}], "status": "fixed"}]}`,
			"x: statements[0] (CVE-1): no timestamp, and the document has none"},
		{`{"@context": "https://openvex.dev/ns/v0.2.0", "timestamp": "yesterday"}`, "x: invalid OpenVEX JSON: parsing time"},
		{`{"@context": "https://openvex.dev/ns/v0.2.0", "timestamp": "2025-01-01T00:00:00Z", "statements": [{"products": [{"@id": "x"}], "status": "fixed"}]}`,
			"x: statements[0]: vulnerability name is required"},
	}
	for _, tt := range tests {
		_, err := LoadBytes("x", []byte(tt.data))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadBytes(%q) = %v, want error containing %q", tt.data, err, tt.want)
		}
	}
}

func TestLoadReportsEveryFile(t *testing.T) {
	_, err := Load("testdata/invalid/csaf.json", "testdata/does-not-exist.yaml", "testdata/invalid/policy.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"csaf.json:", "testdata/does-not-exist.yaml: no such file", "policy.yaml:"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// A directory is read like a ConfigMap mount: only *.json, *.yaml and *.yml
// files, symlinks followed, dot-files and subdirectories skipped.
func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "..2025_05_01")
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(data, "team.yml"), "ignore:\n  - id: CVE-2023-2650\n    reason: reviewed\n")
	if err := os.Symlink(filepath.Join(data, "team.yml"), filepath.Join(dir, "team.yml")); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(vexApp)
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(dir, "app.JSON"), string(src))
	write(filepath.Join(dir, "notes.txt"), "not a rule file")
	write(filepath.Join(dir, ".swap.yaml"), "garbage: [")
	if err := os.Mkdir(filepath.Join(dir, "nested.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}

	r := mustLoad(t, dir)
	if r.Len() != 8 {
		t.Errorf("Len = %d, want 8", r.Len())
	}
	_, ignored := r.Apply(teamB, []report.Vulnerability{deb("CVE-2023-2650", "libssl3", "3.0.9-1")}, now)
	if len(ignored) != 1 || ignored[0].Source != filepath.Join(dir, "team.yml") {
		t.Errorf("ignored %+v, want one from team.yml", ignored)
	}
}

// An ignore file may also be written as JSON.
func TestIgnoreFileAsJSON(t *testing.T) {
	r, err := LoadBytes("ignore.json", []byte(`{"ignore": [{"id": "CVE-2023-2650", "reason": "reviewed", "expires": "2027-01-01"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ignored := r.Apply(teamB, []report.Vulnerability{deb("CVE-2023-2650", "libssl3", "3.0.9-1")}, now); len(ignored) != 1 {
		t.Errorf("not ignored")
	}
}

// Distributions name source packages in advisories and VEX documents:
// an entry or statement for openssl covers libssl3 built from it.
func TestSourcePackageMatches(t *testing.T) {
	libssl := deb("DSA-5532-1", "libssl3", "3.0.11-1~deb12u1", "CVE-2023-5363")
	libssl.SourceName, libssl.SourceVersion = "openssl", "3.0.11-1~deb12u1"
	vexDoc := func(sub string) string {
		return `{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://vex.example.com/1",
  "author": "Debian-ish <sec@example.com>", "timestamp": "2026-01-01T00:00:00Z", "version": 1,
  "statements": [{"vulnerability": {"name": "CVE-2023-5363"},
    "products": [{"@id": "pkg:oci/app@` + strings.ReplaceAll(digestV1, ":", "%3A") + `", "subcomponents": [{"@id": "` + sub + `"}]}],
    "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"}]}`
	}
	for _, tc := range []struct {
		name, file string
		data       string
		ignored    bool
	}{
		{"yaml package names the source", "i.yaml", "ignore:\n  - id: CVE-2023-5363\n    package: openssl\n    reason: r\n", true},
		{"yaml purl of the source", "i.yaml", "ignore:\n  - id: CVE-2023-5363\n    purl: pkg:deb/debian/openssl\n    reason: r\n", true},
		{"yaml other package", "i.yaml", "ignore:\n  - id: CVE-2023-5363\n    package: libssl-dev\n    reason: r\n", false},
		{"vex source purl", "v.json", vexDoc("pkg:deb/debian/openssl"), true},
		{"vex source purl and version", "v.json", vexDoc("pkg:deb/debian/openssl@3.0.11-1~deb12u1"), true},
		{"vex source purl, other version", "v.json", vexDoc("pkg:deb/debian/openssl@3.0.13-1~deb12u1"), false},
		{"vex binary purl", "v.json", vexDoc("pkg:deb/debian/libssl3"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := LoadBytes(tc.file, []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			kept, ignored := r.Apply(appV1, []report.Vulnerability{libssl}, now)
			if got := len(ignored) == 1; got != tc.ignored || len(kept)+len(ignored) != 1 {
				t.Fatalf("ignored=%v kept=%v, want ignored %v", ignored, kept, tc.ignored)
			}
		})
	}
}
