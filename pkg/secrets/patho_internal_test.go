package secrets

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestAdversarialInputs runs texts made to hurt a keyword-and-regex
// engine: keywords at every byte, one huge line, thousands of matches.
// Every step per keyword hit is bounded, so these take linear time (a
// quadratic engine takes minutes on them); no timing is asserted.
func TestAdversarialInputs(t *testing.T) {
	e := defaultEngine(t)
	const size = 128 << 10
	const maxFindings = 100 // the analyzer's default
	inputs := map[string]string{
		"minified": "var a={apiKey:'abcdefghij0123456789',token:\"x\",auth:1,secret_key:'Zm9vYmFyYmF6cXV4'};",
		"keywords": "keykeykeyapiapitokensecretaccess",
		"ey":       "ey",
		"vault":    "s.s.hvs.",
		"curl":     "curl -u ",
		"pem":      "-----BEGIN ",
		"k8s":      "kind: secret\ndata:\n",
		"lines":    "key\n",
		"jwt":      "eyJhbGciOiJIUzI1NiJ9",
		// Encoded segments at every few bytes, encodings of encodings,
		// one huge percent-encoded line: the decoding budget holds.
		"base64 units": "dG9rZW46IGFiY2RlZmdoaWprbG1ub3A= ",
		"nested":       nestedBase64("token: x", 6) + " ",
		"hex":          "746f6b656e3a2061626364656667686970 ",
		"percent":      "%74%6f%6b%65%6e",
	}
	for name, unit := range inputs {
		in := []byte(strings.Repeat(unit, size/len(unit)))
		got := e.detect("app/x.js", in, maxFindings)
		if len(got) > maxFindings {
			t.Errorf("%s: %d findings, more than the limit", name, len(got))
		}
		if found := e.Find("app/x.js", in, maxFindings); len(found) > maxFindings {
			t.Errorf("%s: Find: %d findings, more than the limit", name, len(found))
		}
	}
}

func nestedBase64(s string, n int) string {
	for range n {
		s = base64.StdEncoding.EncodeToString([]byte(s))
	}
	return s
}
