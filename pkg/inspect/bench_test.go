//go:build linux

package inspect_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// The images of these benchmarks are built from the files of the Debian
// system running them (real ELF binaries, libraries, documentation,
// dpkg's and debconf's databases, logs, Python's and Node's libraries,
// jars, Go's source tree), so that skip lists, sniffing and rules meet
// the content they meet in registries. Without a Debian host they skip.
//
//	go test -run x -bench ScanImage -benchtime 1x ./pkg/inspect/
//
// BenchmarkScanImage/debian is debian:12: the files of its 89 packages
// as dpkg lists them (about 115 MB, 49 MB compressed), debconf's
// database and dpkg's and apt's logs. BenchmarkScanImage/application
// adds the layers of a large application image (about 370 MB of files):
// Python's standard library and dist-packages, npm, the jars of
// usr/share/java, an application tree (Go's source tree under app/), a
// 3 MB JavaScript bundle with its source map. Each runs with every
// detector ("all"), every detector but secrets ("no-secrets"), the
// secrets analyzer alone ("secrets-only") and the misconfiguration
// analyzer alone ("misconfig-only", about the cost of the walk itself).

// debian12Packages are the packages of the debian:12 image.
var debian12Packages = strings.Fields(`adduser apt base-files base-passwd bash bsdutils coreutils dash debconf
debian-archive-keyring debianutils diffutils dpkg e2fsprogs findutils gcc-12-base gpgv grep gzip hostname
init-system-helpers libacl1 libapt-pkg6.0 libattr1 libaudit-common libaudit1 libblkid1 libbz2-1.0 libc-bin
libc6 libcap-ng0 libcap2 libcom-err2 libcrypt1 libdb5.3 libdebconfclient0 libext2fs2 libffi8 libgcc-s1
libgcrypt20 libgmp10 libgnutls30 libgpg-error0 libhogweed6 libidn2-0 liblz4-1 liblzma5 libmd0 libmount1
libnettle8 libp11-kit0 libpam-modules libpam-modules-bin libpam-runtime libpam0g libpcre2-8-0 libseccomp2
libselinux1 libsemanage-common libsemanage2 libsepol2 libsmartcols1 libss2 libstdc++6 libsystemd0
libtasn1-6 libtinfo6 libudev1 libunistring2 libuuid1 libxxhash0 libzstd1 login logsave mawk mount
ncurses-base ncurses-bin passwd perl-base sed sysvinit-utils tar tzdata usr-is-merged util-linux
util-linux-extra zlib1g`)

// layerBuilder writes one layer's tar from host files.
type layerBuilder struct {
	buf   bytes.Buffer
	tw    *tar.Writer
	seen  map[string]bool
	bytes int64
	files int
}

func newLayerBuilder() *layerBuilder {
	l := &layerBuilder{seen: map[string]bool{}}
	l.tw = tar.NewWriter(&l.buf)
	return l
}

// add writes a regular file (name relative to the image root).
func (l *layerBuilder) add(b *testing.B, name string, mode fs.FileMode, data []byte) {
	name = strings.TrimPrefix(name, "/")
	if l.seen[name] {
		return
	}
	l.seen[name] = true
	hdr := &tar.Header{Name: name, Mode: int64(mode.Perm()), Size: int64(len(data)), Typeflag: tar.TypeReg,
		ModTime: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Format: tar.FormatPAX}
	if err := l.tw.WriteHeader(hdr); err != nil {
		b.Fatal(err)
	}
	if _, err := l.tw.Write(data); err != nil {
		b.Fatal(err)
	}
	l.bytes += int64(len(data))
	l.files++
}

// addHost adds the host's regular file at abs under name; false when it
// is not a readable regular file.
func (l *layerBuilder) addHost(b *testing.B, abs, name string) bool {
	fi, err := os.Lstat(abs)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return false
	}
	l.add(b, name, fi.Mode(), data)
	return true
}

// addTree adds the regular files under the host directory dir as
// prefix/<relative path>, up to limit bytes.
func (l *layerBuilder) addTree(b *testing.B, dir, prefix string, limit int64) {
	start := l.bytes
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || l.bytes-start >= limit {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			l.addHost(b, p, filepath.ToSlash(filepath.Join(prefix, rel)))
		}
		return nil
	})
}

func (l *layerBuilder) layer(b *testing.B) v1.Layer {
	if err := l.tw.Close(); err != nil {
		b.Fatal(err)
	}
	return scantest.LayerFromTar(b, scantest.Gzip, l.buf.Bytes())
}

type benchImage struct {
	img        v1.Image
	bytes      int64
	files      int
	compressed int64
	layers     int
}

