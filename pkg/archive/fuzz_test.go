package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/archive"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// FuzzWalk walks arbitrary bytes as an archive (zip, tar, tar.gz, gzip,
// nested) with small limits and checks that the walk never fails on
// content (no error, no panic), that every entry stays inside its
// archive (name neither absolute nor with a ".." element; display path
// under the top-level name), that the limits hold (depth, entry size, entry count,
// decompressed bytes up to one read past the total), that a bomb names a
// path and a SHA-256, and that walking it again as a file on disk
// (WalkAt) sees the same entries and stats.
func FuzzWalk(f *testing.F) {
	lim := archive.Limits{MaxDepth: 3, MaxEntryBytes: 256 << 10, MaxTotalBytes: 1 << 20, MaxEntries: 200}
	jar := zipOf(f, "META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n", "com/example/A.class", "\xca\xfe\xba\xbe", "lib/inner.jar", string(zipOf(f, "x.txt", "deep")))
	tgz := scantest.Compress(f, scantest.Gzip, scantest.Tar(f,
		scantest.Reg("a.txt", "hello"),
		scantest.Dir("d"),
		scantest.Symlink("d/link", "../../etc/passwd"),
		scantest.Reg("../../etc/evil", "x"),
		scantest.Reg("/abs/path", "y"),
		scantest.Reg(`win\dir\f.txt`, "z"),
		scantest.File{Path: "app.jar", Content: jar},
	))
	for _, s := range []struct {
		name string
		data []byte
	}{
		{"a.zip", zipOf(f, "a.txt", strings.Repeat("A", 1000), "b/../../c.txt", "B", "/etc/x", "C")},
		{"empty.zip", zipOf(f)},
		{"app.war", zipOf(f, "WEB-INF/lib/x.jar", string(jar), "nested.tgz", string(tgz))},
		{"a.tgz", tgz},
		{"a.tar", scantest.Tar(f, scantest.Reg("a", "1"), scantest.File{Path: "n.zip", Content: jar})},
		{"x.gz", scantest.Compress(f, scantest.Gzip, []byte("single file"))},
		{"z.zip", zeroZip(f, 2<<20)},
		{"t.gz", scantest.Compress(f, scantest.Gzip, make([]byte, 2<<20))},
		{"sparse.tar", sparseTar(f)},
		{"junk", []byte("PK\x03\x04junk")},
		{`\.gz`, scantest.Compress(f, scantest.Gzip, []byte("single file"))},
	} {
		f.Add(s.name, true, s.data)
		f.Add(s.name, false, s.data)
	}
	f.Fuzz(func(t *testing.T, name string, wantAll bool, data []byte) {
		if name == "" || strings.Contains(name, "!/") {
			name = "f"
		}
		walk := func(fromDisk bool) ([]string, archive.Stats) {
			var seen []string
			v := archive.Visitor{
				Want: func(e *archive.Entry) bool { return wantAll },
				Visit: func(e *archive.Entry, b []byte) error {
					checkEntry(t, name, lim, e, b)
					sum := sha256.Sum256(b)
					seen = append(seen, fmt.Sprintf("%s %d %o %d %x", e.Path, e.Depth, e.Mode, e.Size, sum[:8]))
					return nil
				},
			}
			walkIt := func() (archive.Stats, error) { return archive.Walk(context.Background(), name, data, lim, v) }
			if fromDisk {
				walkIt = func() (archive.Stats, error) {
					return archive.WalkAt(context.Background(), name, bytes.NewReader(data), int64(len(data)), lim, v)
				}
			}
			st, err := walkIt()
			if err != nil {
				t.Fatalf("Walk (from disk: %v): %v", fromDisk, err)
			}
			return seen, st
		}
		seen, st := walk(false)
		if archive.Sniff(data) == archive.None && (st.Entries != 0 || st.Bytes != 0 || len(seen) != 0) {
			t.Fatalf("not an archive, yet stats %+v", st)
		}
		if st.Entries > lim.MaxEntries+1 || len(seen) > st.Entries {
			t.Fatalf("%d entries counted, %d visited, limit %d", st.Entries, len(seen), lim.MaxEntries)
		}
		if over := max(lim.MaxEntryBytes+1, 64<<10); st.Bytes > lim.MaxTotalBytes+over {
			t.Fatalf("%d bytes decompressed, limit %d", st.Bytes, lim.MaxTotalBytes)
		}
		if b := st.Bomb; b != nil {
			if sum, err := hex.DecodeString(b.SHA256); err != nil || len(sum) != 32 || b.Reason == "" || (b.Path != name && !strings.HasPrefix(b.Path, name+"!/")) {
				t.Fatalf("bad bomb %+v", b)
			}
		}
		// Again, as WalkAt reads an archive on disk: the same entries and stats.
		again, st2 := walk(true)
		if !slices.Equal(seen, again) || !reflect.DeepEqual(st, st2) {
			t.Fatalf("two walks differ:\n%q %+v\n%q %+v", seen, st, again, st2)
		}
	})
}

