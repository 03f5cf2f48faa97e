package secrets_test

import (
	"testing"

	"github.com/customs-scan/customs/pkg/secrets"
)

// BenchmarkNew measures compiling the rules (once per process).
func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := secrets.New(); err != nil {
			b.Fatal(err)
		}
	}
}