var (
	benchOnce   sync.Once
	benchDebian []v1.Layer
	benchDebBy  int64
	benchDebN   int
	benchSkip   string
	benchApp    *benchImage
	benchDeb    *benchImage
)

// debianLayers returns the layers of a debian:12 image built from the
// host's files.
func debianLayers(b *testing.B) ([]v1.Layer, int64, int) {
	benchOnce.Do(func() {
		if _, err := os.Stat("/var/lib/dpkg/status"); err != nil || runtime.GOOS != "linux" {
			benchSkip = "not a Debian host"
			return
		}
		base := newLayerBuilder()
		var stanzas []string
		status, _ := os.ReadFile("/var/lib/dpkg/status")
		want := map[string]bool{}
		for _, p := range debian12Packages {
			want[p] = true
		}
		for _, st := range strings.Split(string(status), "\n\n") {
			name, _, _ := strings.Cut(strings.TrimPrefix(st, "Package: "), "\n")
			if strings.HasPrefix(st, "Package: ") && want[name] {
				stanzas = append(stanzas, strings.TrimSpace(st))
			}
		}
		if len(stanzas) < len(debian12Packages)/2 {
			benchSkip = "the host lacks most of debian:12's packages"
			return
		}
		base.add(b, "var/lib/dpkg/status", 0o644, []byte(strings.Join(stanzas, "\n\n")+"\n"))
		for _, p := range debian12Packages {
			for _, list := range []string{p + ".list", p + ":amd64.list"} {
				f, err := os.Open("/var/lib/dpkg/info/" + list)
				if err != nil {
					continue
				}
				sc := bufio.NewScanner(f)
				for sc.Scan() {
					base.addHost(b, sc.Text(), sc.Text())
				}
				f.Close()
				stem := strings.TrimSuffix(list, ".list")
				for _, ext := range []string{".list", ".md5sums", ".conffiles", ".postinst", ".prerm", ".postrm", ".preinst", ".triggers"} {
					base.addHost(b, "/var/lib/dpkg/info/"+stem+ext, "var/lib/dpkg/info/"+stem+ext)
				}
			}
		}
		base.add(b, "etc/os-release", 0o644, []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n"))
		// What apt and debconf leave behind in the image.
		for _, p := range []string{"/var/cache/debconf/config.dat", "/var/cache/debconf/templates.dat",
			"/var/log/dpkg.log", "/var/log/apt/history.log", "/var/log/apt/term.log", "/var/log/alternatives.log",
			"/var/lib/dpkg/available", "/var/lib/dpkg/diversions", "/var/lib/dpkg/statoverride"} {
			base.addHost(b, p, p)
		}
		benchDebBy, benchDebN = base.bytes, base.files
		benchDebian = []v1.Layer{base.layer(b)}
	})
	if benchSkip != "" {
		b.Skip(benchSkip)
	}
	return benchDebian, benchDebBy, benchDebN
}

func imageOf(b *testing.B, layers []v1.Layer, n int64, files int) *benchImage {
	bi := &benchImage{img: scantest.Image(b, layers...), bytes: n, files: files, layers: len(layers)}
	for _, l := range layers {
		s, _ := l.Size()
		bi.compressed += s
	}
	return bi
}

// bundle returns a minified-looking JavaScript bundle of n bytes whose
// last line holds a token, and its source map.
func bundle(n int) (js, sourceMap []byte) {
	rng := rand.New(rand.NewPCG(7, 7))
	idents := strings.Fields("useState useEffect createElement render props children className onClick " +
		"dispatch reducer fetchJSON apiClient headers Authorization Bearer response status module exports")
	var sb strings.Builder
	for sb.Len() < n-200 {
		fmt.Fprintf(&sb, "function %s%d(e,t){return e.%s(t,%q)}", idents[rng.IntN(len(idents))], rng.IntN(1e6),
			idents[rng.IntN(len(idents))], idents[rng.IntN(len(idents))])
		if rng.IntN(40) == 0 {
			sb.WriteByte('\n')
		}
	}
	sb.WriteString("\nconst githubToken=\"ghp_Zq8Lr2Xv9Tb4Nc6Md1Pw7Ks3Hy5Fj0GaUeWi\";\n")
	js = []byte(sb.String())
	sourceMap = []byte(`{"version":3,"sources":["src/app.js"],"sourcesContent":[` + fmt.Sprintf("%q", sb.String()) + `],"mappings":"AAAA"}`)
	return js, sourceMap
}

func benchImages(b *testing.B) (deb, app *benchImage) {
	layers, n, files := debianLayers(b)
	if benchDeb == nil {
		benchDeb = imageOf(b, layers, n, files)
	}
	if benchApp == nil {
		all := slices.Clone(layers)
		total, count := n, files
		add := func(l *layerBuilder) {
			if l.files == 0 {
				return
			}
			total += l.bytes
			count += l.files
			all = append(all, l.layer(b))
		}
		py := newLayerBuilder()
		py.addTree(b, "/usr/lib/python3.11", "usr/lib/python3.11", 80<<20)
		py.addTree(b, "/usr/lib/python3/dist-packages", "usr/lib/python3/dist-packages", 80<<20)
		add(py)
		node := newLayerBuilder()
		node.addTree(b, "/usr/lib/node_modules", "usr/local/lib/node_modules", 40<<20)
		add(node)
		jars := newLayerBuilder()
		matches, _ := filepath.Glob("/usr/share/java/*.jar")
		for _, m := range matches {
			if jars.bytes < 40<<20 {
				jars.addHost(b, m, "app/lib/"+filepath.Base(m))
			}
		}
		add(jars)
		src := newLayerBuilder()
		src.addTree(b, filepath.Join(runtime.GOROOT(), "src"), "app/src", 200<<20)
		js, sm := bundle(3 << 20)
		src.add(b, "app/dist/main.js", 0o644, js)
		src.add(b, "app/dist/main.js.map", 0o644, sm)
		add(src)
		benchApp = imageOf(b, all, total, count)
	}
	return benchDeb, benchApp
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CUSTOMS_BENCH_SAVE=DIR writes the two images as docker-save tarballs
// (DIR/debian.tar, DIR/application.tar) for `customs scan --input`, the
// decode floor tool and peers (scripts/bench/profile.sh, issue 13).
var saveOnce sync.Once

func BenchmarkScanImage(b *testing.B) {
	deb, app := benchImages(b)
	if dir := os.Getenv("CUSTOMS_BENCH_SAVE"); dir != "" {
		saveOnce.Do(func() {
			for file, img := range map[string]*benchImage{"debian.tar": deb, "application.tar": app} {
				tag, err := name.NewTag("customs-bench/" + strings.TrimSuffix(file, ".tar") + ":host")
				if err == nil {
					err = tarball.WriteToFile(filepath.Join(dir, file), tag, img.img)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, im := range []struct {
		name string
		img  *benchImage
	}{{"debian", deb}, {"application", app}} {
		for _, det := range []struct {
			name string
			sel  []string
		}{
			{"all", nil},
			{"no-secrets", []string{inspect.DetectorPackages, inspect.DetectorMalware, inspect.DetectorMisconfig}},
			// The secrets analyzer alone, and a walk with only a cheap
			// analyzer: their difference is the secrets analyzer's own
			// cost, without the other analyzers' noise.
			{"secrets-only", []string{inspect.DetectorSecrets}},
			{"misconfig-only", []string{inspect.DetectorMisconfig}},
		} {
			b.Run(im.name+"/"+det.name, func(b *testing.B) {
				e, err := inspect.NewEngine(inspect.EngineConfig{Detectors: det.sel})
				if err != nil {
					b.Fatal(err)
				}
				b.Logf("%s: %d layers, %d files, %.1f MB of file content, %.1f MB compressed",
					im.name, im.img.layers, im.img.files, float64(im.img.bytes)/1e6, float64(im.img.compressed)/1e6)
				b.SetBytes(im.img.bytes)
				var res *scan.Result
				// CPU time is reported too: on a shared machine it varies far
				// less than wall time.
				cpu0, n := cpuTime(), 0
				for b.Loop() {
					if res, err = e.Options().Scanner.Image(context.Background(), im.img.img); err != nil {
						b.Fatal(err)
					}
					n++
				}
				b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(n), "cpu-s/op")
				secrets, bundleToken := 0, 0
				for _, f := range res.Findings {
					if f.Kind == report.KindSecret {
						secrets++
						if f.Path == "app/dist/main.js" {
							bundleToken = 1
						}
					}
				}
				b.ReportMetric(float64(len(res.Packages)), "packages")
				b.ReportMetric(float64(secrets), "secrets")
				// 1 when the token at the end of the 3 MB bundle was found.
				b.ReportMetric(float64(bundleToken), "bundle-token")
			})
		}
	}
}

// BenchmarkNewEngine is what every `customs scan` process pays before
// its first layer: building the engine with every detector (rule sets
// compiled, matchers built). Issue 13, goal 4.
func BenchmarkNewEngine(b *testing.B) {
	for b.Loop() {
		if _, err := inspect.NewEngine(inspect.EngineConfig{}); err != nil {
			b.Fatal(err)
		}
	}
}
