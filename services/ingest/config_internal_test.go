package ingest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"
)

// The defaults appear in the env tags (what cmd/ingest and customs up parse)
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

// Validate accepts zero values (the defaults) and refuses a negative body
// limit, before New would.
func TestValidateLimits(t *testing.T) {
	if err := (Config{WebhookToken: "t"}).Validate(); err != nil {
		t.Errorf("zero values: %v", err)
	}
	if err := (Config{WebhookToken: "t", MaxBodyBytes: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "CUSTOMS_WEBHOOK_MAX_BYTES") {
		t.Errorf("negative body limit: %v", err)
	}
}
