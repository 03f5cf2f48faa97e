package results

import (
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
	"github.com/customs-scan/customs/pkg/wire"
)

// The defaults live in the env tags (what cmd/results and customs up parse)
// and in withDefaults (what Go callers that leave a field zero get): both
// give the same configuration.
func TestDefaultsAgree(t *testing.T) { svcmaintest.CheckDefaults(t, Config.withDefaults) }

// Validate accepts zero values (the defaults), refuses what New would
// (signing on without a key, no API tokens) and negative counts.
func TestValidate(t *testing.T) {
	off := wire.SigningConfig{Mode: "off"}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Signing: off, APIAuth: "off"}, ""},
		{Config{APIAuth: "off"}, "CUSTOMS_REPORT_SIGNING_KEY"},
		{Config{Signing: off}, "no API tokens"},
		{Config{Signing: off, APIAuth: "off", Workers: -1}, "CUSTOMS_RESULTS_WORKERS"},
		{Config{Signing: off, APIAuth: "off", RematchConcurrency: -2}, "CUSTOMS_REMATCH_CONCURRENCY"},
	} {
		err := c.cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
