package scantest

import (
	"strings"
	"testing"
)

// Paths of the package databases the rootfs builders write.
const (
	DpkgStatusPath   = "var/lib/dpkg/status"
	DpkgStatusDPath  = "var/lib/dpkg/status.d"
	ApkInstalledPath = "lib/apk/db/installed"
)

// DebianPackages are the packages (name → version) of DebianRootfs.
var DebianPackages = map[string]string{
	"base-files": debianVersions["base-files"],
	"bash":       debianVersions["bash"],
	"libc6":      debianVersions["libc6"],
}

// DebianStanzaNames lists the real Debian 12 packages DebianStatus knows.
var DebianStanzaNames = []string{"base-files", "bash", "libc6", "libssl3", "netbase", "tzdata", "zlib1g"}

// DebianVersion returns the version of a package of DebianStanzaNames.
func DebianVersion(name string) string { return debianVersions[name] }

// DebianStatus returns a dpkg status file listing the named packages
// (from DebianStanzaNames; real Debian 12 stanzas), in order.
func DebianStatus(t testing.TB, names ...string) string {
	t.Helper()
	var b strings.Builder
	for i, n := range names {
		s, ok := debianStanzas[n]
		if !ok {
			t.Fatalf("scantest: no Debian stanza for %q", n)
		}
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(s)
		b.WriteString("\n")
	}
	return b.String()
}

// DebianRootfs is a Debian 12 root: usr/lib/os-release with the
// etc/os-release symlink to it (as in debian:12) and a dpkg status listing
// DebianPackages. Expected: OS {debian 12 "Debian GNU/Linux 12
// (bookworm)"}, ecosystem "Debian:12".
func DebianRootfs(t testing.TB) []File {
	t.Helper()
	return []File{
		Dir("etc"),
		Symlink("etc/os-release", "../usr/lib/os-release"),
		Dir("usr"), Dir("usr/lib"),
		Reg("usr/lib/os-release", debian12OSRelease),
		Dir("var"), Dir("var/lib"), Dir("var/lib/dpkg"),
		Reg(DpkgStatusPath, DebianStatus(t, "base-files", "bash", "libc6")),
		Reg("etc/debian_version", "12.11\n"),
		Reg("bin/true-ish", "not a binary\n"),
	}
}

// DistrolessPackages are the packages (name → version) of DistrolessRootfs.
var DistrolessPackages = map[string]string{
	"base-files": debianVersions["base-files"],
	"netbase":    debianVersions["netbase"],
	"tzdata":     debianVersions["tzdata"],
}

// DistrolessOSRelease is the etc/os-release of gcr.io/distroless/*-debian12.
const DistrolessOSRelease = `PRETTY_NAME="Distroless"
NAME="Debian GNU/Linux"
ID="debian"
VERSION_ID="12"
VERSION="Debian GNU/Linux 12 (bookworm)"
HOME_URL="https://github.com/GoogleContainerTools/distroless"
SUPPORT_URL="https://github.com/GoogleContainerTools/distroless/blob/master/README.md"
BUG_REPORT_URL="https://github.com/GoogleContainerTools/distroless/issues/new"
`

// DistrolessRootfs is a distroless (static-debian12-like) root: one
// var/lib/dpkg/status.d/<name> file per package (no Status field), an
// md5sums file to be ignored, and the distroless os-release.
func DistrolessRootfs(t testing.TB) []File {
	t.Helper()
	files := []File{Reg("etc/os-release", DistrolessOSRelease)}
	for _, n := range []string{"base-files", "netbase", "tzdata"} {
		s := debianStanzas[n]
		// status.d files carry no Status field.
		var kept []string
		for _, line := range strings.Split(s, "\n") {
			if !strings.HasPrefix(line, "Status:") {
				kept = append(kept, line)
			}
		}
		files = append(files, Reg(DpkgStatusDPath+"/"+n, strings.Join(kept, "\n")+"\n"))
	}
	files = append(files, Reg(DpkgStatusDPath+"/tzdata.md5sums", "a1ad9e9ee4c0b0bd9f3c6b1e2ea2d7e3  usr/share/zoneinfo/Etc/UTC\n"))
	return files
}

// Alpine319OSRelease is /etc/os-release of alpine:3.19.1.
const Alpine319OSRelease = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
`

// AlpinePackages are the packages (name → version) of AlpineRootfs.
var AlpinePackages = map[string]string{
	"busybox":    "1.36.1-r15",
	"libcrypto3": "3.1.4-r5",
	"musl":       "1.2.4_git20230717-r4",
	"zlib":       "1.3.1-r0",
}

// alpineInstalled is an excerpt of alpine:3.19.1's lib/apk/db/installed
// (record layout of the real file; file lists trimmed).
const alpineInstalled = `C:Q1dsdhkb5I5tQH+jVCRQdDLbMx2lo=
P:busybox
V:1.36.1-r15
A:x86_64
S:507831
I:950272
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1700158745
c:d4a99fa1da3e34fe1b1ebb71c6b4afb7a1ff2c16
D:so:libc.musl-x86_64.so.1
p:cmd:busybox=1.36.1-r15
r:busybox-initscripts
F:bin
R:busybox
a:0:0:755
Z:Q1mGTzzaJlMbkzwbm5ZSeAbVqdMpE=

C:Q1JCyMj5PCYuQ5PrnHvsm3ryZyeGE=
P:libcrypto3
V:3.1.4-r5
A:x86_64
S:1815880
I:4997120
T:Crypto library from openssl
U:https://www.openssl.org/
L:Apache-2.0
o:openssl
m:Ariadne Conill <ariadne@dereferenced.org>
t:1706196612
c:dc27f8c0e4086dfc4a2e1b4d6c2bb0e4af30c0e4
D:so:libc.musl-x86_64.so.1
p:so:libcrypto.so.3=3
F:lib
R:libcrypto.so.3
a:0:0:755
Z:Q1F3o6s/8v0cK7Nd8Q1UWLcT2w5AM=

C:Q1QsdvHuCIqyPw1xwPh9mC7Dfuysw=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407278
I:667648
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1700655006
c:5c7d5fb0dc4ab7c0fd43cec6c8dbf1ce0fb2c3e6
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1ywmw2Eq8+A4smvvH5H+1a4tAlI8=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=

C:Q1Ekf5OZyQkGy0w2w8VsvAGpgX4f8=
P:zlib
V:1.3.1-r0
A:x86_64
S:53688
I:110592
T:A compression/decompression Library
U:https://zlib.net/
L:Zlib
o:zlib
m:Natanael Copa <ncopa@alpinelinux.org>
t:1706023412
c:5d70fdc6be0e20d4b46bf8ff8e8bf8df1f1c0ed8
D:so:libc.musl-x86_64.so.1
p:so:libz.so.1=1.3.1
F:lib
R:libz.so.1
a:0:0:777
Z:Q1IdmTXFv2OC6xkBq4KFlpVp1dOkw=

`

// AlpineRootfs is an Alpine 3.19 root: etc/os-release and an apk
// installed database listing AlpinePackages. Expected: OS {alpine 3.19.1
// "Alpine Linux v3.19"}, ecosystem "Alpine:v3.19".
func AlpineRootfs(t testing.TB) []File {
	t.Helper()
	return []File{
		Dir("etc"),
		Reg("etc/os-release", Alpine319OSRelease),
		Dir("lib"), Dir("lib/apk"), Dir("lib/apk/db"),
		Reg(ApkInstalledPath, alpineInstalled),
	}
}
