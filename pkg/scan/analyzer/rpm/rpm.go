// Package rpm reads the RPM package database in its three formats, with
// github.com/knqyf263/go-rpmdb:
//
//	var/lib/rpm/Packages              Berkeley DB (RHEL/CentOS ≤ 8, SLES ≤ 15 SP2, Amazon Linux 2)
//	var/lib/rpm/Packages.db           NDB (SLES/openSUSE ≥ 15 SP3)
//	var/lib/rpm/rpmdb.sqlite          SQLite (RHEL ≥ 9, Fedora ≥ 33, Azure Linux)
//	usr/lib/sysimage/rpm/{Packages,Packages.db,rpmdb.sqlite}   the same, newer layout
//
// go-rpmdb (v0.1.1) is not hardened against hostile databases: a crafted
// Berkeley DB makes it loop forever or panic in a goroutine of its own
// (which no recover can catch), a crafted NDB makes it allocate 4 GiB, a
// crafted header makes it allocate up to 32 GiB or scan forever, and any
// bad header makes ListPackages return while its producer goroutine stays
// blocked forever. So the analyzer uses go-rpmdb for what it does well,
// parsing RPM headers, and reads the containers itself:
//
//   - Berkeley DB and NDB are walked in memory (preflight.go), with every
//     offset, chain and length checked;
//   - SQLite is read with the pure-Go modernc.org/sqlite driver
//     (read-only, immutable), "SELECT blob FROM Packages" as go-rpmdb does;
//   - every header blob is checked (checkHeader), then handed to go-rpmdb
//     alone, in a minimal one-package NDB file (see parseHeader): a bad
//     header loses that package only and leaks nothing.
//
// go-rpmdb and SQLite only open files by path: Analyze writes the SQLite
// database, and each header in turn, into a private temporary directory
// (os.MkdirTemp: 0700, files 0600) removed before it returns. This is the
// one place where the scanner writes image content to disk, bounded by
// Limits.MaxAnalyzedFileSize (plus one header at a time).
//
// Reported per package: Name, Version "version-release" ("epoch:version-
// release" when the epoch is > 0, as rpm -q --qf '%{EVR}' prints it),
// Arch, and the source package parsed from SOURCERPM
// ("openssl-1.1.1l-2.fc35.src.rpm" → openssl, 1:1.1.1l-2.fc35: the source
// package carries the binary's epoch). gpg-pubkey pseudo-packages are
// skipped. Ecosystem and purl are set in PostProcess from the OS, see
// Ecosystem and PURL.
package rpm

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
	"github.com/package-url/packageurl-go"
	_ "modernc.org/sqlite" // pure-Go "sqlite" database/sql driver (no cgo), used by sqliteBlobs

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// Database paths, in order of preference when an image holds several
// (a stale Berkeley DB next to the SQLite database it was migrated to).
var dbPaths = []string{
	"usr/lib/sysimage/rpm/rpmdb.sqlite",
	"var/lib/rpm/rpmdb.sqlite",
	"usr/lib/sysimage/rpm/Packages.db",
	"var/lib/rpm/Packages.db",
	"usr/lib/sysimage/rpm/Packages",
	"var/lib/rpm/Packages",
}

// maxPackages bounds the packages read from one database.
const maxPackages = 100_000

// Analyzer is the rpm analyzer.
type Analyzer struct{}

// New returns the rpm analyzer.
func New() *Analyzer { return &Analyzer{} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "rpm" }

// Version implements analyzer.Analyzer.
func (*Analyzer) Version() int { return 1 }

// Anchors implements analyzer.Anchored: the database is read through
// symlinks (Fedora's var/lib/rpm → ../../usr/lib/sysimage/rpm included).
func (*Analyzer) Anchors() []string { return []string{"var/lib/rpm", "usr/lib/sysimage/rpm"} }

// Match implements analyzer.Analyzer.
func (*Analyzer) Match(path string, _ fs.FileMode, _ int64) bool {
	var rest string
	switch {
	case strings.HasPrefix(path, "var/lib/rpm/"):
		rest = path[len("var/lib/rpm/"):]
	case strings.HasPrefix(path, "usr/lib/sysimage/rpm/"):
		rest = path[len("usr/lib/sysimage/rpm/"):]
	default:
		return false
	}
	return rest == "Packages" || rest == "Packages.db" || rest == "rpmdb.sqlite"
}

// Sniff implements analyzer.Sniffer: the file must start like an SQLite,
// NDB or Berkeley DB hash database (told by content, as go-rpmdb does).
func (*Analyzer) Sniff(path string, head []byte) bool {
	return formatOf(path, head) != formatUnknown
}

