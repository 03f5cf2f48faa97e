package results

import (
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/apiauth"
)

// Validate checks the API authentication settings (and reads the tokens
// file) the way New will.
func (c Config) Validate() error {
	if _, err := newAuth(c, zerolog.Nop()); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	return nil
}

// newAuth builds the API's authenticator from cfg. /healthz, /readyz and
// /metrics stay open (probes and Prometheus scrape without tokens; metrics
// carry counts, no report data).
func newAuth(cfg Config, log zerolog.Logger) (*apiauth.Authenticator, error) {
	off, err := apiauth.Switch("CUSTOMS_API_AUTH", cfg.APIAuth)
	if err != nil {
		return nil, err
	}
	hasTokens := cfg.APITokensFile != "" || cfg.AdminToken != ""
	ac := apiauth.Config{TokensFile: cfg.APITokensFile, AdminToken: cfg.AdminToken}
	switch {
	case off && hasTokens:
		return nil, errors.New("CUSTOMS_API_AUTH=off and API tokens (CUSTOMS_API_TOKENS or CUSTOMS_ADMIN_TOKEN) are both set; unset one")
	case off:
		ac.Anonymous = apiauth.RoleAdmin
		log.Warn().Str("setting", "CUSTOMS_API_AUTH=off").Msg("report API authentication is off: anyone who can reach it reads every report")
	case cfg.AnonymousReads:
		ac.Anonymous = apiauth.RoleRead
	}
	auth, err := apiauth.New(ac)
	if errors.Is(err, apiauth.ErrNoTokens) {
		return nil, errors.New("no API tokens: set CUSTOMS_API_TOKENS (a file of hashed tokens) or CUSTOMS_ADMIN_TOKEN, " +
			"or CUSTOMS_API_AUTH=off to serve reports to anyone who can reach the API")
	}
	return auth, err
}
