package analyzertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// MaxFuzzFileBytes bounds the files FuzzFile hands to an analyzer (larger
// inputs are skipped, to keep a fuzzing run fast).
const MaxFuzzFileBytes = 4 << 20

// Seed is one file for FuzzFile's corpus.
type Seed struct {
	Path string
	Mode fs.FileMode // permission bits (and setuid/setgid/sticky); 0 means 0644
	Data []byte
}

// AddSeed adds s to f's corpus in FuzzFile's argument order.
func AddSeed(f *testing.F, s Seed) {
	f.Helper()
	mode := s.Mode
	if mode == 0 {
		mode = 0o644
	}
	f.Add(s.Path, fuzzMode(mode), s.Data)
}

// AddRootfsSeeds adds every regular file of dir/<case>/rootfs (the
// claircore-style cases Run reads) to f's corpus, and returns how many.
func AddRootfsSeeds(f *testing.F, dir string) int {
	f.Helper()
	cases, err := os.ReadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	n := 0
	for _, c := range cases {
		root := filepath.Join(dir, c.Name(), "rootfs")
		if !c.IsDir() {
			continue
		}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			AddSeed(f, Seed{Path: filepath.ToSlash(rel), Mode: info.Mode().Perm(), Data: data})
			n++
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			f.Fatal(err)
		}
	}
	return n
}

