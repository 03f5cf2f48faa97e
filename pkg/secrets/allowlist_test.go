package secrets_test

import (
	"testing"

	"github.com/customs-scan/customs/pkg/secrets"
)

// gitleaks' stop words allow a generic key whose value holds one (in any
// case), and only then: the engine's own matcher stands in for the
// library's trie.
func TestStopWordsAllowGenericKeys(t *testing.T) {
	e, err := secrets.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		value string
		found bool
	}{
		{"Zq8Lr2Xv9Tb4Nc6Md1Pw", true},
		{"Zq8Lr2ADMINv9Tb4Nc6Md1Pw", false}, // "admin", upper case
		{"Zq8Lr2Xv9Tb4adobeNc6Md1Pw", false},
		{"Zq8Lr2Xv9Tb4Nc6Md1Pw000000", false},
	} {
		text := []byte("service_api_key = \"" + c.value + "\"\n")
		got := false
		for _, f := range e.Find("app/config.ini", text, 10) {
			got = got || f.Rule == "generic-api-key"
		}
		if got != c.found {
			t.Errorf("%q: generic-api-key found %v; want %v", c.value, got, c.found)
		}
	}
}
