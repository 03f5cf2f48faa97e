package policy

import (
	"fmt"
	"reflect"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"

	"github.com/customs-scan/customs/pkg/report"
)

// Limits on an expression, checked when the policy is loaded.
const (
	maxExprBytes = 16 << 10
	maxExprNodes = 2000
)

// The CEL variables mirror the report's JSON: report structs are CEL
// objects whose fields carry their JSON names (v.fixed_version,
// f.kind, artifact.media_type), so a misspelt field is a load-time error.
// Lists are never null: a nil Go slice is an empty CEL list.
var newEnv = sync.OnceValues(func() (*cel.Env, error) {
	objects := []any{
		reflect.TypeFor[report.Report](),
		reflect.TypeFor[report.Artifact](),
		reflect.TypeFor[report.Scanner](),
		reflect.TypeFor[report.OS](),
		reflect.TypeFor[report.Layer](),
		reflect.TypeFor[report.Package](),
		reflect.TypeFor[report.Vulnerability](),
		reflect.TypeFor[report.Finding](),
		reflect.TypeFor[report.ManifestRef](),
		ext.ParseStructTag("json"),
	}
	obj := func(t string) *cel.Type { return cel.ObjectType("report." + t) }
	return cel.NewEnv(
		ext.NativeTypes(objects...),
		ext.Strings(),
		ext.Sets(),
		cel.ParserExpressionSizeLimit(maxExprBytes),
		cel.ExpressionNodeLimit(maxExprNodes),
		cel.Variable("artifact", obj("Artifact")),
		cel.Variable("repository", cel.StringType),
		cel.Variable("registry", cel.StringType),
		cel.Variable("scanner", obj("Scanner")),
		cel.Variable("status", cel.StringType),
		cel.Variable("os", obj("OS")),
		cel.Variable("layers", cel.ListType(obj("Layer"))),
		cel.Variable("packages", cel.ListType(obj("Package"))),
		cel.Variable("vulnerabilities", cel.ListType(obj("Vulnerability"))),
		cel.Variable("findings", cel.ListType(obj("Finding"))),
		cel.Variable("ignored_vulnerabilities", cel.ListType(obj("Vulnerability"))),
		cel.Variable("vulnerability_db_status", cel.StringType),
		cel.Variable("vulnerability_db_version", cel.StringType),
		cel.Function("severity_rank",
			cel.Overload("severity_rank_string", []*cel.Type{cel.StringType}, cel.IntType,
				cel.UnaryBinding(func(v ref.Val) ref.Val {
					s, ok := v.Value().(string)
					if !ok {
						return types.NewErr("severity_rank: want a string")
					}
					return types.Int(SeverityRank(s))
				}))),
	)
})

// compileExpr type-checks expr (it must be a bool) and plans it with the
// cost limit.
func compileExpr(env *cel.Env, expr string, costLimit uint64) (cel.Program, error) {
	src, err := common.NewStringSourceWithLimit(expr, "when", maxExprBytes)
	if err != nil {
		return nil, err
	}
	ast, iss := env.CompileSource(src)
	if iss != nil && iss.Err() != nil {
		return nil, iss.Err()
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("expression is a %s, want a bool", t)
	}
	return env.Program(ast, cel.CostLimit(costLimit))
}

// activation binds the report to the CEL variables.
func activation(r *report.Report) map[string]any {
	return map[string]any{
		"artifact":        r.Artifact,
		"repository":      r.Artifact.Repository,
		"registry":        r.Artifact.Registry,
		"scanner":         r.Scanner,
		"status":          r.Status,
		"os":              r.OS,
		"layers":          nonNil(r.Layers),
		"packages":        nonNil(r.Packages),
		"vulnerabilities": nonNil(r.Vulnerabilities),
		"findings":        nonNil(r.Findings),
		// Ignored matches are exposed as plain vulnerabilities: a rule
		// may still refuse an image whose ignore list grew too long.
		"ignored_vulnerabilities":  ignoredVulns(r.IgnoredVulnerabilities),
		"vulnerability_db_status":  r.VulnerabilityDB.Status,
		"vulnerability_db_version": r.VulnerabilityDB.Version,
	}
}

func ignoredVulns(in []report.IgnoredVulnerability) []report.Vulnerability {
	out := make([]report.Vulnerability, len(in))
	for i, v := range in {
		out[i] = v.Vulnerability
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
