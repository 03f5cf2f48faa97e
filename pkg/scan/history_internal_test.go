package scan

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// upper is a Redactor that "redacts" the word secret.
type upper struct{ analyzer.Analyzer }

func (upper) RedactText(s string) string { return strings.ReplaceAll(s, "hunter2", "h…") }

func TestBuildStepsMatchLayersAndAreRedacted(t *testing.T) {
	layers := []report.Layer{{Digest: "sha256:a"}, {Digest: "sha256:b"}}
	history := []v1.History{
		{CreatedBy: "/bin/sh -c #(nop) ADD file:abc in / "},
		{CreatedBy: "ARG NPM_TOKEN", EmptyLayer: true},
		{CreatedBy: "RUN |2 NPM_TOKEN=npm_s3cr3t VERSION=1.2 /bin/sh -c echo hunter2 > /etc/pw # buildkit"},
		{CreatedBy: "CMD [\"sh\"]", EmptyLayer: true},
	}
	setBuildSteps(layers, history, []analyzer.Analyzer{upper{}})
	if got, want := layers[0].CreatedBy, "/bin/sh -c #(nop) ADD file:abc in / "; got != want {
		t.Errorf("layer 1 created_by = %q; want %q", got, want)
	}
	if got, want := layers[1].CreatedBy, "RUN |2 NPM_TOKEN=… VERSION=… /bin/sh -c echo h… > /etc/pw # buildkit"; got != want {
		t.Errorf("layer 2 created_by = %q; want %q", got, want)
	}
}

func TestBuildStepIsCut(t *testing.T) {
	got := buildStep("RUN "+strings.Repeat("é", report.MaxCreatedBy), nil)
	if len(got) > report.MaxCreatedBy || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "RUN é") {
		t.Fatalf("cut step: %d bytes, %q…", len(got), got[:12])
	}
	for _, s := range []string{"RUN |x A=b", "|1 A", "/bin/sh -c echo |1 a=b"} {
		if got := maskBuildArgs(s); got != s {
			t.Errorf("maskBuildArgs(%q) = %q; want it unchanged", s, got)
		}
	}
}
