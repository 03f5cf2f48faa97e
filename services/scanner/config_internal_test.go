package scanner

import (
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
	type c = svcmaintest.Case[Config]
	svcmaintest.CheckValidate(t,
		c{Config: Config{Signing: off}},
		c{Config: Config{Signing: off, ScannedTTL: -1, LayerCache: LayerCacheConfig{TTL: -1}}}, // negative: off
		c{Config: Config{}, Want: "CUSTOMS_REPORT_SIGNING_KEY"},
		c{Config: Config{Signing: off, Workers: -1}, Want: "CUSTOMS_SCANNER_WORKERS"},
		c{Config: Config{Signing: off, ScanTimeout: -time.Second}, Want: "CUSTOMS_SCAN_TIMEOUT"},
		c{Config: Config{Signing: off, Limits: LimitsConfig{MaxManifestBytes: -1}}, Want: "CUSTOMS_MAX_MANIFEST_BYTES"},
		c{Config: Config{Signing: off, JobKey: "0123456789abcdef0123456789abcdef"}},
		c{Config: Config{Signing: off, JobKey: "short"}, Want: "CUSTOMS_JOB_KEY"},
	)
}
