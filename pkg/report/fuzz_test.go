package report_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
)

// FuzzNormalize decodes arbitrary report JSON (what results reads from a
// report event), normalizes it and caps its findings. It checks that
// nothing panics; that a normalized report encodes with [] and never null
// for every list the v1 contract names (aliases of each vulnerability
// included); that Normalize is idempotent and the encoding round-trips;
// and that CapFindings keeps at most perRule findings of each (kind,
// rule) plus one summary entry per capped rule, counting the rest in
// FindingsOmitted.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"schema_version":"v1","artifact":{"registry":"r","repository":"a/b","digest":"sha256:00","tags":null},"status":"complete",` +
			`"started_at":"2024-01-01T00:00:00+02:00","finished_at":"2024-01-01T00:00:01.123456789Z","os":{"id":"debian","version":"12"},` +
			`"layers":[{"digest":"sha256:1","diff_id":"sha256:2","size":3}],"packages":[{"name":"bash","version":"5.2"}],` +
			`"vulnerabilities":[{"id":"CVE-1","aliases":null,"package":"bash"},{"id":"CVE-2","aliases":["A"]}],` +
			`"ignored_vulnerabilities":[{"id":"CVE-3","status":"not_affected","source":"vex"}],"vulnerability_db":{"status":"","built_at":"2024-01-01T00:00:00Z"},` +
			`"findings":[{"kind":"secret","rule":"r","severity":"HIGH","path":"a"},{"kind":"secret","rule":"r","path":"b"},{"kind":"secret","rule":"r","path":"c"},{"kind":"malware","rule":"r"}],` +
			`"verdict":"warn","manifests":null,"requested_at":"2024-01-01T00:00:00Z","findings_omitted":2,"latest_attempt":{"status":"failed","error":"x","finished_at":"0001-01-01T00:00:00Z"}}`,
		`{"Findings":[{"KIND":"a","Rule":"b"}],"findings":[{"kind":"a","rule":"b"}]}`,
		`{"artifact":{"digest":"\ud800\u0000"},"packages":[],"error":"\xff"}`,
	} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, data []byte, perRule uint8) {
		var r report.Report
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		r.Normalize()
		enc := encode(t, &r)
		checkNoNullLists(t, enc)
		r.Normalize()
		if again := encode(t, &r); !bytes.Equal(again, enc) {
			t.Fatalf("Normalize is not idempotent:\n%s\n%s", enc, again)
		}
		var back report.Report
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("normalized report does not decode: %v\n%s", err, enc)
		}
		back.Normalize()
		if again := encode(t, &back); !bytes.Equal(again, enc) {
			t.Fatalf("round trip:\n%s\n%s", enc, again)
		}

		n := int(perRule%8) + 1
		type key struct{ kind, rule string }
		counts := map[key]int{}
		for _, fi := range r.Findings {
			counts[key{fi.Kind, fi.Rule}]++
		}
		wantLen, wantOmitted := 0, 0
		for _, c := range counts {
			wantLen += min(c, n)
			if c > n {
				wantLen++
				wantOmitted += c - n
			}
		}
		before, omitted := len(r.Findings), r.FindingsOmitted
		r.CapFindings(n)
		if before <= n {
			wantLen, wantOmitted = before, 0
		}
		if len(r.Findings) != wantLen || r.FindingsOmitted != omitted+wantOmitted {
			t.Fatalf("CapFindings(%d) of %d findings: %d kept, %d more omitted; want %d and %d",
				n, before, len(r.Findings), r.FindingsOmitted-omitted, wantLen, wantOmitted)
		}
		after := map[key]int{}
		for _, fi := range r.Findings {
			after[key{fi.Kind, fi.Rule}]++
		}
		for k, c := range after {
			if c > n+1 {
				t.Fatalf("CapFindings(%d) kept %d findings of %+v", n, c, k)
			}
		}
		checkNoNullLists(t, encode(t, &r))
	})
}

func encode(t *testing.T, r *report.Report) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("normalized report does not encode: %v", err)
	}
	return b
}

// checkNoNullLists fails when a list of the v1 contract encodes as null.
func checkNoNullLists(t *testing.T, enc []byte) {
	t.Helper()
	var m struct {
		Artifact struct {
			Tags json.RawMessage `json:"tags"`
		} `json:"artifact"`
		Layers                 json.RawMessage `json:"layers"`
		Packages               json.RawMessage `json:"packages"`
		Vulnerabilities        json.RawMessage `json:"vulnerabilities"`
		IgnoredVulnerabilities json.RawMessage `json:"ignored_vulnerabilities"`
		Findings               json.RawMessage `json:"findings"`
		Manifests              json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(enc, &m); err != nil {
		t.Fatal(err)
	}
	isList := func(name string, raw json.RawMessage) {
		t.Helper()
		if len(raw) == 0 || raw[0] != '[' {
			t.Fatalf("%s encodes as %q, want a list:\n%s", name, raw, enc)
		}
	}
	for name, raw := range map[string]json.RawMessage{"artifact.tags": m.Artifact.Tags, "layers": m.Layers, "packages": m.Packages,
		"vulnerabilities": m.Vulnerabilities, "ignored_vulnerabilities": m.IgnoredVulnerabilities, "findings": m.Findings, "manifests": m.Manifests} {
		isList(name, raw)
	}
	for name, raw := range map[string]json.RawMessage{"vulnerabilities": m.Vulnerabilities, "ignored_vulnerabilities": m.IgnoredVulnerabilities} {
		var vs []struct {
			Aliases json.RawMessage `json:"aliases"`
		}
		if err := json.Unmarshal(raw, &vs); err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			isList(name+"[].aliases", v.Aliases)
		}
	}
}
