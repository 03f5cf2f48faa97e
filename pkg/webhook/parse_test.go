package webhook_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/webhook"
)

const (
	digestA = "sha256:6e3d7f910f1db7976dd42dca966c8d5d6525a03e0b813708c5b325ede094c338"
	digestB = "sha256:a9d4ac464e7dc67d408856e6990aab2587952de51fcb7817e62383eb87695268"
	// digestECRDoc is the digest of the AWS documentation example: 60 hex digits.
	digestECRDoc = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234"
)

// checkResult compares results through their golden JSON rendering, which
// treats nil and empty slices alike and prints a readable diff.
func checkResult(t *testing.T, got, want webhook.Result) {
	t.Helper()
	g, w := goldenJSON(t, got, nil), goldenJSON(t, want, nil)
	if !bytes.Equal(g, w) {
		t.Errorf("got:\n%s\nwant:\n%s", g, w)
	}
}

// mustJSON marshals v, for building payloads in tables.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// distEvent builds one Distribution notification event as a JSON object;
// override replaces or (with nil) removes top-level or "target."/"request."
// fields.
func distEvent(override map[string]any) map[string]any {
	target := map[string]any{
		"mediaType":  "application/vnd.oci.image.manifest.v1+json",
		"size":       530,
		"digest":     digestA,
		"length":     530,
		"repository": "testbed/debian",
		"url":        "http://localhost:5000/v2/testbed/debian/manifests/" + digestA,
		"tag":        "latest",
	}
	request := map[string]any{"id": "req", "addr": "127.0.0.1:1", "host": "localhost:5000", "method": "PUT", "useragent": "test"}
	ev := map[string]any{
		"id":        "ev-1",
		"timestamp": "2026-11-26T05:30:49.029608997Z",
		"action":    "push",
		"target":    target,
		"request":   request,
		"actor":     map[string]any{},
		"source":    map[string]any{"addr": "vm:5000"},
	}
	for k, v := range override {
		m, key := ev, k
		if f, ok := strings.CutPrefix(k, "target."); ok {
			m, key = target, f
		} else if f, ok := strings.CutPrefix(k, "request."); ok {
			m, key = request, f
		}
		if v == nil {
			delete(m, key)
		} else {
			m[key] = v
		}
	}
	return ev
}

// dist wraps events in an envelope.
func dist(events ...map[string]any) string {
	if events == nil {
		events = []map[string]any{}
	}
	return mustJSON(map[string]any{"events": events})
}

// harborDefault builds a Default-format Harbor payload.
func harborDefault(typ string, res map[string]any, repo map[string]any) string {
	ed := map[string]any{}
	if res != nil {
		ed["resources"] = []any{res}
	}
	if repo != nil {
		ed["repository"] = repo
	}
	return mustJSON(map[string]any{"type": typ, "occur_at": 1680501893, "operator": "admin", "event_data": ed})
}

// harborCE builds a CloudEvents-format Harbor payload.
func harborCE(override map[string]any) string {
	p := map[string]any{
		"specversion": "1.0",
		"id":          "ce-1",
		"source":      "/projects/1/webhook/policies/3",
		"type":        "harbor.artifact.pushed",
		"time":        "2023-03-06T06:08:43Z",
		"data": map[string]any{
			"resources":  []any{map[string]any{"digest": digestA, "tag": "v1", "resource_url": "harbor.dev/library/busybox:v1"}},
			"repository": map[string]any{"repo_full_name": "library/busybox"},
		},
	}
	for k, v := range override {
		if v == nil {
			delete(p, k)
		} else {
			p[k] = v
		}
	}
	return mustJSON(p)
}

// ecr builds an EventBridge ECR event; override replaces or removes
// top-level or "detail." fields.
func ecr(override map[string]any) string {
	detail := map[string]any{
		"result":          "SUCCESS",
		"repository-name": "my-repository-name",
		"image-digest":    digestA,
		"action-type":     "PUSH",
		"image-tag":       "latest",
	}
	ev := map[string]any{
		"version":     "0",
		"id":          "13cde686-328b-6117-af20-0e5566167482",
		"detail-type": "ECR Image Action",
		"source":      "aws.ecr",
		"account":     "123456789012",
		"time":        "2019-11-16T01:54:34Z",
		"region":      "us-west-2",
		"resources":   []any{},
		"detail":      detail,
	}
	for k, v := range override {
		m, key := ev, k
		if f, ok := strings.CutPrefix(k, "detail."); ok {
			m, key = detail, f
		}
		if v == nil {
			delete(m, key)
		} else {
			m[key] = v
		}
	}
	return mustJSON(ev)
}

type parseFunc func([]byte) (webhook.Result, error)

