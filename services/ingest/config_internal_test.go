package ingest

import (
	"testing"

	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
)

// The defaults live in the env tags (what cmd/ingest and customs up parse)
// and in withDefaults (what Go callers that leave a field zero get): both
// give the same configuration.
func TestDefaultsAgree(t *testing.T) { svcmaintest.CheckDefaults(t, Config.withDefaults) }

// Validate accepts zero values (the defaults) and refuses a negative body
// limit, before New would.
func TestValidateLimits(t *testing.T) {
	svcmaintest.CheckValidate(t,
		svcmaintest.Case[Config]{Config: Config{WebhookToken: "t"}},
		svcmaintest.Case[Config]{Config: Config{WebhookToken: "t", MaxBodyBytes: -1}, Want: "CUSTOMS_WEBHOOK_MAX_BYTES"},
	)
}
