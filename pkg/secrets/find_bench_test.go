package secrets_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchFile is one text Find is run on, with the path it has in an
// image.
type benchFile struct {
	path string
	data []byte
}

// readTree returns up to limit bytes of the files under dir whose names
// end in one of exts, as the analyzer sees them: whole files up to 2 MiB
// without a NUL byte (binary content is sniffed out before Find).
func readTree(dir, prefix string, exts []string, limit int) []benchFile {
	var out []benchFile
	total := 0
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || total >= limit {
			return filepath.SkipDir
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		ok := false
		for _, x := range exts {
			ok = ok || strings.HasSuffix(p, x)
		}
		if !ok {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 || len(b) > 2<<20 || bytes.IndexByte(b, 0) >= 0 {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, benchFile{path: prefix + filepath.ToSlash(rel), data: b})
		total += len(b)
		return nil
	})
	return out
}

// minifiedBundle is a minified-looking JavaScript bundle of about n
// bytes (long lines of short identifiers, as in
// pkg/inspect.BenchmarkScanImage) whose last line holds a token.
func minifiedBundle(n int) []byte {
	rng := rand.New(rand.NewPCG(7, 7))
	idents := strings.Fields("useState useEffect createElement render props children className onClick " +
		"dispatch reducer fetchJSON apiClient headers Authorization Bearer response status module exports " +
		"token secret password apiKey")
	var sb strings.Builder
	for sb.Len() < n-200 {
		fmt.Fprintf(&sb, "function %s%d(e,t){return e.%s(t,%q)}", idents[rng.IntN(len(idents))], rng.IntN(1e6),
			idents[rng.IntN(len(idents))], idents[rng.IntN(len(idents))])
		if rng.IntN(40) == 0 {
			sb.WriteByte('\n')
		}
	}
	sb.WriteString("\nconst githubToken=\"" + githubPAT + "\";\n")
	return []byte(sb.String())
}

// BenchmarkFind runs Find over realistic texts of an application image:
// Go sources, Python's standard library and npm's node_modules
// (JavaScript, JSON, markdown; both placed under app/, as application
// code: gitleaks' allowlist skips site-packages and node_modules paths),
// a 3 MB minified bundle and its source map, and the
// printable strings of a Go binary (text with long random-looking runs:
// the worst case for the decoding pass). MB/s is one core's throughput.
func BenchmarkFind(b *testing.B) {
	goroot := runtime.GOROOT()
	js := minifiedBundle(3 << 20)
	sets := []struct {
		name  string
		files func() []benchFile
	}{
		{"go-src", func() []benchFile {
			return readTree(filepath.Join(goroot, "src"), "app/src/", []string{".go", ".s", ".json", ".md"}, 16<<20)
		}},
		{"python", func() []benchFile {
			return readTree("/usr/lib/python3.11", "app/py/", []string{".py", ".cfg", ".txt"}, 16<<20)
		}},
		{"node_modules", func() []benchFile {
			return readTree("/usr/lib/node_modules", "app/web/", []string{".js", ".cjs", ".mjs", ".json", ".md", ".ts"}, 16<<20)
		}},
		{"minified", func() []benchFile {
			sm := []byte(`{"version":3,"sources":["src/app.js"],"sourcesContent":[` + fmt.Sprintf("%q", js) + `],"mappings":"AAAA"}`)
			return []benchFile{{"app/dist/main.js", js}, {"app/dist/main.js.map", sm}}
		}},
		{"binary-strings", func() []benchFile {
			exe, err := os.ReadFile(filepath.Join(goroot, "pkg/tool", runtime.GOOS+"_"+runtime.GOARCH, "vet"))
			if err != nil {
				return nil
			}
			// Printable runs of at least 4 bytes, one per line, as
			// `strings` prints them (a dump left in an image).
			var out []byte
			run := 0
			for i, c := range exe {
				if c >= 0x20 && c < 0x7f {
					run++
					continue
				}
				if run >= 4 {
					out = append(out, exe[i-run:i]...)
					out = append(out, '\n')
				}
				run = 0
			}
			return []benchFile{{"app/vet.strings", out[:min(len(out), 2<<20)]}}
		}},
	}
	e := newEngine(b)
	for _, s := range sets {
		files := s.files()
		var n int64
		for _, f := range files {
			n += int64(len(f.data))
		}
		b.Run(s.name, func(b *testing.B) {
			if n == 0 {
				b.Skip("no input on this host")
			}
			b.SetBytes(n)
			b.ReportAllocs()
			var findings int
			// CPU time is reported too: on a shared machine it varies far
			// less than wall time.
			cpu0, iters := cpuTime(), 0
			for b.Loop() {
				iters++
				findings = 0
				for _, f := range files {
					if e.PathAllowed(f.path) {
						continue
					}
					findings += len(e.Find(f.path, f.data, 100))
				}
			}
			b.ReportMetric(float64(findings), "findings")
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(iters), "cpu-s/op")
		})
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