// TestMalformed feeds invalid payloads to the parsers: each must fail with
// an error wrapping ErrMalformed whose message names the offending field.
func TestMalformed(t *testing.T) {
	P, H, E := webhook.ParseDistribution, webhook.ParseHarbor, webhook.ParseECR
	push := func(o map[string]any) string { return dist(distEvent(o)) }
	tests := []struct {
		name   string
		parse  parseFunc
		body   string
		field  string // must appear in the message, e.g. "events[0].target.digest:"
		absent string // must not appear in the message (leaked secrets)
	}{
		// Not JSON / wrong shape.
		{name: "dist not JSON", parse: P, body: "not json", field: "body: invalid JSON"},
		{name: "dist empty body", parse: P, body: "", field: "body: invalid JSON"},
		{name: "dist truncated", parse: P, body: `{"events":[`, field: "body: invalid JSON"},
		{name: "dist trailing garbage", parse: P, body: `{"events":[]} {}`, field: "body: invalid JSON"},
		{name: "dist top-level array", parse: P, body: `[{"events":[]}]`, field: "body: got a JSON array, want an object"},
		{name: "dist top-level null", parse: P, body: `null`, field: "body: got a JSON null, want an object"},
		{name: "dist top-level string", parse: P, body: `"events"`, field: "body: got a JSON string"},
		{name: "dist no events", parse: P, body: `{}`, field: "events: missing events array"},
		{name: "dist events null", parse: P, body: `{"events":null}`, field: "events: missing events array"},
		{name: "dist harbor payload", parse: P, body: harborDefault("PUSH_ARTIFACT", nil, nil), field: "events: missing events array"},
		{name: "dist events object", parse: P, body: `{"events":{"id":"x"}}`, field: "events: got a JSON object, want an array"},
		{name: "dist event not object", parse: P, body: `{"events":[1]}`, field: "events[0]: got a JSON number, want an object"},
		{name: "dist event null", parse: P, body: `{"events":[null]}`, field: "events[0]: got a JSON null"},
		{name: "dist target string", parse: P, body: `{"events":[{"action":"push","target":"x"}]}`, field: "events[0].target: got a JSON string, want an object"},
		{name: "dist action number", parse: P, body: `{"events":[{"action":1}]}`, field: "events[0].action: got a JSON number, want a string"},
		{name: "dist digest number", parse: P, body: push(map[string]any{"target.digest": 5}), field: "events[0].target.digest: got a JSON number, want a string"},

		// Digest.
		{name: "dist missing digest", parse: P, body: push(map[string]any{"target.digest": nil}), field: "events[0].target.digest: missing digest"},
		{name: "dist digest not hex", parse: P, body: push(map[string]any{"target.digest": "sha256:zz"}), field: `events[0].target.digest: "sha256:zz" is not a sha256 digest`},
		{name: "dist digest uppercase", parse: P, body: push(map[string]any{"target.digest": strings.ToUpper(digestA)}), field: "events[0].target.digest:"},
		{name: "dist digest hex uppercase", parse: P, body: push(map[string]any{"target.digest": "sha256:" + strings.ToUpper(digestA[7:])}), field: "events[0].target.digest:"},
		{name: "dist digest short", parse: P, body: push(map[string]any{"target.digest": digestA[:70]}), field: "events[0].target.digest:"},
		{name: "dist digest long", parse: P, body: push(map[string]any{"target.digest": digestA + "0"}), field: "events[0].target.digest:"},
		{name: "dist digest sha512", parse: P, body: push(map[string]any{"target.digest": "sha512:" + strings.Repeat("ab", 64)}), field: "events[0].target.digest:"},
		{name: "dist digest no algorithm", parse: P, body: push(map[string]any{"target.digest": digestA[7:]}), field: "events[0].target.digest:"},

		// Repository.
		{name: "dist repo traversal", parse: P, body: push(map[string]any{"target.repository": "../x"}), field: "events[0].target.repository:"},
		{name: "dist repo inner traversal", parse: P, body: push(map[string]any{"target.repository": "testbed/../../x"}), field: "events[0].target.repository:"},
		{name: "dist repo dot", parse: P, body: push(map[string]any{"target.repository": "./x"}), field: "events[0].target.repository:"},
		{name: "dist repo uppercase", parse: P, body: push(map[string]any{"target.repository": "Testbed/Debian"}), field: "events[0].target.repository:"},
		{name: "dist repo oversize", parse: P, body: push(map[string]any{"target.repository": strings.Repeat("a", 256)}), field: "events[0].target.repository: repository is 256 bytes long"},
		{name: "dist repo oversize path", parse: P, body: push(map[string]any{"target.repository": strings.Repeat("abcdefg/", 32) + "x"}), field: "events[0].target.repository:"},
		{name: "dist repo missing", parse: P, body: push(map[string]any{"target.repository": nil}), field: "events[0].target.repository: missing repository"},
		{name: "dist repo leading slash", parse: P, body: push(map[string]any{"target.repository": "/x"}), field: "events[0].target.repository:"},
		{name: "dist repo trailing slash", parse: P, body: push(map[string]any{"target.repository": "x/"}), field: "events[0].target.repository:"},
		{name: "dist repo double slash", parse: P, body: push(map[string]any{"target.repository": "x//y"}), field: "events[0].target.repository:"},
		{name: "dist repo triple underscore", parse: P, body: push(map[string]any{"target.repository": "a___b"}), field: "events[0].target.repository:"},
		{name: "dist repo trailing dash", parse: P, body: push(map[string]any{"target.repository": "a-"}), field: "events[0].target.repository:"},
		{name: "dist repo with tag", parse: P, body: push(map[string]any{"target.repository": "x:latest"}), field: "events[0].target.repository:"},
		{name: "dist repo with space", parse: P, body: push(map[string]any{"target.repository": "x y"}), field: "events[0].target.repository:"},

		// Registry host from target.url.
		{name: "dist url userinfo", parse: P, body: push(map[string]any{"target.url": "http://user:s3cret@evil.example/v2/x/manifests/" + digestA}), field: "events[0].target.url: URL must not contain userinfo", absent: "s3cret"},
		{name: "dist url space in host", parse: P, body: push(map[string]any{"target.url": "http://evil example/v2/"}), field: "events[0].target.url:"},
		{name: "dist url ftp", parse: P, body: push(map[string]any{"target.url": "ftp://evil.example/v2/"}), field: "events[0].target.url:"},
		{name: "dist url relative", parse: P, body: push(map[string]any{"target.url": "/v2/testbed/debian/manifests/" + digestA}), field: "events[0].target.url:"},
		{name: "dist url no host", parse: P, body: push(map[string]any{"target.url": "http:///v2/"}), field: "events[0].target.url:"},
		{name: "dist url opaque", parse: P, body: push(map[string]any{"target.url": "http:evil.example"}), field: "events[0].target.url:"},
		{name: "dist url port too big", parse: P, body: push(map[string]any{"target.url": "http://localhost:99999/v2/"}), field: "events[0].target.url:"},
		{name: "dist url port zero", parse: P, body: push(map[string]any{"target.url": "http://localhost:0/v2/"}), field: "events[0].target.url:"},
		{name: "dist url empty port", parse: P, body: push(map[string]any{"target.url": "http://localhost:/v2/"}), field: "events[0].target.url:"},
		{name: "dist url ipv6 zone", parse: P, body: push(map[string]any{"target.url": "http://[fe80::1%25eth0]:5000/v2/"}), field: "events[0].target.url:"},
		{name: "dist url bad ipv4", parse: P, body: push(map[string]any{"target.url": "http://1.2.3.999/v2/"}), field: "events[0].target.url:"},
		{name: "dist url short ipv4", parse: P, body: push(map[string]any{"target.url": "http://2130706433/v2/"}), field: "events[0].target.url:"},
		{name: "dist url underscore host", parse: P, body: push(map[string]any{"target.url": "http://evil_host/v2/"}), field: "events[0].target.url:"},
		{name: "dist url percent host", parse: P, body: push(map[string]any{"target.url": "http://evil%2ehost/v2/"}), field: "events[0].target.url:"},
		{name: "dist url label dash", parse: P, body: push(map[string]any{"target.url": "http://-evil.example/v2/"}), field: "events[0].target.url:"},
		{name: "dist url trailing dot", parse: P, body: push(map[string]any{"target.url": "http://evil.example./v2/"}), field: "events[0].target.url:"},
		{name: "dist url not a string", parse: P, body: push(map[string]any{"target.url": []int{1}}), field: "events[0].target.url: got a JSON array"},

		// Registry host from request.host (no target.url).
		{name: "dist host scheme", parse: P, body: push(map[string]any{"target.url": nil, "request.host": "http://evil.example"}), field: "events[0].request.host: registry host \"http://evil.example\" must not contain a scheme"},
		{name: "dist host userinfo", parse: P, body: push(map[string]any{"target.url": nil, "request.host": "user:s3cret@evil.example"}), field: "events[0].request.host: registry host must not contain userinfo", absent: "s3cret"},
		{name: "dist host path", parse: P, body: push(map[string]any{"target.url": nil, "request.host": "evil.example/x"}), field: "events[0].request.host: registry host \"evil.example/x\" must not contain a path"},
		{name: "dist host space", parse: P, body: push(map[string]any{"target.url": nil, "request.host": "evil example"}), field: "events[0].request.host:"},
		{name: "dist host newline", parse: P, body: push(map[string]any{"target.url": nil, "request.host": "evil\nexample"}), field: "events[0].request.host:"},
		{name: "dist host two colons", parse: P, body: push(map[string]any{"target.url": nil, "request.host": "::1"}), field: "events[0].request.host:"},
		{name: "dist host too long", parse: P, body: push(map[string]any{"target.url": nil, "request.host": strings.Repeat("a.", 130) + "a"}), field: "events[0].request.host:"},
		{name: "dist host label too long", parse: P, body: push(map[string]any{"target.url": nil, "request.host": strings.Repeat("a", 64) + ".example"}), field: "events[0].request.host:"},
		{name: "dist no host", parse: P, body: push(map[string]any{"target.url": nil, "request.host": nil}), field: "events[0].request.host: missing registry host"},

		// Tag, timestamp, id.
		{name: "dist tag leading dot", parse: P, body: push(map[string]any{"target.tag": ".hidden"}), field: "events[0].target.tag:"},
		{name: "dist tag too long", parse: P, body: push(map[string]any{"target.tag": strings.Repeat("t", 129)}), field: "events[0].target.tag:"},
		{name: "dist tag slash", parse: P, body: push(map[string]any{"target.tag": "a/b"}), field: "events[0].target.tag:"},
		{name: "dist bad timestamp", parse: P, body: push(map[string]any{"timestamp": "yesterday"}), field: "events[0].timestamp:"},
		{name: "dist id control char", parse: P, body: push(map[string]any{"id": "a\x00b"}), field: "events[0].id:"},
		{name: "dist id too long", parse: P, body: push(map[string]any{"id": strings.Repeat("i", 257)}), field: "events[0].id:"},

		// The bad event is named by its index.
		{
			name:  "dist third event bad",
			parse: P,
			body: dist(
				distEvent(map[string]any{"target.mediaType": "application/octet-stream"}),
				distEvent(nil),
				distEvent(map[string]any{"target.digest": "sha256:zz"}),
			),
			field: `malformed webhook payload: events[2].target.digest: "sha256:zz" is not a sha256 digest`,
		},

		// Harbor.
		{name: "harbor not JSON", parse: H, body: "<xml/>", field: "body: invalid JSON"},
		{name: "harbor array", parse: H, body: "[]", field: "body: got a JSON array"},
		{name: "harbor no type", parse: H, body: `{}`, field: "type: missing event type"},
		{name: "harbor distribution envelope", parse: H, body: dist(distEvent(nil)), field: "type: missing event type"},
		{name: "harbor type number", parse: H, body: `{"type":1}`, field: "type: got a JSON number, want a string"},
		{name: "harbor occur_at string", parse: H, body: `{"type":"PUSH_ARTIFACT","occur_at":"now","event_data":{}}`, field: "occur_at: got a JSON string, want an integer"},
		{name: "harbor push no event_data", parse: H, body: `{"type":"PUSH_ARTIFACT","occur_at":1}`, field: "event_data: missing event data"},
		{name: "harbor push event_data array", parse: H, body: `{"type":"PUSH_ARTIFACT","event_data":[]}`, field: "event_data: got a JSON array, want an object"},
		{name: "harbor resources object", parse: H, body: `{"type":"PUSH_ARTIFACT","event_data":{"resources":{}}}`, field: "event_data.resources: got a JSON object, want an array"},
		{name: "harbor resource string", parse: H, body: `{"type":"PUSH_ARTIFACT","event_data":{"resources":["x"]}}`, field: "event_data.resources[0]: got a JSON string, want an object"},
		{name: "harbor bad digest", parse: H, body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": "sha256:zz", "tag": "v1", "resource_url": "harbor.dev/a/b:v1"}, nil), field: `event_data.resources[0].digest: "sha256:zz" is not a sha256 digest`},
		{name: "harbor missing resource_url", parse: H, body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA}, nil), field: "event_data.resources[0].resource_url: missing"},
		{name: "harbor resource_url scheme", parse: H, body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "resource_url": "https://harbor.dev/a/b@" + digestA}, nil), field: "event_data.resources[0].resource_url:"},
		{name: "harbor resource_url userinfo", parse: H, body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "resource_url": "u:s3cret@harbor.dev/a/b@" + digestA}, nil), field: "event_data.resources[0].resource_url: registry host must not contain userinfo", absent: "s3cret"},
		{name: "harbor resource_url no path", parse: H, body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "resource_url": "harbor.dev"}, nil), field: "event_data.resources[0].resource_url:"},
		{name: "harbor resource_url space", parse: H, body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "resource_url": "harbor dev/a/b@" + digestA}, nil), field: "event_data.resources[0].resource_url:"},
		{name: "harbor repo traversal", parse: H, body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "resource_url": "harbor.dev/a/b@" + digestA}, map[string]any{"repo_full_name": "../x"}), field: "event_data.repository.repo_full_name:"},
		{name: "harbor repo uppercase", parse: H, body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "resource_url": "harbor.dev/a/b@" + digestA}, map[string]any{"repo_full_name": "Library/Alpine"}), field: "event_data.repository.repo_full_name:"},
		{name: "harbor repo from url uppercase", parse: H, body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "resource_url": "harbor.dev/Library/Alpine@" + digestA}, nil), field: "event_data.resources[0].resource_url:"},
		{name: "harbor repo oversize", parse: H, body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "resource_url": "harbor.dev/a@" + digestA}, map[string]any{"repo_full_name": strings.Repeat("a", 300)}), field: "event_data.repository.repo_full_name:"},
		{name: "harbor bad tag", parse: H, body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "tag": "-x", "resource_url": "harbor.dev/a/b:-x"}, nil), field: "event_data.resources[0].tag:"},
		{name: "harbor ce bad specversion", parse: H, body: harborCE(map[string]any{"specversion": "0.3"}), field: "specversion: unsupported CloudEvents version"},
		{name: "harbor ce specversion number", parse: H, body: harborCE(map[string]any{"specversion": 1.0}), field: "specversion: got a JSON number, want a string"},
		{name: "harbor ce no type", parse: H, body: harborCE(map[string]any{"type": nil}), field: "type: missing event type"},
		{name: "harbor ce no data", parse: H, body: harborCE(map[string]any{"data": nil}), field: "data: missing event data"},
		{name: "harbor ce bad time", parse: H, body: harborCE(map[string]any{"time": "06/03/2023"}), field: "time:"},
		{name: "harbor ce bad digest", parse: H, body: harborCE(map[string]any{"data": map[string]any{"resources": []any{map[string]any{"digest": "sha256:zz", "resource_url": "h/a/b"}}}}), field: "data.resources[0].digest:"},
		{name: "harbor ce bad host", parse: H, body: harborCE(map[string]any{"data": map[string]any{"resources": []any{map[string]any{"digest": digestA, "resource_url": "h!/a/b"}}}}), field: "data.resources[0].resource_url:"},

		// ECR.
		{name: "ecr not JSON", parse: E, body: "{", field: "body: invalid JSON"},
		{name: "ecr no detail-type", parse: E, body: ecr(map[string]any{"detail-type": nil}), field: "detail-type: missing"},
		{name: "ecr sns envelope", parse: E, body: `{"Type":"Notification","Message":"{}"}`, field: "detail-type: missing"},
		{name: "ecr no detail", parse: E, body: ecr(map[string]any{"detail": nil}), field: "detail: missing"},
		{name: "ecr detail string", parse: E, body: ecr(map[string]any{"detail": "x"}), field: "detail: got a JSON string, want an object"},
		{name: "ecr doc digest", parse: E, body: ecr(map[string]any{"detail.image-digest": digestECRDoc}), field: `detail.image-digest: "` + digestECRDoc + `" is not a sha256 digest`},
		{name: "ecr no digest", parse: E, body: ecr(map[string]any{"detail.image-digest": nil}), field: "detail.image-digest: missing"},
		{name: "ecr bad account", parse: E, body: ecr(map[string]any{"account": "12345"}), field: "account:"},
		{name: "ecr account host", parse: E, body: ecr(map[string]any{"account": "evil.example/"}), field: "account:"},
		{name: "ecr bad region", parse: E, body: ecr(map[string]any{"region": "us-west-2.evil.example"}), field: "region:"},
		{name: "ecr missing region", parse: E, body: ecr(map[string]any{"region": nil}), field: "region:"},
		{name: "ecr repo traversal", parse: E, body: ecr(map[string]any{"detail.repository-name": "../x"}), field: "detail.repository-name:"},
		{name: "ecr repo uppercase", parse: E, body: ecr(map[string]any{"detail.repository-name": "My-Repo"}), field: "detail.repository-name:"},
		{name: "ecr bad tag", parse: E, body: ecr(map[string]any{"detail.image-tag": "a b"}), field: "detail.image-tag:"},
		{name: "ecr bad time", parse: E, body: ecr(map[string]any{"time": "Nov 16"}), field: "time:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.parse([]byte(tc.body))
			if err == nil {
				t.Fatalf("no error; got %+v", res)
			}
			if !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "malformed webhook payload: ") {
				t.Errorf("message %q does not start with the ErrMalformed text", msg)
			}
			if !strings.Contains(msg, tc.field) {
				t.Errorf("message %q does not contain %q", msg, tc.field)
			}
			if tc.absent != "" && strings.Contains(msg, tc.absent) {
				t.Errorf("message %q leaks %q", msg, tc.absent)
			}
			if len(res.Events) != 0 || len(res.Skipped) != 0 {
				t.Errorf("partial result returned with error: %+v", res)
			}
		})
	}
}