// Analyze implements analyzer.Analyzer.
func (*Analyzer) Analyze(ctx context.Context, f *analyzer.File) (*analyzer.Result, error) {
	format := formatOf(f.Path, f.Data)
	if format == formatUnknown {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "customs-rpmdb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // also removes SQLite -wal/-shm files

	var hdrs [][]byte
	if format == formatSQLite {
		hdrs, err = sqliteBlobs(dir, f.Data)
	} else {
		hdrs, err = blobs(format, f.Data)
	}
	if err != nil {
		return nil, nil // malformed or hostile: nothing trustworthy to report
	}
	var pkgs []report.Package
	for _, h := range hdrs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pi, err := parseHeader(dir, h)
		if err != nil {
			continue // this header only
		}
		if p, ok := toPackage(pi); ok {
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) == 0 {
		return nil, nil
	}
	return &analyzer.Result{Packages: pkgs}, nil
}

// sqliteBlobs writes an rpmdb.sqlite to dir and reads its header blobs
// (go-rpmdb's query, read-only). Blobs that fail checkHeader are left out.
func sqliteBlobs(dir string, data []byte) ([][]byte, error) {
	name := filepath.Join(dir, "rpmdb.sqlite")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+name+"?mode=ro&immutable=1")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query("SELECT blob FROM Packages")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		out   [][]byte
		total int
	)
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return nil, err
		}
		if len(out) >= maxPackages {
			return nil, errTooMany
		}
		if total += len(blob); total > len(data) {
			return nil, errTooLarge
		}
		if checkHeader(blob) == nil {
			out = append(out, blob)
		}
	}
	return out, rows.Err()
}

// parseHeader has go-rpmdb parse one header blob. go-rpmdb parses headers
// only while listing a database it opens by path, and its ListPackages
// returns on the first bad header while the goroutine producing entries
// stays blocked forever. So each blob goes alone into a minimal NDB
// database (one slot page, one blob): a bad header is then the last entry
// and costs neither a goroutine nor the other packages. A panic in header
// parsing (which runs in this goroutine) is turned into an error.
func parseHeader(dir string, blob []byte) (pi *rpmdb.PackageInfo, err error) {
	name := filepath.Join(dir, "one.ndb")
	if err := os.WriteFile(name, singleNDB(blob), 0o600); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			pi, err = nil, fmt.Errorf("rpmdb: panic: %v", r)
		}
	}()
	db, err := rpmdb.Open(name)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	infos, err := db.ListPackages()
	if err != nil {
		return nil, err
	}
	if len(infos) != 1 {
		return nil, errMalformed
	}
	return infos[0], nil
}

// singleNDB lays out an NDB database holding blob: the 32-byte header and
// one 4 KiB slot page (254 slots, the first one used), then the blob header
// and the blob at block 256 (NDB blocks are 16 bytes).
func singleNDB(blob []byte) []byte {
	le := binary.LittleEndian
	b := make([]byte, 4096, 4096+16+len(blob)+16)
	le.PutUint32(b[0:], ndbHeaderMagic)
	le.PutUint32(b[12:], 1) // SlotNPages
	for off := 32; off < 4096; off += 16 {
		le.PutUint32(b[off:], ndbSlotMagic)
	}
	le.PutUint32(b[36:], 1)                            // PkgIndex
	le.PutUint32(b[40:], 4096/16)                      // BlkOffset
	le.PutUint32(b[44:], uint32((16+len(blob)+15)/16)) // BlkCount
	b = le.AppendUint32(b, ndbBlobMagic)
	b = le.AppendUint32(b, 1) // PkgIndex
	b = le.AppendUint32(b, 0) // checksum: not verified by go-rpmdb
	b = le.AppendUint32(b, uint32(len(blob)))
	return append(b, blob...)
}

func toPackage(pi *rpmdb.PackageInfo) (report.Package, bool) {
	if pi == nil || pi.Name == "" || pi.Version == "" || pi.Name == "gpg-pubkey" {
		return report.Package{}, false
	}
	epoch := pi.EpochNum()
	p := report.Package{
		Name:    pi.Name,
		Version: evr(epoch, pi.Version, pi.Release),
		Arch:    pi.Arch,
	}
	if name, ver, rel, ok := parseSourceRPM(pi.SourceRpm); ok {
		p.SourceName, p.SourceVersion = name, evr(epoch, ver, rel)
	} else {
		p.SourceName, p.SourceVersion = p.Name, p.Version
	}
	return p, true
}

