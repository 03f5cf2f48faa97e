package web_test

import (
	"fmt"
	"time"

	"github.com/customs-scan/customs/pkg/report"
)

// fixtures are the images the tests publish, as a scanner would report
// them.
type fixtures struct {
	// previous and malicious are two pushes of team-a/app:latest; the
	// second brought a miner, two secrets and new vulnerabilities.
	previous, malicious *report.Report
	// big has 3,000 packages.
	big *report.Report
	// index is team-b/multi, with two platforms.
	index    *report.Report
	children []*report.Report
	// dbVersion is results' vulnerability database.
	dbVersion string
}

const registry = "registry.test:5000"

var base = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

func layerDigest(n int) string { return digest(0x1000 + n) }

func image(db report.VulnerabilityDB, repo string, n int, pushed time.Time, tags ...string) *report.Report {
	r := &report.Report{
		Artifact: report.Artifact{Registry: registry, Repository: repo, Digest: digest(n), Tags: tags,
			MediaType: "application/vnd.oci.image.manifest.v1+json", Platform: "linux/amd64"},
		Scanner:   report.Scanner{Name: "customs", Version: "test"},
		StartedAt: pushed.Add(time.Second), FinishedAt: pushed.Add(3 * time.Second), RequestedAt: &pushed,
		Status: report.StatusComplete, Verdict: report.VerdictPass,
		OS:              report.OS{ID: "debian", Version: "12", Name: "Debian GNU/Linux 12 (bookworm)"},
		VulnerabilityDB: db,
	}
	return r
}

func deb(name, version, layer string) report.Package {
	return report.Package{Name: name, Version: version, Ecosystem: "Debian:12", Path: "var/lib/dpkg/status", Layer: layer,
		PURL: "pkg:deb/debian/" + name + "@" + version, Analyzer: "dpkg"}
}

func vuln(id, pkg, version, fixed, sev, layer string, aliases ...string) report.Vulnerability {
	return report.Vulnerability{ID: id, Aliases: aliases, Package: pkg, Version: version, FixedVersion: fixed, Severity: sev,
		Ecosystem: "Debian:12", Path: "var/lib/dpkg/status", Layer: layer}
}

