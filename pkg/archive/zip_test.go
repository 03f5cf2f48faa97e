package archive_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/archive"
)

// tree walks data with WalkZip, reading every entry named *.txt and
// opening every entry named *.jar, and records what it saw, in order:
// "path@depth name=content", "open path: err", "read path: err".
func tree(t *testing.T, data []byte, lim archive.Limits) ([]string, archive.Stats) {
	t.Helper()
	var got []string
	st, err := archive.WalkZip(context.Background(), "top.jar", data, lim, func(z *archive.ZipArchive) error {
		got = append(got, fmt.Sprintf("%s@%d", z.Path, z.Depth))
		for _, f := range z.Files {
			switch {
			case strings.HasSuffix(f.Name, ".txt"):
				b, err := z.Read(f, 1<<20)
				if err != nil {
					got = append(got, fmt.Sprintf("read %s: %v", f.Name, err))
					continue
				}
				got = append(got, f.Name+"="+string(b))
			case strings.HasSuffix(f.Name, ".jar"):
				if err := z.Open(f); err != nil {
					got = append(got, fmt.Sprintf("open %s: %v", f.Name, err))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, st
}

func TestWalkZip(t *testing.T) {
	inner := zipOf(t, "c.txt", "C")
	mid := zipOf(t, "b.txt", "B", "lib/inner.jar", string(inner), "plain.jar", "not a zip at all, but long enough")
	top := append([]byte("#!/bin/sh\nexec java -jar \"$0\"\n"), zipOf(t, "a.txt", "A", "lib/mid.jar", string(mid), "z.txt", "Z")...)
	got, st := tree(t, top, archive.Limits{})
	want := []string{
		"top.jar@0", "a.txt=A",
		"top.jar!/lib/mid.jar@1", "b.txt=B",
		"top.jar!/lib/mid.jar!/lib/inner.jar@2", "c.txt=C",
		"z.txt=Z", // plain.jar was read, is no zip: not walked, no error
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// Every byte read counts, the nested archives' too.
	if wantBytes := int64(len("ABCZ") + len(mid) + len(inner) + len("not a zip at all, but long enough")); st.Bytes != wantBytes || st.Entries != 7 {
		t.Errorf("stats %+v, want %d bytes, 7 entries", st, wantBytes)
	}
	if got, _ := tree(t, []byte("not a zip"), archive.Limits{}); len(got) != 0 {
		t.Errorf("not a zip: %q", got)
	}
}

func TestWalkZipLimits(t *testing.T) {
	inner := zipOf(t, "c.txt", "C")
	mid := zipOf(t, "b.txt", "B", "inner.jar", string(inner))
	top := zipOf(t, "a.txt", "A", "mid.jar", string(mid), "big.txt", strings.Repeat("x", 1000), "z.txt", "Z")
	for _, tc := range []struct {
		name string
		lim  archive.Limits
		want []string
	}{
		{"depth", archive.Limits{MaxDepth: 2}, []string{"top.jar@0", "a.txt=A", "top.jar!/mid.jar@1", "b.txt=B",
			"open inner.jar: archive: limit reached", "big.txt=" + strings.Repeat("x", 1000), "z.txt=Z"}},
		{"archives", archive.Limits{MaxArchives: 1}, []string{"top.jar@0", "a.txt=A", "top.jar!/mid.jar@1", "b.txt=B",
			"open inner.jar: archive: limit reached", "big.txt=" + strings.Repeat("x", 1000), "z.txt=Z"}},
		{"entry bytes", archive.Limits{MaxEntryBytes: 100}, []string{"top.jar@0", "a.txt=A",
			"open mid.jar: archive: limit reached", "big.txt=" + strings.Repeat("x", 1000), "z.txt=Z"}},
		// Admission: big.txt does not fit what is left, z.txt still does.
		{"total bytes", archive.Limits{MaxTotalBytes: int64(len(mid) + 1000)}, []string{"top.jar@0", "a.txt=A",
			"top.jar!/mid.jar@1", "b.txt=B", "top.jar!/mid.jar!/inner.jar@2", "c.txt=C",
			"read big.txt: archive: limit reached", "z.txt=Z"}},
		// The listing stops at the limit: mid.jar lists nothing.
		{"entries", archive.Limits{MaxEntries: 2}, []string{"top.jar@0", "a.txt=A", "top.jar!/mid.jar@1"}},
	} {
		got, st := tree(t, top, tc.lim)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, tc.want)
		}
		if tc.name == "entries" && st.Truncated == "" {
			t.Errorf("entries: not truncated: %+v", st)
		}
	}
}

func TestWalkZipLiar(t *testing.T) {
	// An entry declaring fewer bytes than it holds is not read past the
	// limit (archive/zip fails it; the limit is the last fence).
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	body := strings.Repeat("y", 5000)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "liar.txt", Method: zip.Store, CompressedSize64: 5000, UncompressedSize64: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	var readErr error
	_, err = archive.WalkZip(context.Background(), "x.zip", data, archive.Limits{}, func(z *archive.ZipArchive) error {
		z.Files[0].UncompressedSize64 = 10 // as a lying directory would say
		_, readErr = z.Read(z.Files[0], 100)
		return nil
	})
	if err != nil || readErr == nil || errors.Is(readErr, context.Canceled) {
		t.Errorf("walk %v, read %v: want a read error", err, readErr)
	}
}

func TestWalkZipContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	_, err := archive.WalkZip(ctx, "x.zip", zipOf(t, "a.txt", "A"), archive.Limits{}, func(*archive.ZipArchive) error {
		called = true
		return nil
	})
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("err %v, called %v", err, called)
	}
}
