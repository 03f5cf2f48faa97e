package scanner

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/customs-scan/customs/pkg/wire"
)

// The defaults appear in the env tags (what cmd/scanner and customs up parse)
// and in withDefaults (what Go callers that leave a field zero get): both
// give the same configuration.
func TestDefaultsAgree(t *testing.T) {
	var fromEnv Config
	if err := env.ParseWithOptions(&fromEnv, env.Options{Environment: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	if got := (Config{}).withDefaults(); !reflect.DeepEqual(got, fromEnv) {
		t.Errorf("withDefaults of a zero Config:\n%+v\nenv.Parse of an empty environment:\n%+v", got, fromEnv)
	}
	// Defaults never replace what was given.
	if got := fromEnv.withDefaults(); !reflect.DeepEqual(got, fromEnv) {
		t.Errorf("withDefaults changed a parsed Config:\n%+v\nwant\n%+v", got, fromEnv)
	}
}

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
