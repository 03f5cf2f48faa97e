package customs_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/customs-scan/customs/services/customs"
)

// customs up hands its registry credentials file to the scanner, which
// checks it at start.
func TestUpChecksTheRegistryAuthFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "registry-auth.yaml")
	if err := os.WriteFile(file, []byte("registries:\n  registry.example.com:\n    username: customs\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.RegistryAuthFile = file
	st, err := customs.Start(context.Background(), cfg)
	if err == nil {
		_ = st.Stop()
		t.Fatal("Start accepted a registry auth file with an entry lacking its password")
	}
	if !strings.Contains(err.Error(), "CUSTOMS_REGISTRY_AUTH") || !strings.Contains(err.Error(), "line 2: registry registry.example.com: username without password") {
		t.Fatalf("Start: %v", err)
	}
}
