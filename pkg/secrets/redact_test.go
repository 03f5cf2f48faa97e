package secrets_test

import (
	"strings"
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

func TestRedactTextReducesEverySecret(t *testing.T) {
	e, err := secrets.New()
	if err != nil {
		t.Fatal(err)
	}
	token := "ghp_R4nd0mT0k3nV4lu3Xq9Zk2Lm8Np5Wc7Hy1Jd6"
	text := "RUN |1 GITHUB_TOKEN=" + token + " /bin/sh -c curl -H 'Authorization: token " + token + "' https://example.com"
	got := e.RedactText(text)
	if strings.Contains(got, token) {
		t.Fatalf("RedactText kept the secret: %s", got)
	}
	if want := secrets.Redact(token); strings.Count(got, want) != 2 {
		t.Fatalf("RedactText = %q; want both occurrences as %q", got, want)
	}
	if plain := "RUN /bin/sh -c apt-get install -y curl"; e.RedactText(plain) != plain {
		t.Fatalf("RedactText changed a text without secrets: %q", e.RedactText(plain))
	}
}
