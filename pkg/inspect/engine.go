package inspect

import (
	"fmt"

	"github.com/customs-scan/customs/pkg/policy"
	"github.com/customs-scan/customs/pkg/scan"
)

// EngineConfig says which detection engines and policy a process uses. The
// scanner reads it from the environment; `customs scan` from flags.
type EngineConfig struct {
	// PolicyFile is a verdict policy (YAML); empty: the built-in rules.
	PolicyFile string `env:"CUSTOMS_POLICY_FILE"`
}

// Engine holds what is compiled once per process and shared by every scan:
// the analyzers (signature sets, rules) and the verdict policy.
type Engine struct {
	analyzers []scan.Analyzer
	policy    *policy.Policy
}

// NewEngine compiles the analyzers and loads the policy.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	e := &Engine{analyzers: scan.DefaultAnalyzers(), policy: policy.Default()}
	if cfg.PolicyFile != "" {
		p, err := policy.LoadFile(cfg.PolicyFile)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", cfg.PolicyFile, err)
		}
		e.policy = p
	}
	return e, nil
}

// Options returns run options using the engine, with extra scan options
// (limits) appended.
func (e *Engine) Options(extra ...scan.Option) Options {
	opts := append([]scan.Option{scan.WithAnalyzers(e.analyzers...)}, extra...)
	return Options{Scan: opts, Policy: e.policy}
}

// Close releases engine resources (connections to external engines).
func (e *Engine) Close() error { return nil }
