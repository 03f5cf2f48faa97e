package archive_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"

	"github.com/customs-scan/customs/pkg/archive"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

func zipOf(t testing.TB, kv ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < len(kv); i += 2 {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: kv[i], Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type seen struct {
	path  string
	depth int
	data  string
}

// walkAll walks data wanting every entry and records what it sees. It
// also walks data as a file on disk (WalkAt), which must see the same.
func walkAll(t *testing.T, name string, data []byte, lim archive.Limits) ([]seen, archive.Stats) {
	t.Helper()
	var got []seen
	var sizes []int64 // declared, as Want sees them
	v := archive.Visitor{
		Want: func(e *archive.Entry) bool {
			sizes = append(sizes, e.Size)
			return true
		},
		Visit: func(e *archive.Entry, b []byte) error {
			s := string(b)
			if archive.Sniff(b) != archive.None {
				s = "<archive>"
			}
			got = append(got, seen{e.Path, e.Depth, s})
			return nil
		},
	}
	st, err := archive.Walk(context.Background(), name, data, lim, v)
	if err != nil {
		t.Fatal(err)
	}
	inMemory, inMemorySizes := got, sizes
	got, sizes = nil, nil
	f, err := os.CreateTemp(t.TempDir(), "archive")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	stAt, err := archive.WalkAt(context.Background(), name, f, int64(len(data)), lim, v)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, inMemory) || !reflect.DeepEqual(sizes, inMemorySizes) || !reflect.DeepEqual(stAt, st) {
		t.Errorf("%s from disk:\n%+v\n%+v\nin memory:\n%+v\n%+v", name, got, stAt, inMemory, st)
	}
	return inMemory, st
}

func TestSniff(t *testing.T) {
	tarball := scantest.Tar(t, scantest.Reg("a", "x"))
	for _, tc := range []struct {
		data []byte
		want archive.Format
	}{
		{zipOf(t, "a", "b"), archive.Zip},
		{zipOf(t), archive.Zip}, // empty: end of central directory only
		{scantest.Compress(t, scantest.Gzip, []byte("hi")), archive.Gzip},
		{tarball, archive.Tar},
		{tarball[:261], archive.None},
		{[]byte("PK"), archive.None},
		{[]byte("\x7fELF\x02\x01\x01"), archive.None},
		{nil, archive.None},
	} {
		if got := archive.Sniff(tc.data); got != tc.want {
			t.Errorf("Sniff(%.8q) = %v, want %v", tc.data, got, tc.want)
		}
	}
	for name, want := range map[string]bool{
		"a.zip": true, "A.JAR": true, "x.war": true, "x.ear": true, "x.tar": true, "x.tgz": true,
		"x.tar.gz": true, "x.gz": true, "x.zipx": false, "x.json": false, "gz": false, "": false,
	} {
		if got := archive.HasArchiveName(name); got != want {
			t.Errorf("HasArchiveName(%q) = %v", name, got)
		}
	}
}

func TestNesting(t *testing.T) {
	jar := zipOf(t, "a/b.txt", "in the jar", "/abs/../c.txt", "cleaned name")
	zipped := zipOf(t, "lib/x.jar", string(jar), "top.txt", "in the zip")
	tgz := scantest.Compress(t, scantest.Gzip, scantest.Tar(t,
		scantest.Dir("d"),
		scantest.Reg("d/z.zip", string(zipped)),
		scantest.Symlink("d/link", "/etc/passwd"),
		scantest.Exec("d/run", []byte("#!/bin/sh\n")),
	))
	gz := scantest.Compress(t, scantest.Gzip, tgz) // a .tgz compressed again: two gzip levels

	got, st := walkAll(t, "t.tgz", tgz, archive.Limits{})
	want := []seen{
		{"t.tgz!/d/z.zip", 1, "<archive>"},
		{"t.tgz!/d/z.zip!/lib/x.jar", 2, "<archive>"},
		{"t.tgz!/d/z.zip!/lib/x.jar!/a/b.txt", 3, "in the jar"},
		{"t.tgz!/d/z.zip!/lib/x.jar!/c.txt", 3, "cleaned name"},
		{"t.tgz!/d/z.zip!/top.txt", 2, "in the zip"},
		{"t.tgz!/d/run", 1, "#!/bin/sh\n"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if st.Bomb != nil || st.Truncated != "" || st.Entries != 8 {
		t.Errorf("stats %+v", st)
	}

	got, st = walkAll(t, "t.tgz", tgz, archive.Limits{MaxDepth: 2})
	if len(got) != 4 || !strings.Contains(st.Truncated, "depth limit 2") {
		t.Errorf("depth 2: %+v %+v", got, st)
	}
	got, _ = walkAll(t, "t.tgz.gz", gz, archive.Limits{})
	if len(got) == 0 || got[len(got)-1].path != "t.tgz.gz!/t.tgz!/d/run" {
		t.Errorf("gzip of a tgz: %+v", got)
	}
	got, st = walkAll(t, "t.tgz", tgz, archive.Limits{MaxArchives: 1})
	if len(got) != 4 || !strings.Contains(st.Truncated, "x.jar not opened: limit of 1 archives") {
		t.Errorf("1 archive: %+v %+v", got, st)
	}
	got, st = walkAll(t, "t.tgz", tgz, archive.Limits{MaxEntries: 3})
	if len(got) != 2 || !strings.Contains(st.Truncated, "entries") {
		t.Errorf("3 entries: %+v %+v", got, st)
	}
	if got, _ := walkAll(t, "t.tgz", tgz, archive.Limits{MaxDepth: -1}); len(got) != 0 {
		t.Errorf("depth -1: %+v", got)
	}
	if got, _ := walkAll(t, "plain.txt", []byte("not an archive"), archive.Limits{}); len(got) != 0 {
		t.Errorf("not an archive: %+v", got)
	}
}

// TestInMemory: entries of a plain tar and stored zip entries are slices
// of the archive (no copy), and read right.
func TestInMemory(t *testing.T) {
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	for _, kv := range [][2]string{{"s1.txt", "stored one"}, {"s2.txt", strings.Repeat("stored two ", 100)}} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: kv[0], Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, kv[1])
	}
	zw.Close()
	tarball := scantest.Tar(t, scantest.Reg("a.txt", "first"), scantest.Reg("in/s.jar", zbuf.String()), scantest.Reg("z.txt", "last"))
	got, st := walkAll(t, "x.tar", tarball, archive.Limits{})
	want := []seen{
		{"x.tar!/a.txt", 1, "first"},
		{"x.tar!/in/s.jar", 1, "<archive>"},
		{"x.tar!/in/s.jar!/s1.txt", 2, "stored one"},
		{"x.tar!/in/s.jar!/s2.txt", 2, strings.Repeat("stored two ", 100)},
		{"x.tar!/z.txt", 1, "last"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if st.Bytes != 0 {
		t.Errorf("%d bytes counted as decompressed, want 0", st.Bytes)
	}
}

// TestTopLevelZip: a zip walked from disk (WalkAt, in walkAll) reads its
// stored entries from the file, deflated ones through archive/zip, and
// opens the nested jars, as Walk does in memory.
func TestTopLevelZip(t *testing.T) {
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	inner := zipOf(t, "META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n", "a/A.class", "\xca\xfe\xba\xbe")
	for _, e := range []struct {
		name, content string
		method        uint16
	}{
		{"BOOT-INF/lib/inner.jar", string(inner), zip.Store},
		{"stored.txt", strings.Repeat("stored ", 50), zip.Store},
		{"deflated.txt", strings.Repeat("deflated ", 50), zip.Deflate},
	} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, e.content)
	}
	zw.Close()
	got, st := walkAll(t, "app.jar", zbuf.Bytes(), archive.Limits{})
	want := []seen{
		{"app.jar!/BOOT-INF/lib/inner.jar", 1, "<archive>"},
		{"app.jar!/BOOT-INF/lib/inner.jar!/META-INF/MANIFEST.MF", 2, "Manifest-Version: 1.0\n"},
		{"app.jar!/BOOT-INF/lib/inner.jar!/a/A.class", 2, "\xca\xfe\xba\xbe"},
		{"app.jar!/stored.txt", 1, strings.Repeat("stored ", 50)},
		{"app.jar!/deflated.txt", 1, strings.Repeat("deflated ", 50)},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if st.Bomb != nil || st.Truncated != "" {
		t.Errorf("stats %+v", st)
	}
	// A gzip file's declared size is its trailer's (read from the end).
	gz := scantest.Compress(t, scantest.Gzip, []byte("hello"))
	got, _ = walkAll(t, "notes.txt.gz", gz, archive.Limits{})
	if len(got) != 1 || got[0].data != "hello" {
		t.Errorf("gzip: %+v", got)
	}
	var declared int64
	archive.Walk(context.Background(), "notes.txt.gz", gz, archive.Limits{}, archive.Visitor{Want: func(e *archive.Entry) bool {
		declared = e.Size
		return false
	}})
	if declared != 5 {
		t.Errorf("gzip entry declared %d bytes, want 5", declared)
	}
}

func TestWantAndVisitor(t *testing.T) {
	z := zipOf(t, "a.txt", "A", "b.bin", "B", "c.zip", string(zipOf(t, "d.txt", "D")))
	var visited []string
	_, err := archive.Walk(context.Background(), "z", z, archive.Limits{}, archive.Visitor{
		Want:  func(e *archive.Entry) bool { return strings.HasSuffix(e.Name, ".txt") },
		Visit: func(e *archive.Entry, _ []byte) error { visited = append(visited, e.Path); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	// c.zip is read (and visited) because it is an archive, b.bin is not.
	if want := []string{"z!/a.txt", "z!/c.zip", "z!/c.zip!/d.txt"}; !slices.Equal(visited, want) {
		t.Errorf("visited %v, want %v", visited, want)
	}

	boom := errors.New("boom")
	_, err = archive.Walk(context.Background(), "z", z, archive.Limits{}, archive.Visitor{
		Want:  func(*archive.Entry) bool { return true },
		Visit: func(*archive.Entry, []byte) error { return boom },
	})
	if !errors.Is(err, boom) {
		t.Errorf("visitor error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := archive.Walk(ctx, "z", z, archive.Limits{}, archive.Visitor{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestCorrupt(t *testing.T) {
	z := zipOf(t, "a.txt", strings.Repeat("A", 1000), "b.txt", "B")
	tgz := scantest.Compress(t, scantest.Gzip, scantest.Tar(t, scantest.Reg("a.txt", strings.Repeat("A", 5000))))
	for name, data := range map[string][]byte{
		"truncated zip":       z[:len(z)/2],
		"zip with bad data":   append(append(bytes.Clone(z[:40]), bytes.Repeat([]byte{0xff}, 30)...), z[70:]...),
		"truncated tgz":       tgz[:len(tgz)/2],
		"gzip header only":    tgz[:10],
		"tar with bad header": append(bytes.Repeat([]byte("x"), 257), "ustar\x00garbage"...),
	} {
		t.Run(name, func(t *testing.T) {
			// No error, no panic: what can be read is visited.
			walkAll(t, "x", data, archive.Limits{})
		})
	}
}

// zeroZip is a one-entry zip of size zero bytes (deflate level 1).
func zeroZip(t testing.TB, size int64) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "zeros", Method: zip.Deflate})
	if err != nil {
		t.Fatal(err)
	}
	z := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(z)) {
		if _, err := w.Write(z[:min(left, int64(len(z)))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBombs(t *testing.T) {
	lim := archive.Limits{MaxEntryBytes: 1 << 20, MaxTotalBytes: 4 << 20}
	t.Run("zip entry declares too much", func(t *testing.T) {
		_, st := walkAll(t, "b.zip", zeroZip(t, 8<<20), lim)
		if st.Bomb == nil || st.Bomb.Path != "b.zip!/zeros" || st.Bytes != 0 {
			t.Errorf("stats %+v bomb %+v", st, st.Bomb)
		}
	})
	t.Run("zip entries declare too much in total", func(t *testing.T) {
		var kv []string
		for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
			kv = append(kv, n, strings.Repeat("\x00", 1<<20-1))
		}
		z := zipOf(t, kv...)
		_, st := walkAll(t, "b.zip", z, lim)
		if st.Bomb == nil || st.Bomb.Path != "b.zip" || !strings.Contains(st.Bomb.Reason, "in total") {
			t.Errorf("stats %+v bomb %+v", st, st.Bomb)
		}
	})
	t.Run("gzip stream", func(t *testing.T) {
		gz := scantest.Compress(t, scantest.Gzip, make([]byte, 8<<20))
		_, st := walkAll(t, "z.gz", gz, lim)
		if st.Bomb == nil || st.Bomb.Path != "z.gz!/z" || st.Bytes > 2<<20 {
			t.Errorf("stats %+v bomb %+v", st, st.Bomb)
		}
	})
	t.Run("tar.gz skipped entry", func(t *testing.T) {
		l := scantest.ZerosLayer(t, scantest.Gzip, "zeros", 8<<20)
		rc, _ := l.Compressed()
		tgz, _ := io.ReadAll(rc)
		_, st := walkAll(t, "z.tgz", tgz, lim)
		if st.Bomb == nil || st.Bomb.Path != "z.tgz" || st.Bytes > 5<<20 {
			t.Errorf("stats %+v bomb %+v", st, st.Bomb)
		}
	})
	t.Run("large incompressible archive is not a bomb", func(t *testing.T) {
		rnd := make([]byte, 3<<20)
		x := uint32(1)
		for i := range rnd {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			rnd[i] = byte(x)
		}
		tgz := scantest.Compress(t, scantest.Gzip, scantest.Tar(t, scantest.Reg("a", string(rnd[:1<<20-1])),
			scantest.Reg("b", string(rnd[1<<20:2<<20-1])), scantest.Reg("c", string(rnd)), scantest.Reg("d", "after")))
		got, st := walkAll(t, "big.tgz", tgz, lim)
		// a and b are read, c is skipped (over the entry limit) and its
		// decompression passes the total limit: d is never reached.
		if st.Bomb != nil || st.Truncated == "" || st.Bytes <= lim.MaxTotalBytes || len(got) != 2 {
			t.Errorf("got %d entries, stats %+v bomb %+v", len(got), st, st.Bomb)
		}
	})
}

// budget is an archive.Memory granting up to free bytes.
type budget struct{ free, held, most, refused int64 }

func (b *budget) Reserve(n int64) bool {
	if n > b.free-b.held {
		b.refused += n
		return false
	}
	b.held += n
	b.most = max(b.most, b.held)
	return true
}

func (b *budget) Unreserve(n int64) { b.held -= n }

// A walk charges its entry buffers to Limits.Memory as they grow and
// gives everything back at the end; a budget that cannot grant them
// changes nothing in what is seen.
func TestWalkChargesItsBuffers(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB, deflated to little
	jar := zipOf(t, "a/big.txt", big, "a/b.txt", "in the jar")
	tgz := scantest.Compress(t, scantest.Gzip, scantest.Tar(t, scantest.Reg("d/x.jar", string(jar))))

	want, _ := walkAll(t, "t.tgz", tgz, archive.Limits{})
	roomy := &budget{free: 64 << 20}
	got, _ := walkAll(t, "t.tgz", tgz, archive.Limits{Memory: roomy})
	if !slices.Equal(got, want) {
		t.Errorf("with a budget: %+v\nwithout: %+v", got, want)
	}
	// The jar (depth 1) and its 1 MiB entry (depth 2) are held at once.
	if roomy.most < int64(len(jar)+len(big)) || roomy.refused != 0 {
		t.Errorf("most held %d bytes, refused %d; want at least %d and none refused", roomy.most, roomy.refused, len(jar)+len(big))
	}
	if roomy.held != 0 {
		t.Errorf("%d bytes still held after the walk", roomy.held)
	}

	tight := &budget{free: 64 << 10}
	got, _ = walkAll(t, "t.tgz", tgz, archive.Limits{Memory: tight})
	if !slices.Equal(got, want) || tight.refused == 0 || tight.held != 0 {
		t.Errorf("tight budget: refused %d, held %d after; entries equal: %v", tight.refused, tight.held, slices.Equal(got, want))
	}

	// WalkZip too.
	zb := &budget{free: 64 << 20}
	if _, err := archive.WalkZip(context.Background(), "x.jar", jar, archive.Limits{Memory: zb}, func(z *archive.ZipArchive) error {
		for _, f := range z.Files {
			if _, err := z.Read(f, 2<<20); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if zb.most < int64(len(big)) || zb.held != 0 {
		t.Errorf("WalkZip: most held %d (want ≥ %d), %d still held", zb.most, len(big), zb.held)
	}
}
