package analyzer

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/report"
)

// HistoryLayers returns, for each history entry, the digest of the layer
// it created: entries with EmptyLayer false correspond, in order, to
// layers; an empty-layer entry (ENV, ARG, LABEL…) gets the next layer
// created after it ("" when none, or when the history lists more layers
// than the image has).
func HistoryLayers(history []v1.History, layers []report.Layer) []string {
	out := make([]string, len(history))
	n := 0
	for i, h := range history {
		if h.EmptyLayer {
			continue
		}
		if n < len(layers) {
			out[i] = layers[n].Digest
		}
		n++
	}
	next := ""
	for i := len(history) - 1; i >= 0; i-- {
		if history[i].EmptyLayer {
			out[i] = next
		} else {
			next = out[i]
		}
	}
	return out
}
