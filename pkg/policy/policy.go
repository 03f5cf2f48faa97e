// Package policy decides a report's verdict (pass, warn, quarantine) and
// names the rule that decided it.
//
// A Policy is the built-in rules (Default) plus, optionally, operator rules
// loaded from a YAML policy file (Load, LoadFile): CEL expressions over the
// report, scoped to repository patterns. Operator rules are evaluated in
// file order before the built-in ones; the first that matches decides. See
// README.md for the file format and the built-in rules.
//
// A Policy is immutable once loaded and safe for concurrent use.
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"

	"github.com/customs-scan/customs/pkg/report"
)

// DefaultCostLimit bounds the evaluation of one rule for one report, in CEL
// cost units (roughly one per operation; a comprehension costs about its
// list's length times its body). Exceeding it is an evaluation error.
const DefaultCostLimit = 1_000_000

// MaxCostLimit is the largest cost_limit a policy file may set.
const MaxCostLimit = 100_000_000

// maxFileBytes bounds a policy file.
const maxFileBytes = 1 << 20

// Decision is the outcome of a policy for one report.
type Decision struct {
	Verdict string // report.VerdictPass, VerdictWarn or VerdictQuarantine
	Rule    string // the deciding rule: an operator rule's name or "default:…"
	Reason  string // why, in words
	// Errors are operator rules that could not be evaluated for this report
	// (cost limit exceeded, no such list element, …). Such a rule is skipped
	// as if it had not matched; the caller should log these.
	Errors []error
}

// Policy decides verdicts. The zero value and a nil *Policy behave like
// Default().
type Policy struct {
	warnAt    string
	costLimit uint64
	rules     []*rule
}

type rule struct {
	name         string
	repositories []repoPattern
	when         string
	prg          cel.Program
	verdict      string
	reason       string
}

// Default returns the policy made of the built-in rules only, warning at HIGH.
func Default() *Policy {
	return &Policy{warnAt: DefaultWarnAt, costLimit: DefaultCostLimit}
}

// file is the policy file's schema.
type file struct {
	WarnAt    string     `yaml:"warn_at"`
	CostLimit uint64     `yaml:"cost_limit"`
	Rules     []ruleSpec `yaml:"rules"`
}

type ruleSpec struct {
	Name         string   `yaml:"name"`
	Repositories []string `yaml:"repositories"`
	When         string   `yaml:"when"`
	Verdict      string   `yaml:"verdict"`
	Reason       string   `yaml:"reason"`
}

// LoadFile reads and compiles the policy file at path.
func LoadFile(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	return load(f, path)
}

// Load reads a YAML (or JSON) policy file and compiles every rule's CEL
// expression. Errors name the file line, the rule and, for expressions, the
// position inside the expression. An empty file gives Default().
func Load(r io.Reader) (*Policy, error) { return load(r, "policy") }

func load(r io.Reader, name string) (*Policy, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxFileBytes)
	}
	var spec file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: more than one YAML document", name)
	}
	lines := ruleLines(data)

	p := Default()
	if spec.WarnAt != "" {
		w := strings.ToUpper(strings.TrimSpace(spec.WarnAt))
		if _, ok := severityRanks[w]; !ok && w != severityNone {
			return nil, fmt.Errorf("%s: warn_at %q: want one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL, NONE", name, spec.WarnAt)
		}
		p.warnAt = w
	}
	if spec.CostLimit != 0 {
		if spec.CostLimit > MaxCostLimit {
			return nil, fmt.Errorf("%s: cost_limit %d is above the maximum %d", name, spec.CostLimit, MaxCostLimit)
		}
		p.costLimit = spec.CostLimit
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("policy: CEL environment: %w", err)
	}
	seen := map[string]bool{}
	var errs []error
	for i, rs := range spec.Rules {
		where := fmt.Sprintf("%s: rules[%d]", name, i)
		if l := lines[i]; l.rule > 0 {
			where = fmt.Sprintf("%s:%d: rules[%d]", name, l.rule, i)
		}
		if rs.Name != "" {
			where += fmt.Sprintf(" %q", rs.Name)
		}
		ru, err := p.compileRule(env, rs, seen)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		p.rules = append(p.rules, ru)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func (p *Policy) compileRule(env *cel.Env, rs ruleSpec, seen map[string]bool) (*rule, error) {
	name := strings.TrimSpace(rs.Name)
	switch {
	case name == "":
		return nil, errors.New("name is required")
	case strings.HasPrefix(name, "default:"):
		return nil, errors.New(`names starting with "default:" are reserved for the built-in rules`)
	case seen[name]:
		return nil, errors.New("duplicate rule name")
	}
	seen[name] = true
	ru := &rule{name: name, when: rs.When, reason: rs.Reason}
	switch v := strings.ToLower(strings.TrimSpace(rs.Verdict)); v {
	case report.VerdictPass, report.VerdictWarn, report.VerdictQuarantine:
		ru.verdict = v
	case "":
		return nil, errors.New("verdict is required (pass, warn or quarantine)")
	default:
		return nil, fmt.Errorf("verdict %q: want pass, warn or quarantine", rs.Verdict)
	}
	for _, pat := range rs.Repositories {
		rp, err := compileRepoPattern(pat)
		if err != nil {
			return nil, err
		}
		ru.repositories = append(ru.repositories, rp)
	}
	if strings.TrimSpace(rs.When) == "" {
		return nil, errors.New(`'when' is required (write 'true' to match every report)`)
	}
	prg, err := compileExpr(env, rs.When, p.costLimit)
	if err != nil {
		return nil, err
	}
	ru.prg = prg
	return ru, nil
}

type ruleLine struct{ rule int }

// ruleLines finds the line of each entry of the rules list, for error
// messages. Best effort: missing entries have line 0.
func ruleLines(data []byte) map[int]ruleLine {
	out := map[int]ruleLine{}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return out
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "rules" || top.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for j, item := range top.Content[i+1].Content {
			out[j] = ruleLine{rule: item.Line}
		}
	}
	return out
}

