package results

import (
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
	type c = svcmaintest.Case[Config]
	svcmaintest.CheckValidate(t,
		c{Config: Config{Signing: off, APIAuth: "off"}},
		c{Config: Config{APIAuth: "off"}, Want: "CUSTOMS_REPORT_SIGNING_KEY"},
		c{Config: Config{Signing: off}, Want: "no API tokens"},
		c{Config: Config{Signing: off, APIAuth: "off", Workers: -1}, Want: "CUSTOMS_RESULTS_WORKERS"},
		c{Config: Config{Signing: off, APIAuth: "off", RematchConcurrency: -2}, Want: "CUSTOMS_REMATCH_CONCURRENCY"},
	)
}
