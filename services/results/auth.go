package results

import (
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/regauth"
)

// Validate refuses what New would: API authentication settings New
// refuses (it reads the tokens file as New will), report signing on
// without a usable key, negative counts or durations. Zero values are fine
// (they mean the defaults). cmd/results calls it before dialling NATS.
func (c Config) Validate() error {
	if err := c.validateValues(); err != nil {
		return err
	}
	if _, err := newAuth(c, zerolog.Nop()); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if _, err := c.Signing.Signer(); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if _, err := regauth.Load(c.RegistryAuthFile); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	return nil
}

// validateValues is Validate without the API authentication and the
// signing key, which New checks as it builds them.
func (c Config) validateValues() error {
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"CUSTOMS_RESULTS_WORKERS", int64(c.Workers)},
		{"CUSTOMS_RESULTS_ACK_WAIT", int64(c.AckWait)},
		{"CUSTOMS_REMATCH_CONCURRENCY", int64(c.RematchConcurrency)},
	} {
		if n.v < 0 {
			return fmt.Errorf("results: %s is negative: want a positive value (0: the default)", n.name)
		}
	}
	if _, err := quarantine.ParseMode(c.Quarantine, quarantine.ModeDryRun); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	switch c.QuarantineDistribution {
	case "", "gate", "move":
	default:
		return fmt.Errorf("results: CUSTOMS_QUARANTINE_DISTRIBUTION=%q: want gate or move", c.QuarantineDistribution)
	}
	switch c.QuarantineECR {
	case "", "archive", "retag", "delete":
	default:
		return fmt.Errorf("results: CUSTOMS_QUARANTINE_ECR=%q: want archive, retag or delete", c.QuarantineECR)
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