// TestParse covers well-formed payloads beyond the shared fixtures.
func TestParse(t *testing.T) {
	P, H, E := webhook.ParseDistribution, webhook.ParseHarbor, webhook.ParseECR
	ts := time.Date(2026, 11, 26, 5, 30, 49, 29608997, time.UTC)
	ev := func(mod func(*webhook.Event)) webhook.Event {
		e := webhook.Event{
			Source: "distribution", EventID: "ev-1", Registry: "localhost:5000", Repository: "testbed/debian",
			Digest: digestA, Tag: "latest", MediaType: "application/vnd.oci.image.manifest.v1+json", Timestamp: ts,
		}
		if mod != nil {
			mod(&e)
		}
		return e
	}
	harborEv := func(mod func(*webhook.Event)) webhook.Event {
		e := webhook.Event{
			Source: "harbor", Registry: "harbor.dev", Repository: "library/busybox", Digest: digestA,
			Timestamp: time.Unix(1680501893, 0).UTC(),
		}
		mod(&e)
		return e
	}
	ecrEv := func(mod func(*webhook.Event)) webhook.Event {
		e := webhook.Event{
			Source: "ecr", EventID: "13cde686-328b-6117-af20-0e5566167482",
			Registry:   "123456789012.dkr.ecr.us-west-2.amazonaws.com",
			Repository: "my-repository-name", Digest: digestA, Tag: "latest",
			Timestamp: time.Date(2019, 11, 16, 1, 54, 34, 0, time.UTC),
		}
		if mod != nil {
			mod(&e)
		}
		return e
	}
	skip := func(id, reason string) webhook.Result {
		return webhook.Result{Skipped: []webhook.Skipped{{EventID: id, Reason: reason}}}
	}
	tests := []struct {
		name  string
		parse parseFunc
		body  string
		want  webhook.Result
	}{
		{name: "dist empty events", parse: P, body: `{"events":[]}`, want: webhook.Result{}},
		{name: "dist manifest push", parse: P, body: dist(distEvent(nil)), want: webhook.Result{Events: []webhook.Event{ev(nil)}}},
		{
			name: "dist mixed envelope keeps order", parse: P,
			body: dist(
				distEvent(map[string]any{"id": "blob", "target.mediaType": "application/octet-stream", "target.tag": nil}),
				distEvent(map[string]any{"id": "m1", "target.tag": nil}),
				distEvent(map[string]any{"id": "pull", "action": "pull"}),
				distEvent(map[string]any{"id": "m2", "target.digest": digestB}),
			),
			want: webhook.Result{
				Events: []webhook.Event{
					ev(func(e *webhook.Event) { e.EventID, e.Tag = "m1", "" }),
					ev(func(e *webhook.Event) { e.EventID, e.Digest = "m2", digestB }),
				},
				Skipped: []webhook.Skipped{{EventID: "blob", Reason: "blob push"}, {EventID: "pull", Reason: "action pull"}},
			},
		},
		{
			name: "dist docker manifest list", parse: P,
			body: dist(distEvent(map[string]any{"target.mediaType": "application/vnd.docker.distribution.manifest.list.v2+json"})),
			want: webhook.Result{Events: []webhook.Event{ev(func(e *webhook.Event) {
				e.MediaType = "application/vnd.docker.distribution.manifest.list.v2+json"
			})}},
		},
		{
			name: "dist media type normalized", parse: P,
			body: dist(distEvent(map[string]any{"target.mediaType": "Application/VND.oci.image.manifest.v1+json; charset=utf-8"})),
			want: webhook.Result{Events: []webhook.Event{ev(nil)}},
		},
		{
			name: "dist schema1 skipped", parse: P,
			body: dist(distEvent(map[string]any{"target.mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws"})),
			want: skip("ev-1", "docker schema1 manifest push (not scannable)"),
		},
		{
			name: "dist blob by url", parse: P,
			body: dist(distEvent(map[string]any{"target.mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "target.url": "http://localhost:5000/v2/testbed/debian/blobs/" + digestA})),
			want: skip("ev-1", "blob push"),
		},
		{
			name: "dist unsupported media type", parse: P,
			body: dist(distEvent(map[string]any{"target.mediaType": "application/vnd.oci.artifact.manifest.v1+json"})),
			want: skip("ev-1", `push of unsupported media type "application/vnd.oci.artifact.manifest.v1+json"`),
		},
		{
			name: "dist push without media type", parse: P,
			body: dist(distEvent(map[string]any{"target.mediaType": nil})),
			want: skip("ev-1", "push without media type"),
		},
		{
			name: "dist unknown action", parse: P,
			body: dist(distEvent(map[string]any{"action": "tag"})),
			want: skip("ev-1", `unknown action "tag"`),
		},
		{
			name: "dist missing action", parse: P,
			body: dist(distEvent(map[string]any{"action": nil})),
			want: skip("ev-1", `unknown action ""`),
		},
		{
			// Fields of skipped events are not validated.
			name: "dist blob push with junk fields", parse: P,
			body: dist(distEvent(map[string]any{"target.mediaType": "application/octet-stream", "target.digest": "junk", "target.repository": "../x", "target.url": "ftp://u:p@x"})),
			want: skip("ev-1", "blob push"),
		},
		{
			name: "dist request.host fallback lowercased", parse: P,
			body: dist(distEvent(map[string]any{"target.url": nil, "request.host": "Registry.Example.COM:443"})),
			want: webhook.Result{Events: []webhook.Event{ev(func(e *webhook.Event) { e.Registry = "registry.example.com:443" })}},
		},
		{
			name: "dist url host lowercased, https", parse: P,
			body: dist(distEvent(map[string]any{"target.url": "https://REGISTRY.example.com/v2/testbed/debian/manifests/" + digestA})),
			want: webhook.Result{Events: []webhook.Event{ev(func(e *webhook.Event) { e.Registry = "registry.example.com" })}},
		},
		{
			name: "dist url wins over request.host", parse: P,
			body: dist(distEvent(map[string]any{"target.url": "http://10.0.0.7:5000/v2/x", "request.host": "other:1"})),
			want: webhook.Result{Events: []webhook.Event{ev(func(e *webhook.Event) { e.Registry = "10.0.0.7:5000" })}},
		},
		{
			name: "dist ipv6 host", parse: P,
			body: dist(distEvent(map[string]any{"target.url": "http://[::1]:5000/v2/x"})),
			want: webhook.Result{Events: []webhook.Event{ev(func(e *webhook.Event) { e.Registry = "[::1]:5000" })}},
		},
		{
			name: "dist repo separators", parse: P,
			body: dist(distEvent(map[string]any{"target.repository": "a.b/c_d/e__f/g---h/0"})),
			want: webhook.Result{Events: []webhook.Event{ev(func(e *webhook.Event) { e.Repository = "a.b/c_d/e__f/g---h/0" })}},
		},
		{
			name: "dist repo 255 bytes", parse: P,
			body: dist(distEvent(map[string]any{"target.repository": strings.Repeat("a", 255)})),
			want: webhook.Result{Events: []webhook.Event{ev(func(e *webhook.Event) { e.Repository = strings.Repeat("a", 255) })}},
		},
		{
			name: "dist tag 128 bytes", parse: P,
			body: dist(distEvent(map[string]any{"target.tag": "_" + strings.Repeat("V.-", 42) + "x"})),
			want: webhook.Result{Events: []webhook.Event{ev(func(e *webhook.Event) { e.Tag = "_" + strings.Repeat("V.-", 42) + "x" })}},
		},
		{
			name: "dist no timestamp", parse: P,
			body: dist(distEvent(map[string]any{"timestamp": nil})),
			want: webhook.Result{Events: []webhook.Event{ev(func(e *webhook.Event) { e.Timestamp = time.Time{} })}},
		},

		{
			name: "harbor push with tag and port", parse: H,
			body: harborDefault("PUSH_ARTIFACT",
				map[string]any{"digest": digestA, "tag": "1.25", "resource_url": "Harbor.Example.com:8443/library/nginx:1.25"},
				map[string]any{"repo_full_name": "library/nginx", "name": "nginx", "namespace": "library"}),
			want: webhook.Result{Events: []webhook.Event{harborEv(func(e *webhook.Event) {
				e.Registry, e.Repository, e.Tag = "harbor.example.com:8443", "library/nginx", "1.25"
			})}},
		},
		{
			name: "harbor repo from resource_url with tag", parse: H,
			body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "tag": "v1", "resource_url": "harbor.dev:5000/proj/sub/img:v1"}, nil),
			want: webhook.Result{Events: []webhook.Event{harborEv(func(e *webhook.Event) {
				e.Registry, e.Repository, e.Tag = "harbor.dev:5000", "proj/sub/img", "v1"
			})}},
		},
		{
			name: "harbor repo from resource_url by digest", parse: H,
			body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "tag": digestA, "resource_url": "harbor.dev/proj/img@" + digestA}, map[string]any{"repo_full_name": ""}),
			want: webhook.Result{Events: []webhook.Event{harborEv(func(e *webhook.Event) { e.Repository = "proj/img" })}},
		},
		{
			name: "harbor tag is another digest", parse: H,
			body: harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "tag": digestB, "resource_url": "harbor.dev/library/busybox@" + digestA}, nil),
			want: webhook.Result{Events: []webhook.Event{harborEv(func(e *webhook.Event) {})}},
		},
		{
			name: "harbor push without resources", parse: H,
			body: harborDefault("PUSH_ARTIFACT", nil, map[string]any{"repo_full_name": "a/b"}),
			want: skip("", "harbor PUSH_ARTIFACT without resources"),
		},
		{name: "harbor delete", parse: H, body: harborDefault("DELETE_ARTIFACT", map[string]any{"digest": "junk"}, nil), want: skip("", "harbor event DELETE_ARTIFACT")},
		{name: "harbor pull", parse: H, body: harborDefault("PULL_ARTIFACT", nil, nil), want: skip("", "harbor event PULL_ARTIFACT")},
		{name: "harbor scanning failed", parse: H, body: `{"type":"SCANNING_FAILED","event_data":"whatever"}`, want: skip("", "harbor event SCANNING_FAILED")},
		{
			name: "harbor ce pushed with tag", parse: H, body: harborCE(nil),
			want: webhook.Result{Events: []webhook.Event{{
				Source: "harbor", EventID: "ce-1", Registry: "harbor.dev", Repository: "library/busybox",
				Digest: digestA, Tag: "v1", Timestamp: time.Date(2023, 3, 6, 6, 8, 43, 0, time.UTC),
			}}},
		},
		{name: "harbor ce deleted", parse: H, body: harborCE(map[string]any{"type": "harbor.artifact.deleted", "data": nil}), want: skip("ce-1", "harbor event harbor.artifact.deleted")},
		{name: "harbor ce scan completed", parse: H, body: harborCE(map[string]any{"type": "harbor.scan.completed"}), want: skip("ce-1", "harbor event harbor.scan.completed")},
		{name: "harbor ce default type name", parse: H, body: harborCE(map[string]any{"type": "PUSH_ARTIFACT"}), want: skip("ce-1", "harbor event PUSH_ARTIFACT")},
		{name: "harbor odd type quoted", parse: H, body: `{"type":"a b\n"}`, want: skip("", `harbor event "a b\n"`)},

		{name: "ecr push", parse: E, body: ecr(nil), want: webhook.Result{Events: []webhook.Event{ecrEv(nil)}}},
		{
			name: "ecr push by digest", parse: E, body: ecr(map[string]any{"detail.image-tag": nil}),
			want: webhook.Result{Events: []webhook.Event{ecrEv(func(e *webhook.Event) { e.Tag = "" })}},
		},
		{
			name: "ecr china region", parse: E, body: ecr(map[string]any{"region": "cn-north-1"}),
			want: webhook.Result{Events: []webhook.Event{ecrEv(func(e *webhook.Event) { e.Registry = "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn" })}},
		},
		{
			name: "ecr govcloud region", parse: E, body: ecr(map[string]any{"region": "us-gov-west-1", "detail.repository-name": "team/app"}),
			want: webhook.Result{Events: []webhook.Event{ecrEv(func(e *webhook.Event) {
				e.Registry, e.Repository = "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com", "team/app"
			})}},
		},
		{
			name: "ecr manifest media type", parse: E, body: ecr(map[string]any{"detail.manifest-media-type": "application/vnd.oci.image.index.v1+json"}),
			want: webhook.Result{Events: []webhook.Event{ecrEv(func(e *webhook.Event) { e.MediaType = "application/vnd.oci.image.index.v1+json" })}},
		},
		{
			name: "ecr schema1", parse: E, body: ecr(map[string]any{"detail.manifest-media-type": "application/vnd.docker.distribution.manifest.v1+prettyjws"}),
			want: skip("13cde686-328b-6117-af20-0e5566167482", "docker schema1 manifest push (not scannable)"),
		},
		{name: "ecr failure", parse: E, body: ecr(map[string]any{"detail.result": "FAILURE", "detail.image-digest": nil}), want: skip("13cde686-328b-6117-af20-0e5566167482", "ecr result FAILURE")},
		{name: "ecr delete", parse: E, body: ecr(map[string]any{"detail.action-type": "DELETE", "detail.image-digest": digestECRDoc}), want: skip("13cde686-328b-6117-af20-0e5566167482", "ecr action DELETE")},
		{name: "ecr scan event", parse: E, body: ecr(map[string]any{"detail-type": "ECR Image Scan"}), want: skip("13cde686-328b-6117-af20-0e5566167482", `ecr detail-type "ECR Image Scan"`)},
		{name: "ecr other source", parse: E, body: ecr(map[string]any{"source": "my.app"}), want: skip("13cde686-328b-6117-af20-0e5566167482", "ecr source my.app")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.parse([]byte(tc.body))
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			checkResult(t, got, tc.want)
			for i, e := range got.Events {
				if err := e.Validate(); err != nil {
					t.Errorf("Events[%d].Validate: %v", i, err)
				}
			}
		})
	}
}

