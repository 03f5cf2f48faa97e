package vulndb

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/rpm"
)

// testdata/osv-rpm holds records of RPM distributions written from real
// AlmaLinux, Rocky Linux, Red Hat and SUSE advisories (see its README).
const rpmTestdataDir = "testdata/osv-rpm"

func loadRPMTestDB(t testing.TB) *DB {
	t.Helper()
	db, st, err := Load(context.Background(), rpmTestdataDir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Invalid != 0 || st.Dropped != 0 || st.Records != 4 {
		t.Fatalf("stats %+v", st)
	}
	return db
}

func TestRPMVersionOrdering(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1:3.0.7-24.el9", "1:3.0.7-27.el9", -1},
		{"1:3.0.7-27.el9", "1:3.0.7-27.el9", 0},
		{"0:5.2.5-8.el9_0", "5.2.5-8.el9_0", 0}, // Rocky and Red Hat write epoch 0
		{"1:1.0-1", "9.9-9.el9", 1},             // the epoch decides first
		{"2:1.0-1.el9", "1:3.0.7-27.el9", 1},
		{"3.0.7-30.el9", "1:3.0.7-27.el9", -1}, // no epoch is epoch 0
		{"1.2.11-3.21.1", "1.2.11-150000.3.30.1", -1},
		{"2.4.57-8.el9", "2.4.57-11.el9_4", -1},
		{"1.0-1.el8_9", "1.0-1.el8_10", -1},
		{"1.1.1k-6.el8_5", "1.1.1k-5.el8_5", 1},
		{"1.1.1l-1", "1.1.1k-9", 1},
		{"1.9.5p2-10.el9_6.1", "1.9.5p2-9.el9", 1},
		{"1.0~rc1-1", "1.0-1", -1}, // tilde sorts before
		{"1.0^git1-1", "1.0-1", 1}, // caret after
		{"1.0^git1-1", "1.0.1-1", -1},
		{"22.23.2-2.module+el9.8.0+24958+80b2ac6e", "22.23.2-1.module+el9.8.0+24000+aaaaaaaa", 1},
		{"1.3.1-1", "1.2.13-1.azl3", 1},
		{"1.0", "1.0-1", -1},
		{"2021e-1.fc35", "2021a-1.fc35", 1},
	} {
		got, err := cmpRPM(c.a, c.b)
		if err != nil || sign(got) != c.want {
			t.Errorf("cmpRPM(%q, %q) = %d, %v; want %d", c.a, c.b, got, err, c.want)
		}
		if got, err := cmpRPM(c.b, c.a); err != nil || sign(got) != -c.want {
			t.Errorf("cmpRPM(%q, %q) = %d, %v; want %d", c.b, c.a, got, err, -c.want)
		}
	}
	for _, bad := range []string{
		"", " ", "virt-devel:rhel", "abc:1.0", "1:", ":1.0", "-1", "1.0-", "1:2:3",
		"1.0 -1", "1.0-1 ", " 1.0-1", "1x:1.0", "1.0/1-1", "99999999999:1.0", "1.0-1\n", "...-1",
	} {
		if _, err := cmpRPM(bad, "1.0-1"); err == nil {
			t.Errorf("cmpRPM(%q) accepted", bad)
		}
		if _, err := cmpRPM("1.0-1", bad); err == nil {
			t.Errorf("cmpRPM(_, %q) accepted", bad)
		}
	}
	for _, eco := range rpmEcosystems {
		c := comparatorFor(eco, "ECOSYSTEM")
		if c == nil {
			t.Errorf("%s: no ordering", eco)
			continue
		}
		if n, err := c("1:1.0-1", "2.0-1"); err != nil || n <= 0 {
			t.Errorf("%s: not the RPM ordering", eco)
		}
	}
}