// RuleNames lists the rules in evaluation order: the operator rules, then
// the built-in ones.
func (p *Policy) RuleNames() []string {
	var names []string
	if p != nil {
		for _, ru := range p.rules {
			names = append(names, ru.name)
		}
	}
	return append(names, RuleScanFailed, RuleIndex, RuleMalware, RuleLiveCredential, RuleSuspicious, RuleSeverity, RulePass)
}

// WarnAt is the severity at and above which default:severity warns, or
// "NONE" when it is disabled.
func (p *Policy) WarnAt() string {
	if p == nil || p.warnAt == "" {
		return DefaultWarnAt
	}
	return p.warnAt
}

// Decide returns the verdict of r and the rule that decided it.
//
// Order: a failed scan (r.Status == "failed") keeps the scanner's verdict
// (default:scan-failed); an index report (one listing manifests) gets the
// worst verdict of its images (default:index); otherwise the operator
// rules in file order, the first whose repositories match and whose
// expression is true deciding; then default:malware,
// default:live-credential, default:severity, default:pass.
func (p *Policy) Decide(r *report.Report) Decision {
	if p == nil {
		p = Default()
	}
	if r.Status == report.StatusFailed {
		return decideFailed(r)
	}
	if len(r.Manifests) > 0 {
		return decideIndex(r)
	}
	var errs []error
	if len(p.rules) > 0 {
		var vars map[string]any
		for _, ru := range p.rules {
			if !ru.appliesTo(r.Artifact.Registry, r.Artifact.Repository) {
				continue
			}
			if vars == nil {
				vars = activation(r)
			}
			ok, err := ru.eval(vars)
			if err != nil {
				errs = append(errs, fmt.Errorf("policy rule %q: %w", ru.name, err))
				continue
			}
			if ok {
				reason := ru.reason
				if reason == "" {
					reason = "policy rule " + ru.name + " matched: " + ru.when
				}
				return Decision{Verdict: ru.verdict, Rule: ru.name, Reason: reason, Errors: errs}
			}
		}
	}
	if p.warnAt == "" { // zero Policy
		p = &Policy{warnAt: DefaultWarnAt}
	}
	d := p.decideDefaults(r)
	d.Errors = errs
	return d
}

// Apply decides r's verdict and writes it into r.Verdict, r.VerdictRule and
// r.VerdictReason. It returns the decision, whose Errors the caller should
// log.
func (p *Policy) Apply(r *report.Report) Decision {
	d := p.Decide(r)
	r.Verdict, r.VerdictRule, r.VerdictReason = d.Verdict, d.Rule, d.Reason
	return d
}

func (ru *rule) appliesTo(registry, repository string) bool {
	if len(ru.repositories) == 0 {
		return true
	}
	for _, rp := range ru.repositories {
		if rp.match(registry, repository) {
			return true
		}
	}
	return false
}

func (ru *rule) eval(vars map[string]any) (bool, error) {
	out, _, err := ru.prg.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("expression gave %s, not a bool", out.Type().TypeName())
	}
	return b, nil
}