func TestMediaTypes(t *testing.T) {
	tests := []struct {
		mt              string
		manifest, index bool
	}{
		{"application/vnd.docker.distribution.manifest.v2+json", true, false},
		{"application/vnd.docker.distribution.manifest.list.v2+json", true, true},
		{"application/vnd.oci.image.manifest.v1+json", true, false},
		{"application/vnd.oci.image.index.v1+json", true, true},
		{"application/vnd.oci.image.index.v1+json; charset=utf-8", true, true},
		{"APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON", true, false},
		{"application/vnd.docker.distribution.manifest.v1+prettyjws", false, false},
		{"application/vnd.docker.distribution.manifest.v1+json", false, false},
		{"application/vnd.oci.artifact.manifest.v1+json", false, false},
		{"application/octet-stream", false, false},
		{"application/vnd.oci.image.config.v1+json", false, false},
		{"", false, false},
	}
	for _, tc := range tests {
		if got := webhook.IsManifestMediaType(tc.mt); got != tc.manifest {
			t.Errorf("IsManifestMediaType(%q) = %v, want %v", tc.mt, got, tc.manifest)
		}
		if got := webhook.IsIndexMediaType(tc.mt); got != tc.index {
			t.Errorf("IsIndexMediaType(%q) = %v, want %v", tc.mt, got, tc.index)
		}
	}
}