func checkEntry(t *testing.T, top string, lim archive.Limits, e *archive.Entry, b []byte) {
	t.Helper()
	if e.Depth < 1 || e.Depth > lim.MaxDepth {
		t.Fatalf("entry %q at depth %d, limit %d", e.Path, e.Depth, lim.MaxDepth)
	}
	if int64(len(b)) > lim.MaxEntryBytes {
		t.Fatalf("entry %q: %d bytes read, limit %d", e.Path, len(b), lim.MaxEntryBytes)
	}
	// e.Name may be "" or hold a backslash when it comes from the archive's
	// own file name (a single-file gzip named ".gz" or `a\b.gz` with no name
	// in its header): harmless, names only make display paths.
	if strings.HasPrefix(e.Name, "/") || slices.Contains(strings.Split(e.Name, "/"), "..") {
		t.Fatalf("entry name %q escapes its archive", e.Name)
	}
	if !strings.HasPrefix(e.Path, top+"!/") || !strings.HasSuffix(e.Path, "!/"+e.Name) || strings.Count(e.Path, "!/") < e.Depth {
		t.Fatalf("entry path %q (name %q, depth %d) is not under %q", e.Path, e.Name, e.Depth, top)
	}
	if !e.Mode.IsRegular() {
		t.Fatalf("entry %q is not a regular file: %v", e.Path, e.Mode)
	}
}

// sparseTar is a tar holding one GNU sparse file.
func sparseTar(t testing.TB) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: "sparse.bin", Mode: 0o644, Size: 4, Typeflag: tar.TypeReg, Format: tar.FormatPAX,
		PAXRecords: map[string]string{"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse.bin", "GNU.sparse.realsize": "1048576"}}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte("1\n0\n")); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzWalkZip walks arbitrary bytes with WalkZip as a jar reader does
// (reading every entry up to a small limit, opening every entry named like
// an archive) and checks that nothing fails on content, that the
// admission limits hold exactly (depth, archives, entries listed, bytes
// read, each read within its limit) and that walking twice sees the same.
func FuzzWalkZip(f *testing.F) {
	lim := archive.Limits{MaxDepth: 3, MaxEntryBytes: 256 << 10, MaxTotalBytes: 1 << 20, MaxEntries: 200, MaxArchives: 8}
	inner := zipOf(f, "META-INF/maven/g/a/pom.properties", "groupId=g\nartifactId=a\nversion=1\n")
	f.Add(zipOf(f, "META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n", "lib/inner.jar", string(inner), "lib/x.war", string(zipOf(f, "y.jar", string(inner)))))
	f.Add(append([]byte("#!/bin/sh\n"), zipOf(f, "a", "b")...))
	f.Add(zeroZip(f, 2<<20))
	f.Add([]byte("PK\x05\x06junk"))
	const readLimit = 64 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		walk := func() ([]string, archive.Stats) {
			var seen []string
			listed, archives := 0, 0
			st, err := archive.WalkZip(context.Background(), "f.jar", data, lim, func(z *archive.ZipArchive) error {
				if z.Depth >= lim.MaxDepth {
					t.Fatalf("archive %q at depth %d, limit %d", z.Path, z.Depth, lim.MaxDepth)
				}
				if z.Depth > 0 {
					archives++
				}
				listed += len(z.Files)
				for _, e := range z.Files {
					if archive.HasArchiveName(e.Name) {
						seen = append(seen, fmt.Sprintf("open %s: %v", e.Name, z.Open(e)))
						continue
					}
					b, err := z.Read(e, readLimit)
					if len(b) > readLimit {
						t.Fatalf("%s: %d bytes read, limit %d", e.Name, len(b), readLimit)
					}
					sum := sha256.Sum256(b)
					seen = append(seen, fmt.Sprintf("%s %v %x", e.Name, err, sum[:8]))
				}
				return nil
			})
			if err != nil {
				t.Fatalf("WalkZip: %v", err)
			}
			if listed > lim.MaxEntries || archives > lim.MaxArchives || st.Bytes > lim.MaxTotalBytes {
				t.Fatalf("%d entries, %d archives, stats %+v over the limits %+v", listed, archives, st, lim)
			}
			return seen, st
		}
		seen, st := walk()
		again, st2 := walk()
		if !slices.Equal(seen, again) || st != st2 {
			t.Fatalf("two walks differ:\n%q %+v\n%q %+v", seen, st, again, st2)
		}
	})
}
