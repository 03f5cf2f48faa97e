// Package svcmaintest checks a service configuration the way svcmain reads
// it from the environment.
package svcmaintest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"
)

// CheckDefaults fails t unless the two places a service's defaults live
// agree: withDefaults of a zero C (what Go callers that leave fields zero
// get) equals C parsed from an empty environment (the envDefault tags,
// what the commands get), and withDefaults leaves such a parsed C as it is.
func CheckDefaults[C any](t testing.TB, withDefaults func(C) C) {
	t.Helper()
	var fromEnv C
	if err := env.ParseWithOptions(&fromEnv, env.Options{Environment: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	var zero C
	if got := withDefaults(zero); !reflect.DeepEqual(got, fromEnv) {
		t.Errorf("withDefaults of a zero %T:\n%+v\nparsed from an empty environment:\n%+v", zero, got, fromEnv)
	}
	if got := withDefaults(fromEnv); !reflect.DeepEqual(got, fromEnv) {
		t.Errorf("withDefaults changed a parsed %T:\n%+v\nwant\n%+v", zero, got, fromEnv)
	}
}

// Case is a configuration and what its Validate error must contain ("":
// Validate must accept it).
type Case[C any] struct {
	Config C
	Want   string
}

// CheckValidate fails t for every case whose Validate answer is not the
// one wanted.
func CheckValidate[C interface{ Validate() error }](t testing.TB, cases ...Case[C]) {
	t.Helper()
	for _, c := range cases {
		err := c.Config.Validate()
		if c.Want == "" && err != nil || c.Want != "" && (err == nil || !strings.Contains(err.Error(), c.Want)) {
			t.Errorf("Validate(%+v) = %v, want %q", c.Config, err, c.Want)
		}
	}
}