func TestEventValidate(t *testing.T) {
	good := webhook.Event{Source: "harbor", Registry: "harbor.dev", Repository: "a/b", Digest: digestA}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid event: %v", err)
	}
	tests := []struct {
		name  string
		mod   func(*webhook.Event)
		field string
	}{
		{"no source", func(e *webhook.Event) { e.Source = "" }, "source:"},
		{"unknown source", func(e *webhook.Event) { e.Source = "quay" }, "source:"},
		{"no registry", func(e *webhook.Event) { e.Registry = "" }, "registry:"},
		{"uppercase registry", func(e *webhook.Event) { e.Registry = "Harbor.dev" }, "registry:"},
		{"registry with scheme", func(e *webhook.Event) { e.Registry = "https://harbor.dev" }, "registry:"},
		{"no repository", func(e *webhook.Event) { e.Repository = "" }, "repository:"},
		{"bad repository", func(e *webhook.Event) { e.Repository = "a/../b" }, "repository:"},
		{"bad digest", func(e *webhook.Event) { e.Digest = "sha256:abc" }, "digest:"},
		{"bad tag", func(e *webhook.Event) { e.Tag = "a:b" }, "tag:"},
		{"blob media type", func(e *webhook.Event) { e.MediaType = "application/octet-stream" }, "media type:"},
		{"unnormalized media type", func(e *webhook.Event) { e.MediaType = "application/vnd.oci.image.index.v1+json; x=y" }, "media type:"},
		{"event id newline", func(e *webhook.Event) { e.EventID = "a\nb" }, "event id:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := good
			tc.mod(&e)
			err := e.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.field)
			}
		})
	}
}