// newFixtures makes the images, matched against db (results' current
// database: a report matched against an older one would be re-matched
// before it is stored, and these vulnerabilities are made up).
func newFixtures(db report.VulnerabilityDB) fixtures {
	var f fixtures
	l1, l2, l3 := layerDigest(1), layerDigest(2), layerDigest(3)
	layers := []report.Layer{
		{Digest: l1, DiffID: layerDigest(11), Size: 29 << 20, CreatedBy: "/bin/sh -c #(nop) ADD file:5d6e2a in / "},
		{Digest: l2, DiffID: layerDigest(12), Size: 3 << 20, CreatedBy: "RUN |1 NPM_TOKEN=… /bin/sh -c npm ci && cp .env /app/.env # buildkit"},
		{Digest: l3, DiffID: layerDigest(13), Size: 6 << 20, CreatedBy: "COPY miner/ /opt/miner/ # buildkit"},
	}
	pkgs := []report.Package{
		deb("bash", "5.2.15-2+b7", l1), deb("libssl3", "3.0.11-1~deb12u1", l1), deb("zlib1g", "1:1.2.13.dfsg-1", l1),
		deb("curl", "7.88.1-10+deb12u4", l1), deb("libc6", "2.36-9+deb12u3", l1),
		{Name: "lodash", Version: "4.17.20", Ecosystem: "npm", PURL: "pkg:npm/lodash@4.17.20", Path: "app/node_modules/lodash/package.json", Layer: l2},
		{Name: "express", Version: "4.17.1", Ecosystem: "npm", PURL: "pkg:npm/express@4.17.1", Path: "app/node_modules/express/package.json", Layer: l2},
	}
	older := []report.Vulnerability{
		vuln("CVE-2023-5678", "libssl3", "3.0.11-1~deb12u1", "", "LOW", l1),
		vuln("DSA-5532-1", "libssl3", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2", "HIGH", l1, "CVE-2023-5363"),
	}

	f.previous = image(db, "team-a/app", 10, base.Add(time.Hour), "latest")
	f.previous.Layers = layers[:2]
	f.previous.Packages = pkgs
	f.previous.Vulnerabilities = older

	m := image(db, "team-a/app", 11, base.Add(2*time.Hour), "latest")
	m.Layers = layers
	m.Packages = pkgs
	m.Vulnerabilities = append(append([]report.Vulnerability{}, older...),
		vuln("CVE-2024-0001", "libc6", "2.36-9+deb12u3", "2.36-9+deb12u4", "CRITICAL", l1),
		vuln("CVE-2024-0002", "zlib1g", "1:1.2.13.dfsg-1", "", "CRITICAL", l1),
		vuln("CVE-2024-0003", "curl", "7.88.1-10+deb12u4", "7.88.1-10+deb12u5", "HIGH", l1),
		vuln("GHSA-35jh-r3h4-6jhm", "lodash", "4.17.20", "4.17.21", "HIGH", l2, "CVE-2021-23337"),
		vuln("CVE-2024-0004", "bash", "5.2.15-2+b7", "", "MEDIUM", l1),
		vuln("CVE-2024-0005", "curl", "7.88.1-10+deb12u4", "", "MEDIUM", l1),
		vuln("GHSA-rv95-896h-c2vc", "express", "4.17.1", "4.19.2", "MEDIUM", l2, "CVE-2024-29041"),
		vuln("CVE-2024-0006", "libc6", "2.36-9+deb12u3", "", "", l1),
	)
	m.IgnoredVulnerabilities = []report.IgnoredVulnerability{{
		Vulnerability: vuln("CVE-2023-2650", "libssl3", "3.0.11-1~deb12u1", "3.0.9-1", "MEDIUM", l1),
		Status:        "not_affected", Justification: "vulnerable_code_not_in_execute_path",
		Reason: "OBJ_obj2txt is only reached with trusted certificates", Source: "vex/team-a.openvex.json",
	}}
	m.Findings = []report.Finding{
		{Kind: report.KindMalware, Rule: "xmrig", Severity: "CRITICAL", Title: "XMRig cryptominer", Path: "opt/miner/xmrig", Layer: l3,
			SHA256: "8f2d3c1b0a9e8d7c6b5a49382716f5e4d3c2b1a09f8e7d6c5b4a392817f6e5d4", Engine: "signatures"},
		{Kind: report.KindMalware, Rule: "stratum-pool", Severity: "HIGH", Title: "Mining pool URL (stratum+tcp)", Path: "opt/miner/config.json", Layer: l3, Line: 4,
			Excerpt: `"url": "stratum+tcp://pool.example:3333"`, Engine: "signatures"},
		{Kind: report.KindSecret, Rule: "aws-access-token", Severity: "CRITICAL", Title: "AWS access key", Path: "app/.env", Layer: l2, Line: 3,
			Excerpt: "AWS_ACCESS_KEY_ID=AKIA…XY", Engine: "gitleaks"},
		{Kind: report.KindSecret, Rule: "npm-access-token", Severity: "HIGH", Title: "npm access token (history step 2)", Path: "(image config)", Layer: l2,
			Excerpt: "NPM_TOKEN=npm_…Zk", Engine: "gitleaks"},
	}
	m.Verdict, m.VerdictRule, m.VerdictReason = report.VerdictQuarantine, "default:malware", "malware: XMRig cryptominer in opt/miner/xmrig"
	f.malicious = m

	big := image(db, "team-a/big", 20, base.Add(time.Hour), "v1")
	for i := range 5 {
		big.Layers = append(big.Layers, report.Layer{Digest: layerDigest(100 + i), DiffID: layerDigest(200 + i), Size: int64(i+1) << 22,
			CreatedBy: fmt.Sprintf("RUN /bin/sh -c install-step-%d", i+1)})
	}
	sevs := []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"}
	for i := range 3000 {
		layer := big.Layers[i%5].Digest
		name := fmt.Sprintf("pkg-%04d", i)
		big.Packages = append(big.Packages, report.Package{Name: name, Version: fmt.Sprintf("1.%d.0", i%17), Ecosystem: "npm",
			PURL: "pkg:npm/" + name + "@1.0.0", Path: "app/node_modules/" + name + "/package.json", Layer: layer})
		if i%5 == 0 {
			fixed := ""
			if i%2 == 0 {
				fixed = "2.0.0"
			}
			big.Vulnerabilities = append(big.Vulnerabilities, report.Vulnerability{ID: fmt.Sprintf("GHSA-big-%04d", i), Package: name,
				Version: "1.0.0", FixedVersion: fixed, Severity: sevs[(i/5)%5], Ecosystem: "npm", Layer: layer})
		}
	}
	big.Verdict, big.VerdictRule, big.VerdictReason = report.VerdictWarn, "default:critical-fixable", "fixable CRITICAL vulnerabilities"
	f.big = big

	amd := image(db, "team-b/multi", 31, base.Add(time.Hour), "2.0")
	amd.Layers = layers[:1]
	amd.Packages = pkgs[:5]
	amd.Vulnerabilities = older[:1]
	arm := image(db, "team-b/multi", 32, base.Add(time.Hour), "2.0")
	arm.Artifact.Platform = "linux/arm64"
	arm.Layers = layers[:1]
	arm.Packages = pkgs[:5]
	arm.Vulnerabilities = older
	arm.Verdict = report.VerdictWarn
	f.children = []*report.Report{amd, arm}
	idx := image(db, "team-b/multi", 30, base.Add(time.Hour), "2.0")
	idx.Artifact.MediaType, idx.Artifact.Platform = "application/vnd.oci.image.index.v1+json", ""
	idx.OS = report.OS{}
	idx.Manifests = []report.ManifestRef{
		{Digest: amd.Artifact.Digest, Platform: "linux/amd64", Verdict: amd.Verdict},
		{Digest: arm.Artifact.Digest, Platform: "linux/arm64", Verdict: arm.Verdict},
	}
	idx.Verdict = report.VerdictWarn
	f.index = idx
	for _, r := range []*report.Report{f.previous, f.malicious, f.big, amd, arm, idx} {
		r.Normalize()
	}
	return f
}

// ordered is the order a scanner would publish them in: pushes in time
// order, an index's platforms before the index.
func (f fixtures) ordered() []*report.Report {
	return []*report.Report{f.previous, f.malicious, f.big, f.children[0], f.children[1], f.index}
}
