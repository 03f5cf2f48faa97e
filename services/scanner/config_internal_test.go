package scanner

import (
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
	"github.com/customs-scan/customs/pkg/wire"
)

// The defaults live in the env tags (what cmd/scanner and customs up parse)
// and in withDefaults (what Go callers that leave a field zero get): both
// give the same configuration.
func TestDefaultsAgree(t *testing.T) { svcmaintest.CheckDefaults(t, Config.withDefaults) }

// Validate accepts zero values (the defaults), refuses what New would
// (signing on without a key) and negative values that mean nothing.
func TestValidate(t *testing.T) {
	off := wire.SigningConfig{Mode: "off"}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Signing: off}, ""},
		{Config{Signing: off, ScannedTTL: -1, LayerCache: LayerCacheConfig{TTL: -1}}, ""}, // negative: off
		{Config{}, "CUSTOMS_REPORT_SIGNING_KEY"},
		{Config{Signing: off, Workers: -1}, "CUSTOMS_SCANNER_WORKERS"},
		{Config{Signing: off, ScanTimeout: -time.Second}, "CUSTOMS_SCAN_TIMEOUT"},
		{Config{Signing: off, Limits: LimitsConfig{MaxManifestBytes: -1}}, "CUSTOMS_MAX_MANIFEST_BYTES"},
	} {
		err := c.cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