// evr formats [epoch:]version[-release].
func evr(epoch int, version, release string) string {
	v := version
	if release != "" {
		v += "-" + release
	}
	if epoch > 0 {
		v = strconv.Itoa(epoch) + ":" + v
	}
	return v
}

// parseSourceRPM splits "name-version-release.src.rpm" (also .nosrc.rpm).
func parseSourceRPM(s string) (name, version, release string, ok bool) {
	var found bool
	for _, suf := range []string{".src.rpm", ".nosrc.rpm"} {
		if rest, cut := strings.CutSuffix(s, suf); cut {
			s, found = rest, true
			break
		}
	}
	if !found {
		return "", "", "", false
	}
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return "", "", "", false
	}
	s, release = s[:i], s[i+1:]
	i = strings.LastIndexByte(s, '-')
	if i <= 0 {
		return "", "", "", false
	}
	name, version = s[:i], s[i+1:]
	if release == "" || version == "" {
		return "", "", "", false
	}
	return name, version, release, true
}

// PostProcess implements analyzer.PostProcessor: it keeps the packages of
// the preferred database when an image holds several (see dbPaths), and
// sets the OSV ecosystem and the purl of every package from the image's OS.
func (*Analyzer) PostProcess(_ context.Context, img *analyzer.Image, res *analyzer.Result) error {
	best := len(dbPaths)
	for i := range res.Packages {
		best = min(best, dbRank(res.Packages[i].Path))
	}
	kept := res.Packages[:0]
	for _, p := range res.Packages {
		if dbRank(p.Path) == best {
			kept = append(kept, p)
		}
	}
	res.Packages = kept
	eco := Ecosystem(img.OS)
	ns, distro := namespace(img.OS)
	for i := range res.Packages {
		p := &res.Packages[i]
		p.Ecosystem = eco
		p.PURL = PURL(ns, distro, p)
	}
	return nil
}

func dbRank(path string) int {
	for i, p := range dbPaths {
		if p == path {
			return i
		}
	}
	return len(dbPaths)
}

// Ecosystem maps an OS to the OSV ecosystem name of its RPM packages
// (https://ossf.github.io/osv-schema/, ecosystems of the "affected"
// package), as vulndb compares it (see vulndb's normalizeEcosystem):
//
//	almalinux VERSION_ID=9.3      → AlmaLinux:9
//	rocky     VERSION_ID=8.9      → Rocky Linux:8
//	rhel      VERSION_ID=9.3      → Red Hat:enterprise_linux:9
//	sles…     PRETTY_NAME="SUSE Linux Enterprise Server 15 SP5" → SUSE:Linux Enterprise Server 15 SP5
//	sl-micro  PRETTY_NAME="SUSE Linux Micro 6.0"                → SUSE:Linux Micro 6.0
//	opensuse… PRETTY_NAME="openSUSE Leap 15.5"                  → openSUSE:Leap 15.5
//	openEuler PRETTY_NAME="openEuler 22.03 (LTS-SP1)"           → openEuler:22.03-LTS-SP1
//	azurelinux VERSION_ID=3.0     → Azure Linux:3
//	mariner   VERSION_ID=2.0      → Azure Linux:2 (CBL-Mariner 2.0, published under Azure Linux)
//	mageia    VERSION_ID=9        → Mageia:9
//	photon    VERSION_ID=5.0      → Photon OS:5.0
//	anything else or no OS        → RPM
//
// Red Hat's OSV records are scoped to a product stream, a CPE such as
// "enterprise_linux:9::appstream" naming the repository an RPM ships in;
// os-release cannot tell which, so a RHEL image gets the major release
// only and vulndb reduces the records' streams to the same form (an
// approximation documented there). OSV names the SUSE and openSUSE
// releases after PRETTY_NAME without the vendor word; when PRETTY_NAME is
// missing the release is rebuilt from VERSION_ID ("15.5" → "15 SP5").
// SUSE files SLE 15 base packages under modules ("SUSE:Linux Enterprise
// Module for Basesystem 15 SP5"), which vulndb folds into the image's
// release. openEuler names its releases "22.03-LTS-SP1", as the
// parenthesised part of PRETTY_NAME says.
//
// "RPM" is not an OSV ecosystem: it marks RPM packages of distributions
// OSV has no ecosystem for (the osv-schema list has none for Fedora,
// CentOS and CentOS Stream, Amazon Linux or Oracle Linux), which are
// listed but never matched.
func Ecosystem(os report.OS) string {
	major, _, _ := strings.Cut(os.Version, ".")
	switch id := os.ID; {
	case id == "rhel" && major != "":
		return "Red Hat:enterprise_linux:" + major
	case id == "rhel":
		return "Red Hat"
	case id == "almalinux" && major != "":
		return "AlmaLinux:" + major
	case id == "almalinux":
		return "AlmaLinux"
	case id == "rocky" && major != "":
		return "Rocky Linux:" + major
	case id == "rocky":
		return "Rocky Linux"
	case id == "sles" || id == "sled" || id == "sles_sap" || id == "sle-micro" || id == "sle_hpc" || id == "sl-micro":
		if rel, ok := strings.CutPrefix(os.Name, "SUSE "); ok && rel != "" {
			return "SUSE:" + rel
		}
		if id == "sles" && os.Version != "" {
			v, sp, hasSP := strings.Cut(os.Version, ".")
			if n, err := strconv.Atoi(v); err == nil && n >= 16 {
				v = os.Version // SLES 16 is "16.0": no service packs
			} else if hasSP && sp != "0" {
				v += " SP" + sp
			}
			return "SUSE:Linux Enterprise Server " + v
		}
		return "SUSE"
	case strings.HasPrefix(id, "opensuse"):
		if rel, ok := strings.CutPrefix(os.Name, "openSUSE "); ok && rel != "" {
			return "openSUSE:" + rel
		}
		switch {
		case id == "opensuse-leap" && os.Version != "":
			return "openSUSE:Leap " + os.Version
		case id == "opensuse-tumbleweed":
			return "openSUSE:Tumbleweed"
		}
		return "openSUSE"
	case strings.EqualFold(id, "openeuler"):
		if rel := openEulerRelease(os); rel != "" {
			return "openEuler:" + rel
		}
		return "openEuler"
	case (id == "azurelinux" || id == "mariner") && major != "":
		return "Azure Linux:" + major
	case id == "azurelinux" || id == "mariner":
		return "Azure Linux"
	case id == "photon" && os.Version != "":
		return "Photon OS:" + os.Version
	case id == "mageia" && os.Version != "":
		return "Mageia:" + os.Version
	}
	return "RPM"
}

