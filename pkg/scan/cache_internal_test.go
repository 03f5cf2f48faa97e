package scan

import (
	"context"
	"fmt"
	"io/fs"
	"reflect"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// named is an analyzer that is only a name: cache entries name the
// analyzer of each result, and decoding them needs nothing more.
type named string

func (n named) Name() string                                                    { return string(n) }
func (named) Version() int                                                      { return 1 }
func (named) Match(string, fs.FileMode, int64) bool                             { return false }
func (named) Analyze(context.Context, *analyzer.File) (*analyzer.Result, error) { return nil, nil }

// namedScan is the state of a scan with analyzers of these names.
func namedScan(tb testing.TB, names ...string) *imageScan {
	tb.Helper()
	as := make([]analyzer.Analyzer, len(names))
	for i, n := range names {
		as[i] = named(n)
	}
	o, err := buildOptions([]Option{WithAnalyzers(as...)})
	if err != nil {
		tb.Fatal(err)
	}
	return newImageScan(o)
}

// fill sets every field of the struct v points to a distinct non-zero
// value, so that a field the encoding drops shows up (fields added to
// report types later included).
func fill(t *testing.T, v any, seed int) {
	t.Helper()
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		if !f.CanSet() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString(fmt.Sprintf("%s-%d ü\x00\n", rv.Type().Field(i).Name, seed))
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.SetInt(int64(seed*100 + i + 1))
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(uint64(seed*100 + i + 1))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Float32, reflect.Float64:
			f.SetFloat(float64(seed) + 0.5)
		case reflect.Slice:
			if f.Type().Elem().Kind() == reflect.String {
				f.Set(reflect.ValueOf([]string{fmt.Sprint("a", seed), "b"}).Convert(f.Type()))
				continue
			}
			t.Fatalf("fill: %s.%s: slice of %s not handled; extend fill", rv.Type(), rv.Type().Field(i).Name, f.Type().Elem())
		default:
			t.Fatalf("fill: %s.%s: %s not handled; extend fill", rv.Type(), rv.Type().Field(i).Name, f.Kind())
		}
	}
}

// Entries round-trip exactly, every field of report.Package and
// report.Finding included.
func TestCachedLayerRoundTrip(t *testing.T) {
	var p1, p2 report.Package
	var f1 report.Finding
	var os1 report.OS
	fill(t, &p1, 1)
	fill(t, &p2, 2)
	fill(t, &f1, 3)
	fill(t, &os1, 4)
	in := &cachedLayer{
		Format:  cacheFormat,
		DiffID:  "sha256:" + fmt.Sprintf("%064x", 1),
		Digests: []string{"sha256:" + fmt.Sprintf("%064x", 2)},
		Entries: 12,
		Bytes:   34567,
		Files: []cachedFile{
			{Path: "a", Results: []cachedResult{
				{Analyzer: "dpkg", Packages: []report.Package{p1, p2}, OSPriority: 3},
				{Analyzer: "npm", Findings: []report.Finding{f1}},
			}},
			{Path: "etc/os-release", Results: []cachedResult{{Analyzer: "osrelease", HasOS: true, OS: os1, OSPriority: 1}}},
			// A zero OS is still an OS.
			{Path: "usr/lib/os-release", Results: []cachedResult{{Analyzer: "osrelease", HasOS: true}}},
		},
		Paths:     []string{"a", "b/c"},
		Dirs:      []string{"b"},
		Whiteouts: []string{"x/y"},
		Opaques:   []string{"."},
		Links:     []cachedLink{{Path: "etc/os-release", Target: "../usr/lib/os-release"}, {Path: "b/d", Target: "/x"}},
	}
	b, err := encodeLayer(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeLayer(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}

	s := namedScan(t, "osrelease", "dpkg", "gobinary", "npm")
	lo, err := s.layerFromCache(out, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r := lo.files["usr/lib/os-release"].results[0].res; r.OS == nil || *r.OS != (report.OS{}) || r.Empty() {
		t.Errorf("zero OS did not survive: %+v", r)
	}
	if !lo.hasEntry(s.pathHashes("b").self, true) || !lo.hasEntry(s.pathHashes("b/c").self, false) {
		t.Error("entries not rebuilt")
	}
	if want := []link{{"etc/os-release", "../usr/lib/os-release"}, {"b/d", "/x"}}; !reflect.DeepEqual(lo.links, want) {
		t.Errorf("links = %+v, want %+v", lo.links, want)
	}
	if !lo.below(s.seed, "b") || !lo.below(s.seed, ".") || lo.below(s.seed, "a") || lo.below(s.seed, "b/c") {
		t.Error("entry directories not rebuilt")
	}
	ph := s.pathHashes("x/y/z")
	if !lo.hides(&ph, false) {
		t.Error("whiteout of x/y does not hide x/y/z")
	}

	out.Files[0].Results[0].Analyzer = "no-such-analyzer"
	if _, err := s.layerFromCache(out, 1); err == nil {
		t.Error("entry naming an unknown analyzer was accepted")
	}
}
