package webhook_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/webhook"
)

var update = flag.Bool("update", false, "rewrite testdata/<source>/*.want.json from the current parsers")

// parsers maps each fixture directory under shared/fixtures to its parser.
var parsers = map[string]func([]byte) (webhook.Result, error){
	"distribution-v2": webhook.ParseDistribution,
	"distribution-v3": webhook.ParseDistribution,
	"harbor":          webhook.ParseHarbor,
	"ecr":             webhook.ParseECR,
}

// fixturesDir returns the shared fixtures directory. The repository root is
// the nearest ancestor of the package directory holding go.work; the shared
// material lives beside the repository (<root>/../shared), or inside it
// (<root>/shared) in some checkouts. The test is skipped only when neither
// exists.
func fixturesDir(tb testing.TB) string {
	tb.Helper()
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	root := ""
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			root = dir
			break
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	if root == "" {
		tb.Skipf("shared fixtures not found: no go.work above %s, so the repository root is unknown", wd)
	}
	candidates := []string{
		filepath.Join(root, "..", "shared", "fixtures"),
		filepath.Join(root, "shared", "fixtures"),
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			return filepath.Clean(c)
		}
	}
	tb.Skipf("shared fixtures not found: looked for %s; check out the shared material beside the repository", strings.Join(candidates, " and "))
	return ""
}

// fixture is one captured payload.
type fixture struct {
	dir  string // key of parsers, e.g. "distribution-v2"
	name string // path below dir without ".json", e.g. "retry/0001-push-layer-testbed_node-answered503"
	path string // absolute path of the payload
}

func (f fixture) String() string { return f.dir + "/" + f.name }

// wantPath is testdata/<source>/<fixture-name>.want.json.
func (f fixture) wantPath() string {
	return filepath.Join("testdata", f.dir, filepath.FromSlash(f.name)+".want.json")
}

// fixtures lists every payload of every known source, recursively.
func fixtures(tb testing.TB, root string) []fixture {
	tb.Helper()
	var out []fixture
	for dir := range parsers {
		base := filepath.Join(root, dir)
		err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(p, ".json") {
				return nil
			}
			rel, err := filepath.Rel(base, p)
			if err != nil {
				return err
			}
			out = append(out, fixture{dir: dir, name: filepath.ToSlash(strings.TrimSuffix(rel, ".json")), path: p})
			return nil
		})
		if err != nil {
			tb.Fatalf("list fixtures in %s: %v", base, err)
		}
	}
	if len(out) == 0 {
		tb.Fatalf("no fixtures under %s", root)
	}
	return out
}

// goldenJSON renders a parse outcome: the Result (with [] instead of null)
// or, for an error, {"Error": message}.
func goldenJSON(tb testing.TB, res webhook.Result, err error) []byte {
	tb.Helper()
	var v any
	if err != nil {
		v = struct{ Error string }{err.Error()}
	} else {
		if res.Events == nil {
			res.Events = []webhook.Event{}
		}
		if res.Skipped == nil {
			res.Skipped = []webhook.Skipped{}
		}
		v = res
	}
	b, merr := json.MarshalIndent(v, "", "  ")
	if merr != nil {
		tb.Fatal(merr)
	}
	return append(b, '\n')
}

