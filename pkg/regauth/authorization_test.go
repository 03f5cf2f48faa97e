package regauth_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/customs-scan/customs/pkg/regauth"
)

func TestParseAuthorization(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	const secret = "s3cr3t:with:colons"
	for _, tc := range []struct {
		value string
		want  authn.AuthConfig
		err   string
	}{
		{value: "Basic " + b64("robot$proj+scanner-1:"+secret), want: authn.AuthConfig{Username: "robot$proj+scanner-1", Password: secret}},
		{value: "basic " + strings.TrimRight(b64("u:"+secret), "="), want: authn.AuthConfig{Username: "u", Password: secret}},
		{value: "Bearer eyJhbGciOi.x.y", want: authn.AuthConfig{RegistryToken: "eyJhbGciOi.x.y"}},
		{value: "Bearer: JWTTOKENGOESHERE", want: authn.AuthConfig{RegistryToken: "JWTTOKENGOESHERE"}}, // the spec's example
		{value: "BEARER  tok", want: authn.AuthConfig{RegistryToken: "tok"}},
		{value: "", err: "want"},
		{value: "Basic", err: "want"},
		{value: "Basic !!!" + secret, err: "not base64"},
		{value: "Basic " + b64("no-colon"), err: "not user:password"},
		{value: "Basic " + b64(":"+secret), err: "not user:password"},
		{value: "Basic " + b64("user:"), err: "not user:password"},
		{value: "Bearer a b", err: "whitespace"},
		{value: "Digest " + secret, err: "unsupported scheme"},
	} {
		a, err := regauth.ParseAuthorization(tc.value)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.value, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("%q: error %q names the secret", tc.value, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.value, err)
			continue
		}
		got, err := a.Authorization()
		if err != nil || *got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.value, got, err, tc.want)
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			if s := fmt.Sprintf(verb, a); strings.Contains(s, "s3cr3t") || strings.Contains(s, "eyJ") || strings.Contains(s, "JWTTOKEN") {
				t.Errorf("%s of the authenticator shows a secret: %s", verb, s)
			}
		}
	}
}
