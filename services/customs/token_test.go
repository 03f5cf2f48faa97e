package customs_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/apiauth"
)

// `customs token new` prints a token and a tokens-file entry that accepts
// exactly it; `customs token hash` agrees.
func TestTokenCommands(t *testing.T) {
	bin := customsBin(t)
	out, err := exec.Command(bin, "token", "new", "--name", "ci-a", "--repositories", "team-a/*").Output()
	if err != nil {
		t.Fatalf("token new: %v", err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	_, entry, ok := strings.Cut(string(out), "tokens:")
	fields := strings.Fields(first)
	if !ok || len(fields) == 0 {
		t.Fatalf("token new output:\n%s", out)
	}
	token := fields[len(fields)-1]
	toks, err := apiauth.Parse([]byte("tokens:" + entry))
	if err != nil || len(toks) != 1 || toks[0].Name != "ci-a" || toks[0].Role != apiauth.RoleRead ||
		len(toks[0].Repositories) != 1 || toks[0].Repositories[0] != "team-a/*" {
		t.Fatalf("entry %q: %+v %v", entry, toks, err)
	}
	if !strings.Contains(entry, apiauth.Hash(token)) {
		t.Errorf("entry does not hold the token's hash")
	}
	cmd := exec.Command(bin, "token", "hash")
	cmd.Stdin = strings.NewReader(token + "\n")
	h, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(h)) != apiauth.Hash(token) {
		t.Errorf("token hash: %q %v", h, err)
	}
	if err := exec.Command(bin, "token", "new", "--name", "x", "--role", "root").Run(); err == nil {
		t.Error("token new --role root succeeded")
	}
}