// TestGolden parses every shared fixture and compares the outcome with its
// want file. Run with -update to rewrite the want files, then review the
// diff by hand.
func TestGolden(t *testing.T) {
	root := fixturesDir(t)
	seen := map[string]bool{}
	for _, f := range fixtures(t, root) {
		seen[filepath.Clean(f.wantPath())] = true
		t.Run(f.String(), func(t *testing.T) {
			body, err := os.ReadFile(f.path)
			if err != nil {
				t.Fatal(err)
			}
			res, perr := parsers[f.dir](body)
			if perr != nil && !errors.Is(perr, webhook.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", perr)
			}
			for i, e := range res.Events {
				if err := e.Validate(); err != nil {
					t.Errorf("Events[%d] does not validate: %v", i, err)
				}
			}
			got := goldenJSON(t, res, perr)
			if *update {
				if err := os.MkdirAll(filepath.Dir(f.wantPath()), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f.wantPath(), got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(f.wantPath())
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s\ngot:\n%s\nwant:\n%s", f, f.wantPath(), got, want)
			}
		})
	}
	// Every want file must belong to a fixture.
	err := filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".want.json") && !seen[filepath.Clean(p)] {
			t.Errorf("%s has no fixture under %s; delete it", p, root)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// TestIndexTSV checks the distribution fixtures against the independent
// summary in shared/fixtures/INDEX.tsv: a push whose target media type is a
// manifest or index is exactly one Event with the row's repository, tag,
// digest, media type and event id; any other row is exactly one Skipped
// with the row's event id.
func TestIndexTSV(t *testing.T) {
	root := fixturesDir(t)
	f, err := os.Open(filepath.Join(root, "INDEX.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = '\t'
	r.LazyQuotes = true
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, h := range []string{"file", "events", "action", "target_mediaType", "repository", "tag", "digest", "event_id"} {
		if _, ok := col[h]; !ok {
			t.Fatalf("INDEX.tsv has no %q column", h)
		}
	}
	n := 0
	for _, row := range rows[1:] {
		get := func(h string) string {
			v := row[col[h]]
			if v == "(absent)" || v == "(empty)" {
				return ""
			}
			return v
		}
		file := get("file")
		dir, _, _ := strings.Cut(file, "/")
		parse, ok := parsers[dir]
		if !ok {
			continue
		}
		n++
		t.Run(file, func(t *testing.T) {
			if get("events") != "1" {
				t.Skipf("row describes %s events; only single-event captures are checked", get("events"))
			}
			body, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
			if err != nil {
				t.Fatal(err)
			}
			res, err := parse(body)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			action, mt := get("action"), get("target_mediaType")
			if action == "push" && webhook.IsManifestMediaType(mt) {
				if len(res.Events) != 1 || len(res.Skipped) != 0 {
					t.Fatalf("got %d events and %d skipped, want 1 event", len(res.Events), len(res.Skipped))
				}
				e := res.Events[0]
				if e.Repository != get("repository") || e.Tag != get("tag") || e.Digest != get("digest") ||
					e.MediaType != mt || e.EventID != get("event_id") || e.Source != "distribution" {
					t.Errorf("got %+v, want row %q", e, row)
				}
				return
			}
			if len(res.Events) != 0 || len(res.Skipped) != 1 {
				t.Fatalf("got %d events and %d skipped, want 1 skipped", len(res.Events), len(res.Skipped))
			}
			wantReason := "action " + action
			if action == "push" {
				wantReason = "blob push"
			}
			if s := res.Skipped[0]; s.EventID != get("event_id") || s.Reason != wantReason {
				t.Errorf("got %+v, want {EventID:%s Reason:%s}", s, get("event_id"), wantReason)
			}
		})
	}
	if n == 0 {
		t.Fatal("INDEX.tsv lists no distribution fixtures")
	}
}

// TestFixtureFacts pins, independently of the want files, what a reader of
// the fixtures expects, so that a careless -update cannot bless a wrong
// result.
func TestFixtureFacts(t *testing.T) {
	root := fixturesDir(t)
	ts := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		file    string
		events  []webhook.Event
		skipped []webhook.Skipped
		errHas  string // non-empty: the parse must fail with ErrMalformed naming this
	}{
		{
			file: "distribution-v2/0003-push-manifest-testbed_debian-latest.json",
			events: []webhook.Event{{
				Source: "distribution", EventID: "781faad4-1efb-48b8-b501-f5539d588edc",
				Registry: "localhost:5000", Repository: "testbed/debian",
				Digest:    "sha256:6e3d7f910f1db7976dd42dca966c8d5d6525a03e0b813708c5b325ede094c338",
				Tag:       "latest",
				MediaType: "application/vnd.oci.image.manifest.v1+json",
				Timestamp: ts("2026-11-26T05:30:49.029608997Z"),
			}},
		},
		{
			file: "distribution-v2/0006-push-manifest-testbed_debian-docker-latest.json",
			events: []webhook.Event{{
				Source: "distribution", EventID: "c39e45ff-4436-41d2-bcb9-a27853c86817",
				Registry: "localhost:5000", Repository: "testbed/debian-docker",
				Digest:    "sha256:ec19389b4e8b84b29cdc259989b56ea9bd78644edb154b226eaa3a1ec1e4588c",
				Tag:       "latest",
				MediaType: "application/vnd.docker.distribution.manifest.v2+json",
				Timestamp: ts("2026-11-26T05:30:49.628797213Z"),
			}},
		},
		{
			file: "distribution-v2/0015-push-manifest-testbed_multiarch.json", // platform manifest, pushed by digest
			events: []webhook.Event{{
				Source: "distribution", EventID: "4d27595b-eb8c-4ffd-9c5d-f3d378e0f0ee",
				Registry: "localhost:5000", Repository: "testbed/multiarch",
				Digest:    "sha256:759acc9c39de5e0b6cdaa91f3ba9b98a992032a7ab003d6e0c37aca3692e720d",
				MediaType: "application/vnd.oci.image.manifest.v1+json",
				Timestamp: ts("2026-11-26T05:30:50.382868143Z"),
			}},
		},
		{
			file: "distribution-v2/0017-push-index-testbed_multiarch-latest.json",
			events: []webhook.Event{{
				Source: "distribution", EventID: "5240d237-216b-4d9b-b7f3-a6fbf3c93b4b",
				Registry: "localhost:5000", Repository: "testbed/multiarch",
				Digest:    "sha256:a9d4ac464e7dc67d408856e6990aab2587952de51fcb7817e62383eb87695268",
				Tag:       "latest",
				MediaType: "application/vnd.oci.image.index.v1+json",
				Timestamp: ts("2026-11-26T05:30:50.423807746Z"),
			}},
		},
		{
			file: "distribution-v3/0017-push-index-testbed_multiarch-latest.json",
			events: []webhook.Event{{
				Source: "distribution", EventID: "01a21656-191d-779c-8f92-91b54f26899e",
				Registry: "localhost:5001", Repository: "testbed/multiarch",
				Digest:    "sha256:a9d4ac464e7dc67d408856e6990aab2587952de51fcb7817e62383eb87695268",
				Tag:       "latest",
				MediaType: "application/vnd.oci.image.index.v1+json",
				Timestamp: ts("2026-11-26T05:31:11.005499516Z"),
			}},
		},
		{
			file:    "distribution-v2/0001-push-layer-testbed_debian.json",
			skipped: []webhook.Skipped{{EventID: "709d1f01-de2f-4276-82c0-4b8af1b58568", Reason: "blob push"}},
		},
		{
			file:    "distribution-v2/0018-pull-manifest-testbed_debian-latest.json",
			skipped: []webhook.Skipped{{EventID: "11809d97-0fbb-4f91-891f-60ab6eee5af5", Reason: "action pull"}},
		},
		{
			file:    "distribution-v2/0021-mount-layer-testbed_debian-copy.json",
			skipped: []webhook.Skipped{{EventID: "6f206cab-a527-4543-a23b-e5d9797b97f1", Reason: "action mount"}},
		},
		{
			file:    "distribution-v2/0031-delete-none-testbed_debian-copy-latest.json",
			skipped: []webhook.Skipped{{EventID: "4520d342-6781-4679-bbef-b3db1816b8f0", Reason: "action delete"}},
		},
		{
			file:    "distribution-v3/0029-delete-none-testbed_debian-v1.json", // v3 sends "mediaType":"", "digest":""
			skipped: []webhook.Skipped{{EventID: "01a21656-1a50-7c96-81e8-fc347b752b8b", Reason: "action delete"}},
		},
		{
			file:    "distribution-v2/retry/0002-push-layer-testbed_node-answered503.json",
			skipped: []webhook.Skipped{{EventID: "2c8596fc-8532-4f16-abec-8bcf85d211a4", Reason: "blob push"}},
		},
		{
			file: "harbor/push-artifact-by-digest.json",
			events: []webhook.Event{{
				Source: "harbor", Registry: "localhost", Repository: "harbor/alpine",
				Digest:    "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4",
				Timestamp: ts("2023-04-03T06:04:53Z"),
			}},
		},
		{
			file: "harbor/cloudevents-artifact-pushed.json",
			events: []webhook.Event{{
				Source: "harbor", EventID: "4b2f89a6-548d-4c12-9993-a1f5790b97d2",
				Registry: "harbor.dev", Repository: "library/busybox",
				Digest:    "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c",
				Timestamp: ts("2023-03-06T06:08:43Z"),
			}},
		},
		{
			file:    "harbor/cloudevents-artifact-pulled.json",
			skipped: []webhook.Skipped{{EventID: "4b2f89a6-548d-4c12-9993-a1f5790b97d2", Reason: "harbor event harbor.artifact.pulled"}},
		},
		{
			file:    "harbor/quota-exceed.json",
			skipped: []webhook.Skipped{{Reason: "harbor event QUOTA_EXCEED"}},
		},
		{
			file:    "harbor/scanning-completed.json",
			skipped: []webhook.Skipped{{Reason: "harbor event SCANNING_COMPLETED"}},
		},
		{
			file:    "ecr/image-action-delete.json",
			skipped: []webhook.Skipped{{EventID: "13cde686-328b-6117-af20-0e5566167482", Reason: "ecr action DELETE"}},
		},
		{
			// The AWS documentation example carries a 60-hex-digit digest,
			// which is not a sha256 digest: rejected, by design.
			file:   "ecr/image-action-push.json",
			errHas: "detail.image-digest",
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(tc.file)))
			if err != nil {
				t.Fatal(err)
			}
			dir, _, _ := strings.Cut(tc.file, "/")
			res, err := parsers[dir](body)
			if tc.errHas != "" {
				if !errors.Is(err, webhook.ErrMalformed) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("got error %v, want ErrMalformed naming %s", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, res, webhook.Result{Events: tc.events, Skipped: tc.skipped})
		})
	}
}
