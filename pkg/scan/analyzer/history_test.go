package analyzer_test

import (
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

func TestHistoryLayers(t *testing.T) {
	layers := []report.Layer{{Digest: "a"}, {Digest: "b"}}
	h := []v1.History{{EmptyLayer: true}, {}, {EmptyLayer: true}, {}, {EmptyLayer: true}, {}}
	got := analyzer.HistoryLayers(h, layers)
	want := []string{"a", "a", "b", "b", "", ""}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
