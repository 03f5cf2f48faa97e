package scan

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/customs-scan/customs/pkg/report"
)

// FuzzDecodeLayer decodes arbitrary layer cache entries: data itself, or
// (wrap) data as the gob payload behind the entry header, gzip-compressed
// as encodeLayer writes it, so that mutations reach the gob decoder past
// the gzip checksum. It checks that decodeLayer never panics, that its
// errors are errCacheEntry or "corrupt entry", that a decoded entry
// re-encodes to an equal one, and that layerFromCache (bottom layer and
// upper layer) never panics and fails only with "corrupt entry".
func FuzzDecodeLayer(f *testing.F) {
	var p report.Package
	var fi report.Finding
	fill(&testing.T{}, &p, 1)
	fill(&testing.T{}, &fi, 2)
	seeds := []*cachedLayer{
		{Format: cacheFormat},
		{
			Format: cacheFormat, DiffID: "sha256:" + strings.Repeat("ab", 32), Digests: []string{"sha256:" + strings.Repeat("cd", 32)},
			Entries: 3, Bytes: 4096,
			Files: []cachedFile{
				{Path: "var/lib/dpkg/status", Results: []cachedResult{{Analyzer: "dpkg", Packages: []report.Package{p, {Name: "bash", Version: "5.2"}}}}},
				{Path: "etc/os-release", Results: []cachedResult{{Analyzer: "osrelease", HasOS: true, OS: report.OS{ID: "debian", Version: "12"}, OSPriority: 2}}},
				{Path: "app/x.js", Results: []cachedResult{{Analyzer: "npm", Findings: []report.Finding{fi}}, {Analyzer: "gobinary"}}},
			},
			Paths: []string{"etc/os-release", "var/lib/dpkg/status"}, Dirs: []string{"etc", "var"},
			Whiteouts: []string{"tmp/x"}, Opaques: []string{"usr/lib"},
		},
		{Format: cacheFormat, Files: []cachedFile{{Path: "a"}, {Path: "a", Results: []cachedResult{{Analyzer: "nope"}}}}, Paths: []string{"../../x", ""}},
	}
	for _, c := range seeds {
		b, err := encodeLayer(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(false, b)
		zr, err := gzip.NewReader(bytes.NewReader(b[len(cacheMagic)+1:]))
		if err != nil {
			f.Fatal(err)
		}
		var raw bytes.Buffer
		if _, err := raw.ReadFrom(zr); err != nil {
			f.Fatal(err)
		}
		f.Add(true, raw.Bytes())
	}
	f.Add(false, []byte(cacheMagic+"\x01"))
	f.Add(false, []byte(cacheMagic+"\x02"))
	s := namedScan(f, "osrelease", "dpkg", "gobinary", "npm")
	f.Fuzz(func(t *testing.T, wrap bool, data []byte) {
		if wrap {
			var buf bytes.Buffer
			buf.WriteString(cacheMagic)
			buf.WriteByte(cacheFormat)
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(data)
			_ = zw.Close()
			data = buf.Bytes()
		}
		c, err := decodeLayer(data)
		if err != nil {
			if c != nil {
				t.Fatalf("decodeLayer returned an entry and %v", err)
			}
			if !errors.Is(err, errCacheEntry) && !strings.HasPrefix(err.Error(), "corrupt entry") {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		b, err := encodeLayer(c)
		if err != nil {
			t.Fatalf("a decoded entry does not encode: %v", err)
		}
		again, err := decodeLayer(b)
		if err != nil {
			t.Fatalf("a re-encoded entry does not decode: %v", err)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", again, c)
		}
		for _, index := range []int{0, 1} {
			if _, err := s.layerFromCache(c, index); err != nil && !strings.HasPrefix(err.Error(), "corrupt entry") {
				t.Fatalf("layerFromCache(%d): unexpected error %v", index, err)
			}
		}
	})
}
