package secrets

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// BenchmarkFindSegments measures the pass that looks for encoded
// segments, over Go's net/http sources (text full of identifiers).
func BenchmarkFindSegments(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src/net/http/*.go"))
	var text []byte
	for _, f := range files {
		data, _ := os.ReadFile(f)
		text = append(text, data...)
	}
	if len(text) == 0 {
		b.Skip("no Go sources")
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		budget := decodeBudget{bytes: maxDecodedBytes, segments: maxSegments}
		findSegments(text, &budget)
	}
}