func TestRPMEcosystemNormalization(t *testing.T) {
	for in, want := range map[string]string{
		"AlmaLinux:9":             "AlmaLinux|9",
		"AlmaLinux:9.3":           "AlmaLinux|9",
		"almalinux:8":             "AlmaLinux|8",
		"Rocky Linux:8":           "Rocky Linux|8",
		"Rocky Linux:8.9":         "Rocky Linux|8",
		"Azure Linux:3":           "Azure Linux|3",
		"Azure Linux:3.0":         "Azure Linux|3",
		"Mageia:9":                "Mageia|9",
		"Photon OS:5.0":           "Photon OS|5.0",
		"openeuler:22.03-LTS-SP1": "openEuler|22.03-LTS-SP1",

		// Red Hat: every main stream of a major release is one release.
		"Red Hat:enterprise_linux:9::appstream": "Red Hat|enterprise_linux:9",
		"Red Hat:enterprise_linux:9::baseos":    "Red Hat|enterprise_linux:9",
		"Red Hat:enterprise_linux:8::crb":       "Red Hat|enterprise_linux:8",
		"Red Hat:enterprise_linux:8::sap_hana":  "Red Hat|enterprise_linux:8",
		"Red Hat:enterprise_linux:7::server":    "Red Hat|enterprise_linux:7",
		"Red Hat:enterprise_linux:10.0":         "Red Hat|enterprise_linux:10",
		"Red Hat:enterprise_linux:10.1":         "Red Hat|enterprise_linux:10",
		"Red Hat:enterprise_linux:9":            "Red Hat|enterprise_linux:9", // the rpm analyzer's form
		"Red Hat:rhel_eus:9.2::appstream":       "Red Hat|rhel_eus:9.2::appstream",
		"Red Hat:rhel_aus:8.4::appstream":       "Red Hat|rhel_aus:8.4::appstream",
		"Red Hat:openshift:4.14::el9":           "Red Hat|openshift:4.14::el9",
		"Red Hat:enterprise_linux:x::baseos":    "Red Hat|enterprise_linux:x::baseos",
		"Red Hat":                               "Red Hat",

		// SUSE: every SLE product of one release and service pack.
		"SUSE:Linux Enterprise Server 15 SP5":                          "SUSE|Linux Enterprise 15 SP5",
		"SUSE:Linux Enterprise Module for Basesystem 15 SP5":           "SUSE|Linux Enterprise 15 SP5",
		"SUSE:Linux Enterprise Module for Python 3 15 SP5":             "SUSE|Linux Enterprise 15 SP5",
		"SUSE:Linux Enterprise Server for SAP Applications 15 SP5":     "SUSE|Linux Enterprise 15 SP5",
		"SUSE:Linux Enterprise Server 15 SP5-LTSS":                     "SUSE|Linux Enterprise 15 SP5",
		"SUSE:Linux Enterprise High Performance Computing 15 SP2-LTSS": "SUSE|Linux Enterprise 15 SP2",
		"SUSE:Linux Enterprise Server 12 SP5-LTSS-EXTENDED-SECURITY":   "SUSE|Linux Enterprise 12 SP5",
		"SUSE:Linux Enterprise Server 11 SP4 LTSS":                     "SUSE|Linux Enterprise 11 SP4",
		"SUSE:Linux Enterprise Server 15":                              "SUSE|Linux Enterprise 15",
		"SUSE:Linux Enterprise Server 15-LTSS":                         "SUSE|Linux Enterprise 15",
		"SUSE:Linux Enterprise Module for Basesystem 15-SP3":           "SUSE|Linux Enterprise 15 SP3",
		"SUSE:Linux Enterprise Server 16.0":                            "SUSE|Linux Enterprise 16.0",
		"SUSE:Linux Enterprise Micro 5.5":                              "SUSE|Linux Enterprise Micro 5.5",
		"SUSE:Linux Enterprise Module for SUSE Manager Server 4.3":     "SUSE|Linux Enterprise Module for SUSE Manager Server 4.3",
		"SUSE:Linux Micro 6.0":                                         "SUSE|Linux Micro 6.0",
		"SUSE:Enterprise Storage 7.1":                                  "SUSE|Enterprise Storage 7.1",

		"openSUSE:Leap 15.5":         "openSUSE|Leap 15.5",
		"openSUSE:Leap 15.5 NonFree": "openSUSE|Leap 15.5",
		"openSUSE:Leap Micro 5.5":    "openSUSE|Leap Micro 5.5",
		"openSUSE:Tumbleweed":        "openSUSE|Tumbleweed",
		"RPM":                        "RPM",
	} {
		b, r := normalizeEcosystem(in)
		got := b
		if r != "" {
			got += "|" + r
		}
		if got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func TestRPMSourceOrBinaryNames(t *testing.T) {
	for eco, source := range map[string]bool{
		"Debian": true, "Ubuntu": true, "Alpine": true,
		"Rocky Linux": true, "SUSE": true, "openSUSE": true, "Mageia": true, "openEuler": true, "Azure Linux": true,
		"AlmaLinux": false, "Red Hat": false, "Photon OS": false, "RPM": false, "npm": false,
	} {
		if got := isDistro(eco); got != source {
			t.Errorf("isDistro(%q) = %v, want %v", eco, got, source)
		}
	}
}

func TestRPMMatch(t *testing.T) {
	db := loadRPMTestDB(t)
	pkg := func(eco, name, version, srcName string) report.Package {
		return report.Package{Name: name, Version: version, SourceName: srcName, SourceVersion: version, Arch: "x86_64", Ecosystem: eco}
	}

	t.Run("AlmaLinux names binary RPMs", func(t *testing.T) {
		alsa := func(fixed string) want { return want{"ALSA-2024:2447", fixed, SeverityUnknown} }
		check(t, db, pkg("AlmaLinux:9", "openssl-libs", "1:3.0.7-24.el9", "openssl"), alsa("1:3.0.7-27.el9"))
		check(t, db, pkg("AlmaLinux:9", "openssl-perl", "1:3.0.1-41.el9_0", "openssl"), alsa("1:3.0.7-27.el9"))
		check(t, db, pkg("AlmaLinux:9", "openssl-libs", "1:3.0.7-27.el9", "openssl"))
		check(t, db, pkg("AlmaLinux:9", "openssl-libs", "1:3.0.7-28.el9_4", "openssl"))
		check(t, db, pkg("AlmaLinux:8", "openssl-libs", "1:1.1.1k-9.el8", "openssl"))
		// The source name plays no part: a binary the record does not
		// list is not matched, whatever its source.
		check(t, db, pkg("AlmaLinux:9", "openssl-debugsource", "1:3.0.7-24.el9", "openssl"))
		// Epochs: an epoch-0 build is older than any epoch-1 fix; an
		// epoch-2 one newer.
		check(t, db, pkg("AlmaLinux:9", "openssl-libs", "3.0.7-30.el9", "openssl"), alsa("1:3.0.7-27.el9"))
		check(t, db, pkg("AlmaLinux:9", "openssl-libs", "2:1.0-1.el9", "openssl"))
	})

	t.Run("Rocky Linux names source RPMs", func(t *testing.T) {
		rlsa := want{"RLSA-2022:1065", "1:1.1.1k-6.el8_5", SeverityHigh}
		check(t, db, pkg("Rocky Linux:8", "openssl-libs", "1:1.1.1k-5.el8_5", "openssl"), rlsa)
		check(t, db, pkg("Rocky Linux:8.5", "openssl-libs", "1:1.1.1k-4.el8", "openssl"), rlsa)
		check(t, db, report.Package{Name: "openssl", Version: "1:1.1.1g-15.el8_3", Ecosystem: "Rocky Linux:8"}, rlsa)
		check(t, db, pkg("Rocky Linux:8", "openssl-libs", "1:1.1.1k-6.el8_5", "openssl"))
		check(t, db, pkg("Rocky Linux:8", "openssl-libs", "1:1.1.1k-7.el8_6", "openssl"))
		check(t, db, pkg("Rocky Linux:9", "openssl-libs", "1:1.1.1k-5.el8_5", "openssl"))
		// Without a source name the binary name is used, and the record
		// lists no openssl-libs.
		check(t, db, report.Package{Name: "openssl-libs", Version: "1:1.1.1k-5.el8_5", Ecosystem: "Rocky Linux:8"})
		v := matchOne(t, db, pkg("Rocky Linux:8", "openssl-libs", "1:1.1.1k-5.el8_5", "openssl"))["RLSA-2022:1065"]
		if !slices.Equal(v.Aliases, []string{"CVE-2022-0778"}) || v.Package != "openssl-libs" || v.Ecosystem != "Rocky Linux:8" {
			t.Errorf("RLSA-2022:1065: %+v", v)
		}
	})

	t.Run("Red Hat streams of one major release are one", func(t *testing.T) {
		rhsa := want{"RHSA-2024:2447", "1:3.0.7-27.el9", SeverityUnknown}
		check(t, db, pkg("Red Hat:enterprise_linux:9", "openssl-libs", "1:3.0.7-24.el9", "openssl"), rhsa)  // baseos
		check(t, db, pkg("Red Hat:enterprise_linux:9", "openssl-devel", "1:3.0.7-24.el9", "openssl"), rhsa) // appstream
		check(t, db, pkg("Red Hat:enterprise_linux:9::baseos", "openssl", "1:3.0.1-47.el9_1", "openssl"), rhsa)
		check(t, db, pkg("Red Hat:enterprise_linux:9", "openssl-libs", "1:3.0.7-27.el9", "openssl"))
		check(t, db, pkg("Red Hat:enterprise_linux:8", "openssl-libs", "1:3.0.7-24.el9", "openssl"))
		check(t, db, pkg("Red Hat:rhel_eus:9.2::baseos", "openssl-libs", "1:3.0.7-24.el9", "openssl"))
		check(t, db, pkg("Red Hat", "openssl-libs", "1:3.0.7-24.el9", "openssl"))
		check(t, db, pkg("Red Hat:enterprise_linux:9", "libfoo", "1:3.0.7-24.el9", "openssl")) // binary names
		v := matchOne(t, db, pkg("Red Hat:enterprise_linux:9", "openssl-libs", "1:3.0.7-24.el9", "openssl"))["RHSA-2024:2447"]
		if !slices.Contains(v.Aliases, "CVE-2024-0727") {
			t.Errorf("RHSA-2024:2447 aliases %v", v.Aliases)
		}
	})

	t.Run("SUSE products of one service pack are one", func(t *testing.T) {
		su := want{"SUSE-SU-2022:1061-1", "1.2.11-150000.3.30.1", SeverityUnknown}
		check(t, db, pkg("SUSE:Linux Enterprise Server 15 SP3", "libz1", "1.2.11-3.21.1", "zlib"), su) // via the Basesystem module
		check(t, db, pkg("SUSE:Linux Enterprise Server 15 SP3", "zlib-devel-32bit", "1.2.11-3.21.1", "zlib"), su)
		check(t, db, pkg("SUSE:Linux Enterprise Server 15 SP2", "libz1", "1.2.11-3.21.1", "zlib"), su) // via HPC 15 SP2-LTSS
		check(t, db, pkg("SUSE:Linux Enterprise Server 15 SP3", "libz1", "1.2.11-150000.3.30.1", "zlib"))
		check(t, db, pkg("SUSE:Linux Enterprise Server 15 SP3", "libz1", "1.2.11-150000.3.33.1", "zlib"))
		check(t, db, pkg("SUSE:Linux Enterprise Server 15 SP4", "libz1", "1.2.11-3.21.1", "zlib"))
		check(t, db, pkg("SUSE:Linux Enterprise Micro 5.1", "libz1", "1.2.11-3.21.1", "zlib"))
		// Source names: the binary name alone does not match.
		check(t, db, report.Package{Name: "libz1", Version: "1.2.11-3.21.1", Ecosystem: "SUSE:Linux Enterprise Server 15 SP3"})
	})

	t.Run("openSUSE", func(t *testing.T) {
		su := want{"SUSE-SU-2022:1061-1", "1.2.11-150000.3.30.1", SeverityUnknown}
		check(t, db, pkg("openSUSE:Leap 15.3", "libz1", "1.2.11-3.21.1", "zlib"), su)
		check(t, db, pkg("openSUSE:Leap 15.3", "libz1", "1.2.11-150000.3.30.1", "zlib"))
		check(t, db, pkg("openSUSE:Leap 15.4", "libz1", "1.2.11-3.21.1", "zlib"))
		check(t, db, pkg("SUSE:Linux Enterprise Server 15 SP3", "libminizip1", "1.2.11-3.21.1", "zlib"), su)
	})

	t.Run("no OSV ecosystem", func(t *testing.T) {
		check(t, db, pkg("RPM", "openssl-libs", "1:1.1.1k-5.el8_5", "openssl"))
		check(t, db, pkg("RPM", "libz1", "1.2.11-3.21.1", "zlib"))
	})
}

// TestRPMAnalyzerToMatch runs the rpm analyzer over the real databases of
// its test cases and matches what it reports: the SLE 15 SP3 image's libz1
// 1.2.11-3.21.1 (source zlib) is affected by SUSE-SU-2022:1061-1, filed
// against the Basesystem module, not the Server product the image names.
func TestRPMAnalyzerToMatch(t *testing.T) {
	db := loadRPMTestDB(t)
	for c, want := range map[string][]string{
		"sles15-ndb":      {"SUSE-SU-2022:1061-1 libz1 1.2.11-3.21.1 SUSE:Linux Enterprise Server 15 SP3 fixed 1.2.11-150000.3.30.1"},
		"rhel8-bdb":       nil,
		"fedora35-sqlite": nil, // openssl-libs 1:1.1.1l-2.fc35, zlib: Fedora is not an OSV ecosystem
		"mariner2-sqlite": nil,
	} {
		got := analyzertest.Analyze(t, rpm.New(), "../scan/analyzer/rpm/testdata/"+c+"/rootfs")
		if len(got.Packages) == 0 {
			t.Fatalf("%s: no packages", c)
		}
		var vulns []string
		for _, v := range db.Match(got.Packages) {
			vulns = append(vulns, fmt.Sprintf("%s %s %s %s fixed %s", v.ID, v.Package, v.Version, v.Ecosystem, v.FixedVersion))
		}
		if !slices.Equal(vulns, want) {
			t.Errorf("%s: %q, want %q", c, vulns, want)
		}
	}
}

func TestRPMWriteReadRoundTrip(t *testing.T) {
	db := loadRPMTestDB(t)
	var buf bytes.Buffer
	if err := db.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := []report.Package{
		{Name: "openssl-libs", Version: "1:3.0.7-24.el9", SourceName: "openssl", Ecosystem: "AlmaLinux:9"},
		{Name: "openssl-libs", Version: "1:1.1.1k-5.el8_5", SourceName: "openssl", Ecosystem: "Rocky Linux:8"},
		{Name: "openssl-libs", Version: "1:3.0.7-24.el9", SourceName: "openssl", Ecosystem: "Red Hat:enterprise_linux:9"},
		{Name: "libz1", Version: "1.2.11-3.21.1", SourceName: "zlib", Ecosystem: "SUSE:Linux Enterprise Server 15 SP3"},
	}
	a, b := db.Match(pkgs), got.Match(pkgs)
	if len(a) != 4 || jsonString(t, a) != jsonString(t, b) {
		t.Errorf("match differs after round trip:\n%v\n%v", a, b)
	}
}
