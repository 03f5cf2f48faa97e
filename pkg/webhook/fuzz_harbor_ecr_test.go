package webhook_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/webhook"
)

// maxFuzzMessage bounds an error message or skip reason: untrusted values
// are clipped (maxQuoted) before they go into one.
const maxFuzzMessage = 1024

// FuzzParseHarbor is FuzzParseDistribution for Harbor payloads (Default
// and CloudEvents formats): no panic, every error wraps ErrMalformed
// with nothing else returned, every Event validates and has source
// "harbor", and messages and skip reasons are bounded single lines.
func FuzzParseHarbor(f *testing.F) {
	addFixtureSeeds(f, "harbor")
	for _, s := range []string{
		harborCE(nil),
		harborCE(map[string]any{"type": "harbor.artifact.pulled"}),
		harborCE(map[string]any{"specversion": "0.3"}),
		harborCE(map[string]any{"data": map[string]any{"resources": []any{
			map[string]any{"digest": digestA, "tag": digestA, "resource_url": "harbor.dev:8443/a/b/c@" + digestA},
			map[string]any{"digest": digestB, "tag": "v2", "resource_url": "u:p@HARBOR.dev/x:y"},
		}}}),
		harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "tag": "latest", "resource_url": "localhost/harbor/alpine:latest"}, map[string]any{"repo_full_name": "harbor/alpine"}),
		harborDefault("PUSH_ARTIFACT", map[string]any{"digest": digestA, "resource_url": "[::1]:80/a@" + digestA}, nil),
		harborDefault("QUOTA_EXCEED", nil, nil),
		`{"type":"PUSH_ARTIFACT","occur_at":-9223372036854775808,"event_data":{"resources":[]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkParse(t, webhook.ParseHarbor, webhook.SourceHarbor, body)
	})
}

// FuzzParseECR is FuzzParseDistribution for EventBridge "ECR Image
// Action" events, with the checks of FuzzParseHarbor and source "ecr".
func FuzzParseECR(f *testing.F) {
	addFixtureSeeds(f, "ecr")
	for _, s := range []string{
		ecr(nil),
		ecr(map[string]any{"region": "cn-north-1", "detail.manifest-media-type": "application/vnd.oci.image.index.v1+json"}),
		ecr(map[string]any{"region": "us-gov-west-1", "detail.image-tag": nil}),
		ecr(map[string]any{"detail.manifest-media-type": "application/vnd.docker.distribution.manifest.v1+prettyjws"}),
		ecr(map[string]any{"detail.result": "FAILURE"}),
		ecr(map[string]any{"detail.action-type": "DELETE"}),
		ecr(map[string]any{"source": "aws.s3", "detail-type": "Object Created"}),
		ecr(map[string]any{"account": "12345678901x", "time": "2019-11-16T01:54:34.123+02:00"}),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkParse(t, webhook.ParseECR, webhook.SourceECR, body)
	})
}

func addFixtureSeeds(f *testing.F, dir string) {
	root, ok := sharedFixtures()
	if !ok {
		return
	}
	files, _ := filepath.Glob(filepath.Join(root, dir, "*.json"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

func checkParse(t *testing.T, parse func([]byte) (webhook.Result, error), source string, body []byte) {
	t.Helper()
	res, err := parse(body)
	if err != nil {
		if !errors.Is(err, webhook.ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
		if len(res.Events) != 0 || len(res.Skipped) != 0 {
			t.Fatalf("partial result with error %v: %+v", err, res)
		}
		checkMessage(t, "error", err.Error())
		return
	}
	if len(res.Events)+len(res.Skipped) == 0 {
		t.Fatalf("no event and no skip reason for %q", body)
	}
	for i, e := range res.Events {
		if err := e.Validate(); err != nil {
			t.Fatalf("Events[%d] = %+v does not validate: %v", i, e, err)
		}
		if e.Source != source {
			t.Fatalf("Events[%d].Source = %q, want %q", i, e.Source, source)
		}
	}
	for _, s := range res.Skipped {
		if s.Reason == "" {
			t.Fatalf("skipped without a reason: %+v", s)
		}
		checkMessage(t, "skip reason", s.Reason)
	}
}

// checkMessage fails when msg could forge a log line or is unbounded.
func checkMessage(t *testing.T, what, msg string) {
	t.Helper()
	if len(msg) > maxFuzzMessage || strings.ContainsAny(msg, "\n\r\x00") {
		t.Fatalf("%s is not a bounded single line (%d bytes): %q", what, len(msg), msg)
	}
}
