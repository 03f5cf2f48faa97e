package regauth_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/customs-scan/customs/pkg/regauth"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	distPassword   = "dist-password-1b9f"
	harborPassword = "harbor-robot-secret-77c1"
	ghcrToken      = "ghcr-token-a4e2"
	acrIdentity    = "acr-identity-token-5d0c"
	harborAPIPass  = "harbor-api-password-31f8"
)

// full is a file using every form; secrets come from files and the
// environment.
func full(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "registry-password", distPassword+"\n")
	writeFile(t, dir, "acr", acrIdentity)
	t.Setenv("HARBOR_ROBOT_SECRET", harborPassword)
	return writeFile(t, dir, "auth.yaml", `registries:
  Registry.Example.com:443:
    username: customs
    password_file: registry-password      # relative to this file
  harbor.example.com:
    username: robot$customs+scanner
    password_env: HARBOR_ROBOT_SECRET
    kind: harbor
  harbor2.example.com:
    token: `+ghcrToken+`
    harbor:
      url: https://harbor2-api.example.com/
      username: admin
      password: `+harborAPIPass+`
  ghcr.io:
    token: `+ghcrToken+`
  myregistry.azurecr.io:
    identity_token_file: acr
  123456789012.dkr.ecr.eu-west-1.amazonaws.com:
    ecr:
      role_arn: arn:aws:iam::123456789012:role/customs
  210987654321.dkr.ecr.us-east-2.amazonaws.com: {}
  127.0.0.1:5000:
    kind: ecr
    ecr:
      region: eu-west-1
      endpoint: http://127.0.0.1:9999
  docker.io:
    username: me
    password: hub-password
`)
}

