package secrets_test

import (
	"testing"

	"github.com/customs-scan/customs/pkg/secrets"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"ghp_abcdefghijklmnopqrstuvwxyz0123456789": "ghp_…89",
		"0123456789abcdef":                         "0123…ef",
		"0123456789abcde":                          "…",
		"short":                                    "…",
		"":                                         "…",
		"äöüßäöüßäöüßäöüßxy":                       "äöüß…xy",
	} {
		if got := secrets.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