// fuzzMode encodes a file mode as the fuzz argument: permission bits
// plus 0o4000 setuid, 0o2000 setgid, 0o1000 sticky (as in tar headers).
func fuzzMode(m fs.FileMode) uint16 {
	v := uint16(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

func fileMode(v uint16) fs.FileMode {
	m := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// FuzzFile is the fuzz target of a file analyzer. Each input is one
// regular file (path, mode bits, content) that a is given as the walker
// gives it: the path cleaned and relative, Match, Sniff with the first
// SniffLen bytes, Analyze, Normalize, then PostProcess when a implements
// it. It checks that
//
//   - nothing panics;
//   - Analyze returns a nil error (the Analyzer contract: malformed
//     content yields what could be parsed, or nothing);
//   - Analyze does not modify the file's bytes (the walker hands the same
//     buffer to every analyzer);
//   - every package has a name, every finding a kind and a rule, and no
//     path in the result is absolute or climbs out of the image root
//     ("a!/b" archive paths are checked part by part);
//   - the result encodes to JSON, and Analyze is deterministic (the layer
//     cache relies on it).
//
// Each of checks is then given the file and the normalized result, for
// the analyzer's own invariants. Seeds come from AddRootfsSeeds and
// AddSeed.
func FuzzFile(f *testing.F, a analyzer.Analyzer, checks ...func(t *testing.T, file *analyzer.File, res *analyzer.Result)) {
	f.Helper()
	ctx := context.Background()
	sniffer, _ := a.(analyzer.Sniffer)
	post, _ := a.(analyzer.PostProcessor)
	f.Fuzz(func(t *testing.T, name string, mode uint16, data []byte) {
		if len(data) > MaxFuzzFileBytes {
			return
		}
		p := path.Clean("/" + name)[1:]
		if p == "" {
			return
		}
		m := fileMode(mode)
		size := int64(len(data))
		if !a.Match(p, m, size) {
			return
		}
		if sniffer != nil && !sniffer.Sniff(p, data[:min(len(data), analyzer.SniffLen)]) {
			return
		}
		analyze := func() (*analyzer.Result, []byte) {
			t.Helper()
			orig := bytes.Clone(data)
			res, err := a.Analyze(ctx, &analyzer.File{Path: p, Mode: m, Size: size, Data: data})
			if !bytes.Equal(data, orig) {
				t.Fatalf("Analyze(%q) modified the file's bytes", p)
			}
			if err != nil {
				t.Fatalf("Analyze(%q) = %v, want a nil error for any content", p, err)
			}
			if res.Empty() {
				return nil, nil
			}
			analyzer.Normalize(a, p, res)
			return res, canonicalJSON(t, res)
		}
		res, enc := analyze()
		if u, ok := a.(analyzer.ReaderAtUser); ok && u.ReadsAt(p, data[:min(len(data), analyzer.SniffLen)]) {
			// The scan may serve this file from disk (File.At): the
			// analyzer must find the same there.
			resAt, err := a.Analyze(ctx, &analyzer.File{Path: p, Mode: m, Size: size, At: bytes.NewReader(data)})
			if err != nil {
				t.Fatalf("Analyze(%q) from File.At = %v, want a nil error for any content", p, err)
			}
			var encAt []byte
			if !resAt.Empty() {
				analyzer.Normalize(a, p, resAt)
				encAt = canonicalJSON(t, resAt)
			}
			if !bytes.Equal(enc, encAt) {
				t.Fatalf("Analyze(%q) from File.At:\n%s\nfrom File.Data:\n%s", p, encAt, enc)
			}
		}
		if res == nil {
			return
		}
		CheckResult(t, res)
		for _, check := range checks {
			check(t, &analyzer.File{Path: p, Mode: m, Size: size, Data: data}, res)
		}
		if _, again := analyze(); !bytes.Equal(enc, again) {
			t.Fatalf("Analyze(%q) is not deterministic:\n%s\n%s", p, enc, again)
		}
		if post != nil {
			img := &analyzer.Image{Platform: "linux/amd64"}
			if res.OS != nil {
				img.OS = *res.OS
			} else {
				img.OS = report.OS{ID: "debian", Version: "12", Name: "Debian GNU/Linux"}
			}
			pr := &analyzer.Result{Packages: slices.Clone(res.Packages), Findings: slices.Clone(res.Findings)}
			if err := post.PostProcess(ctx, img, pr); err != nil {
				t.Fatalf("PostProcess: %v", err)
			}
			if _, err := json.Marshal(pr); err != nil {
				t.Fatalf("PostProcess result does not encode: %v", err)
			}
		}
	})
}

// CheckResult fails t when a normalized result breaks the invariants
// FuzzFile lists.
func CheckResult(t testing.TB, res *analyzer.Result) {
	t.Helper()
	for _, p := range res.Packages {
		if p.Name == "" {
			t.Fatalf("package without a name: %+v", p)
		}
		if !SafePath(p.Path) {
			t.Fatalf("package path %q escapes the image root: %+v", p.Path, p)
		}
	}
	for _, fi := range res.Findings {
		if fi.Kind == "" || fi.Rule == "" {
			t.Fatalf("finding without a kind or rule: %+v", fi)
		}
		if fi.Path != "" && !SafePath(fi.Path) {
			t.Fatalf("finding path %q escapes the image root: %+v", fi.Path, fi)
		}
	}
}

// SafePath reports whether p, a path in a result, stays inside the image
// root: not empty, relative, and without a ".." element. Archive paths
// ("app.jar!/BOOT-INF/lib/x.jar") pass as they are: "!" is an ordinary
// character of a file name, so "!/" proves nothing either way.
func SafePath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") {
		return false
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return false
		}
	}
	return true
}

// canonicalJSON encodes a result with its packages and findings sorted by
// their own encoding (the walker sorts them; their order is not part of
// the output).
func canonicalJSON(t testing.TB, res *analyzer.Result) []byte {
	t.Helper()
	enc := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("result does not encode: %v", err)
		}
		return b
	}
	var parts [][]byte
	for _, p := range res.Packages {
		parts = append(parts, enc(p))
	}
	slices.SortFunc(parts, bytes.Compare)
	var fparts [][]byte
	for _, fi := range res.Findings {
		fparts = append(fparts, enc(fi))
	}
	slices.SortFunc(fparts, bytes.Compare)
	out := enc(struct {
		OS   *report.OS
		Prio int
	}{res.OS, res.OSPriority})
	for _, b := range append(parts, fparts...) {
		out = append(append(out, '\n'), b...)
	}
	return out
}