func TestLoadYAML(t *testing.T) {
	f, err := regauth.Load(full(t))
	if err != nil {
		t.Fatal(err)
	}
	if f.Len() != 9 {
		t.Fatalf("%d entries: %v", f.Len(), f.Hosts())
	}
	e, ok := f.Entry("registry.example.com")
	if !ok || e.Username != "customs" || e.Password.Reveal() != distPassword || e.Kind() != regauth.KindDistribution {
		t.Errorf("registry.example.com: %v %+v kind %s", ok, e, e.Kind())
	}
	// The port 443 is the host without one; another port is another host.
	if _, ok := f.Entry("REGISTRY.example.com:443"); !ok {
		t.Error("registry.example.com:443 is not registry.example.com")
	}
	if _, ok := f.Entry("registry.example.com:5000"); ok {
		t.Error("registry.example.com:5000 matched registry.example.com")
	}
	if _, ok := f.Entry("sub.registry.example.com"); ok {
		t.Error("a subdomain matched")
	}
	h, _ := f.Entry("harbor.example.com")
	if h.Kind() != regauth.KindHarbor || h.Harbor.URL != "https://harbor.example.com" || h.Harbor.Username != "robot$customs+scanner" ||
		h.Harbor.Password.Reveal() != harborPassword {
		t.Errorf("harbor defaults: kind %s %+v", h.Kind(), h.Harbor)
	}
	h2, _ := f.Entry("harbor2.example.com")
	if h2.Kind() != regauth.KindHarbor || h2.Harbor.URL != "https://harbor2-api.example.com" || h2.Harbor.Username != "admin" ||
		h2.Harbor.Password.Reveal() != harborAPIPass || h2.Token.Reveal() != ghcrToken {
		t.Errorf("harbor block: kind %s %+v", h2.Kind(), h2.Harbor)
	}
	if g, _ := f.Entry("ghcr.io"); g.Token.Reveal() != ghcrToken || g.Kind() != regauth.KindDistribution {
		t.Errorf("ghcr.io: %+v", g)
	}
	if a, _ := f.Entry("myregistry.azurecr.io"); a.IdentityToken.Reveal() != acrIdentity {
		t.Errorf("acr: %+v", a)
	}
	ecr, _ := f.Entry("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
	if ecr.Kind() != regauth.KindECR || ecr.ECR.Region != "eu-west-1" || ecr.ECR.RoleARN != "arn:aws:iam::123456789012:role/customs" {
		t.Errorf("ecr: kind %s %+v", ecr.Kind(), ecr.ECR)
	}
	if e2, _ := f.Entry("210987654321.dkr.ecr.us-east-2.amazonaws.com"); e2.Kind() != regauth.KindECR || e2.ECR.Region != "us-east-2" {
		t.Errorf("ecr from the hostname alone: kind %s %+v", e2.Kind(), e2.ECR)
	}
	if l, _ := f.Entry("127.0.0.1:5000"); l.Kind() != regauth.KindECR || l.ECR.Endpoint != "http://127.0.0.1:9999" || l.ECR.Region != "eu-west-1" {
		t.Errorf("ecr stand-in: %+v", l)
	}
	// Docker Hub under any of its names.
	for _, host := range []string{"docker.io", "index.docker.io", "registry-1.docker.io"} {
		if d, ok := f.Entry(host); !ok || d.Username != "me" {
			t.Errorf("%s: %v %+v", host, ok, d)
		}
	}
}

func TestEmptyPathIsAnEmptyFile(t *testing.T) {
	f, err := regauth.Load("")
	if err != nil || f.Len() != 0 {
		t.Fatalf("Load(\"\") = %v, %v", f, err)
	}
	auth, err := f.Keychain().Resolve(mustRepo(t, "registry.example.com/x"))
	if err != nil || auth != authn.Anonymous {
		t.Fatalf("empty file resolves %v, %v", auth, err)
	}
	if _, err := regauth.Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestLoadDockerConfig(t *testing.T) {
	dir := t.TempDir()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	p := writeFile(t, dir, "config.json", `{
  "auths": {
    "https://index.docker.io/v1/": {"auth": "`+b64("hubuser:hub:pass")+`"},
    "registry.example.com": {"username": "customs", "password": "`+distPassword+`"},
    "myregistry.azurecr.io": {"auth": "`+b64("00000000-0000-0000-0000-000000000000:")+`", "identitytoken": "`+acrIdentity+`"},
    "ghcr.io": {"registrytoken": "`+ghcrToken+`", "email": "x@example.com"}
  },
  "psFormat": "table"
}`)
	f, err := regauth.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := f.Entry("index.docker.io"); d.Username != "hubuser" || d.Password.Reveal() != "hub:pass" {
		t.Errorf("docker hub: %+v", d)
	}
	if r, _ := f.Entry("registry.example.com"); r.Username != "customs" || r.Password.Reveal() != distPassword {
		t.Errorf("registry.example.com: %+v", r)
	}
	if a, _ := f.Entry("myregistry.azurecr.io"); a.IdentityToken.Reveal() != acrIdentity || !a.Password.IsZero() {
		t.Errorf("acr: %+v", a)
	}
	if g, _ := f.Entry("ghcr.io"); g.Token.Reveal() != ghcrToken {
		t.Errorf("ghcr: %+v", g)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Setenv("EMPTY_SECRET", "")
	for _, tc := range []struct {
		name, content, want string
	}{
		{"unknown top-level key", "registry:\n  a.example.com: {}\n", "line 1: unknown key \"registry\""},
		{"unknown entry key", "registries:\n  a.example.com:\n    username: u\n    password: p\n    passwd: p\n", "line 5: unknown key \"passwd\""},
		{"password twice", "registries:\n  a.example.com:\n    username: u\n    password: p\n    password_env: X\n", "line 5: password is given twice"},
		{"username alone", "registries:\n  a.example.com:\n    username: u\n", "line 2: registry a.example.com: username without password"},
		{"password alone", "registries:\n  a.example.com:\n    password: p\n", "password without username"},
		{"no credentials", "registries:\n  a.example.com: {}\n", "line 2: registry a.example.com: no credentials"},
		{"two kinds of credentials", "registries:\n  a.example.com:\n    username: u\n    password: p\n    token: t\n", "give one of username/password, token or identity_token"},
		{"unset env", "registries:\n  a.example.com:\n    username: u\n    password_env: NOT_SET_ANYWHERE_42\n", "line 4: password_env: environment variable \"NOT_SET_ANYWHERE_42\" is not set or empty"},
		{"empty env", "registries:\n  a.example.com:\n    username: u\n    password_env: EMPTY_SECRET\n", "is not set or empty"},
		{"missing file", "registries:\n  a.example.com:\n    username: u\n    password_file: /nonexistent/pw\n", "line 4: password_file: open /nonexistent/pw"},
		{"bad kind", "registries:\n  a.example.com:\n    kind: quay\n", "line 3: kind \"quay\""},
		{"harbor block on distribution", "registries:\n  a.example.com:\n    kind: distribution\n    username: u\n    password: p\n    harbor:\n      url: https://a\n", "line 7: registry a.example.com: harbor settings are for kind harbor"},
		{"harbor without API credentials", "registries:\n  a.example.com:\n    kind: harbor\n    token: t\n", "the Harbor API needs a username and password"},
		{"ecr without region", "registries:\n  127.0.0.1:5000:\n    kind: ecr\n", "ecr.region is required"},
		{"ecr unknown key", "registries:\n  1.example.com:\n    ecr:\n      region: eu-west-1\n      profile: x\n", "line 5: unknown ecr key \"profile\""},
		{"ecr bad role", "registries:\n  1.example.com:\n    ecr:\n      region: eu-west-1\n      role_arn: customs\n", "line 5: role_arn"},
		{"scheme in host", "registries:\n  https://a.example.com:\n    token: t\n", "want host[:port] only"},
		{"bad port", "registries:\n  a.example.com:99999:\n    token: t\n", "line 2: registry \"a.example.com:99999\""},
		{"duplicate host", "registries:\n  a.example.com:\n    token: t\n  A.EXAMPLE.COM:443:\n    token: u\n", "line 4: registry \"a.example.com\" is already given on line 2"},
		{"not a mapping", "- a\n", "line 1: want a mapping"},
		{"empty", "", "empty file"},
		{"docker helper", `{"auths": {}, "credsStore": "desktop"}`, "credential helpers are not read"},
		{"docker bad auth", `{"auths": {"a.example.com": {"auth": "!!!"}}}`, "line 1: auths a.example.com: auth is not base64 of username:password"},
		{"docker unknown key", "{\"auths\": {\"a.example.com\": {\n\"auth\": \"dTpw\", \"token\": \"x\"}}}", "line 2: auths a.example.com: unknown key \"token\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "auth.yaml", tc.content)
			_, err := regauth.Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file", err)
			}
			// No value of a secret key is quoted.
			for _, leak := range []string{"password: p", `"p"`, "dTpw"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q quotes a secret (%s)", err, leak)
				}
			}
		})
	}
}

