package regauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// ParseAuthorization turns the value of an HTTP Authorization header meant
// for a registry (what Harbor puts in a scan request: its per-scan robot as
// "Basic base64(name:secret)" or a registry token as "Bearer <jwt>") into
// an authenticator. The scheme is case-insensitive; "Bearer:" (the spec's
// own example) is read as "Bearer". Errors say what is wrong, never the
// value; the authenticator formats as "[redacted]".
func ParseAuthorization(value string) (authn.Authenticator, error) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(value), " ")
	rest = strings.TrimSpace(rest)
	if !ok || rest == "" {
		return nil, errors.New("authorization: want \"Basic <base64 user:password>\" or \"Bearer <token>\"")
	}
	switch strings.ToLower(strings.TrimSuffix(scheme, ":")) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			// Some clients drop the padding.
			if raw, err = base64.RawStdEncoding.DecodeString(rest); err != nil {
				return nil, errors.New("authorization: Basic credentials are not base64")
			}
		}
		// The robot's secret may itself hold ':'; only the first one
		// separates the name.
		user, pass, ok := strings.Cut(string(raw), ":")
		clear(raw)
		if !ok || user == "" || pass == "" {
			return nil, errors.New("authorization: Basic credentials are not user:password")
		}
		return &Credentials{Username: user, Password: NewSecret(pass)}, nil
	case "bearer":
		if strings.ContainsAny(rest, " \t\r\n") {
			return nil, errors.New("authorization: Bearer token holds whitespace")
		}
		return &Credentials{Token: NewSecret(rest)}, nil
	}
	return nil, errors.New("authorization: unsupported scheme; want Basic or Bearer")
}

// Credentials is an authn.Authenticator for one set of Basic credentials
// or one registry token (sent as "Bearer <token>", never exchanged at a
// token realm). It formats without its secrets.
type Credentials struct {
	Username string
	Password Secret
	Token    Secret
}

// Authorization implements authn.Authenticator.
func (c *Credentials) Authorization() (*authn.AuthConfig, error) {
	if !c.Token.IsZero() {
		return &authn.AuthConfig{RegistryToken: c.Token.Reveal()}, nil
	}
	return &authn.AuthConfig{Username: c.Username, Password: c.Password.Reveal()}, nil
}

// String names the kind of credentials only.
func (c *Credentials) String() string {
	if !c.Token.IsZero() {
		return "regauth.Credentials(bearer token)"
	}
	return "regauth.Credentials(basic " + c.Username + ")"
}

// Format keeps every verb (%#v and %+v included) on String.
func (c *Credentials) Format(s fmt.State, _ rune) { _, _ = io.WriteString(s, c.String()) }