// openEulerRelease returns an openEuler release as OSV writes it:
// PRETTY_NAME "openEuler 22.03 (LTS-SP1)" → "22.03-LTS-SP1", "openEuler
// 24.03 (LTS)" → "24.03-LTS", "openEuler 23.09" → "23.09"; else VERSION_ID.
func openEulerRelease(os report.OS) string {
	if rest, ok := strings.CutPrefix(os.Name, "openEuler "); ok {
		ver, qual, hasQual := strings.Cut(rest, " ")
		qual = strings.TrimSuffix(strings.TrimPrefix(qual, "("), ")")
		if ver != "" && !strings.ContainsAny(ver, "()") {
			if hasQual && qual != "" && !strings.ContainsAny(qual, " ()") {
				return ver + "-" + qual
			}
			if !hasQual {
				return ver
			}
		}
	}
	return os.Version
}

// namespace returns the purl namespace and distro qualifier for an OS:
// the vendor names used in the vendors' own purls (pkg:rpm/redhat/…,
// pkg:rpm/suse/…, pkg:rpm/opensuse/…), else the os-release ID.
func namespace(os report.OS) (ns, distro string) {
	if os.ID != "" && os.Version != "" {
		distro = os.ID + "-" + os.Version
	}
	switch id := os.ID; {
	case id == "rhel":
		return "redhat", distro
	case id == "sles" || id == "sled" || id == "sles_sap" || id == "sle-micro" || id == "sle_hpc":
		return "suse", distro
	case strings.HasPrefix(id, "opensuse"):
		return "opensuse", distro
	case id == "amzn":
		return "amazon", distro
	case id == "ol":
		return "oracle", distro
	}
	return os.ID, distro
}

// PURL returns pkg:rpm/<namespace>/<name>@<version-release>?arch=<arch>&distro=<distro>&epoch=<epoch>
// (the purl version never carries the epoch: it is a qualifier).
func PURL(namespace, distro string, p *report.Package) string {
	version, epoch := p.Version, ""
	if e, vr, ok := strings.Cut(version, ":"); ok {
		version, epoch = vr, e
	}
	var q packageurl.Qualifiers
	if p.Arch != "" {
		q = append(q, packageurl.Qualifier{Key: "arch", Value: p.Arch})
	}
	if distro != "" {
		q = append(q, packageurl.Qualifier{Key: "distro", Value: distro})
	}
	if epoch != "" {
		q = append(q, packageurl.Qualifier{Key: "epoch", Value: epoch})
	}
	return packageurl.NewPackageURL(packageurl.TypeRPM, namespace, p.Name, version, q, "").ToString()
}