// No formatting of the loaded types shows a secret.
func TestSecretsNeverFormat(t *testing.T) {
	f, err := regauth.Load(full(t))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{distPassword, harborPassword, ghcrToken, acrIdentity, harborAPIPass, "hub-password"}
	var things []any
	for _, h := range f.Hosts() {
		e, _ := f.Entry(h)
		things = append(things, e, &e, e.Password, e.Token, e.IdentityToken, e.Harbor, &e.Harbor, e.Harbor.Password, []regauth.Entry{e},
			map[string]regauth.Entry{h: e}, struct{ inner regauth.Entry }{e})
	}
	things = append(things, f, *f)
	var out strings.Builder
	for _, x := range things {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%T"} {
			fmt.Fprintf(&out, verb+"\n", x)
		}
		b, err := json.Marshal(x)
		if err != nil && !strings.Contains(err.Error(), "unsupported") {
			t.Errorf("json.Marshal(%T): %v", x, err)
		}
		out.Write(b)
	}
	s := out.String()
	for _, secret := range secrets {
		for _, form := range []string{secret, fmt.Sprintf("%x", secret), fmt.Sprintf("%X", secret)} {
			if strings.Contains(s, form) {
				t.Errorf("formatting shows %q", secret)
			}
		}
	}
	if !strings.Contains(s, "[redacted]") || !strings.Contains(s, "registry.example.com") {
		t.Errorf("formatting shows neither the redaction nor the host: %.500s", s)
	}
}

func mustRepo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fixedKeychain hands out one credential for every host.
type fixedKeychain struct{ cfg authn.AuthConfig }

func (k fixedKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(k.cfg), nil
}

func TestKeychainResolvesExactHostsOnly(t *testing.T) {
	f, err := regauth.Load(full(t))
	if err != nil {
		t.Fatal(err)
	}
	fallback := fixedKeychain{authn.AuthConfig{Username: "fallback", Password: "fallback-pw"}}
	for _, tc := range []struct {
		repo     string
		fallback bool
		want     authn.AuthConfig
	}{
		{"registry.example.com/team/app", false, authn.AuthConfig{Username: "customs", Password: distPassword}},
		{"registry.example.com:443/team/app", false, authn.AuthConfig{Username: "customs", Password: distPassword}},
		{"ghcr.io/org/app", false, authn.AuthConfig{RegistryToken: ghcrToken}},
		{"myregistry.azurecr.io/app", false, authn.AuthConfig{IdentityToken: acrIdentity}},
		{"ubuntu", false, authn.AuthConfig{Username: "me", Password: "hub-password"}},
		{"registry.example.com:5000/team/app", false, authn.AuthConfig{}},
		{"evil.registry.example.com/team/app", false, authn.AuthConfig{}},
		{"registry.example.com.evil.io/team/app", false, authn.AuthConfig{}},
		{"other.example.com/x", true, authn.AuthConfig{Username: "fallback", Password: "fallback-pw"}},
		// A host in the file never reaches the fallback.
		{"registry.example.com/team/app", true, authn.AuthConfig{Username: "customs", Password: distPassword}},
	} {
		var opts []regauth.KeychainOption
		if tc.fallback {
			opts = append(opts, regauth.WithFallback(fallback))
		}
		auth, err := f.Keychain(opts...).Resolve(mustRepo(t, tc.repo))
		if err != nil {
			t.Fatalf("%s: %v", tc.repo, err)
		}
		if tc.want == (authn.AuthConfig{}) {
			if auth != authn.Anonymous {
				t.Errorf("%s: not anonymous", tc.repo)
			}
			continue
		}
		got, err := auth.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if *got != tc.want {
			t.Errorf("%s (fallback %v): got user %q, want %q", tc.repo, tc.fallback, got.Username, tc.want.Username)
		}
	}
}
