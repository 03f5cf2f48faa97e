package secrets

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	engine "github.com/customs-scan/customs/pkg/secrets"
)

// Rules for literal values of secret-named settings in the image config:
// gitleaks recognises credentials by their shape, but a password is
// shapeless ("MYSQL_ROOT_PASSWORD=root"); Docker's own build check
// (SecretsUsedInArgOrEnv) warns about the name alone. These rules need
// both a secret's name and a literal value.
const (
	RuleEnvSecret      = "config-env-secret"
	RuleBuildArgSecret = "config-build-arg-secret"
	RuleLabelSecret    = "config-label-secret"
	// ConfigEngine is Finding.Engine of those rules.
	ConfigEngine = "customs"
)

// secretTokens are the words of a name that say its value is a secret.
var secretTokens = map[string]bool{
	"password": true, "passwd": true, "pwd": true, "pword": true, "pass": true, "passphrase": true,
	"secret": true, "secrets": true, "token": true, "apikey": true, "credential": true,
	"credentials": true, "privatekey": true,
}

// keyQualifiers are the words before "key" that make it a secret key
// (API_KEY, PRIVATE_KEY, APP_KEY…); a bare KEY or GPG_KEY (a public key
// fingerprint, set by the official python images) is not.
var keyQualifiers = map[string]bool{
	"api": true, "private": true, "secret": true, "master": true, "encryption": true, "encrypt": true,
	"signing": true, "sign": true, "license": true, "app": true, "auth": true, "session": true,
	"hmac": true, "jwt": true, "cipher": true, "crypto": true, "client": true,
}

// notValueLast are last words of a name whose value describes a secret
// rather than holding it (PASSWORD_FILE, TOKEN_URL, SECRET_NAME, API_KEY_ID…).
var notValueLast = map[string]bool{
	"file": true, "files": true, "path": true, "dir": true, "url": true, "uri": true, "endpoint": true,
	"host": true, "hostname": true, "port": true, "name": true, "id": true, "user": true,
	"username": true, "login": true, "length": true, "len": true, "ttl": true, "timeout": true,
	"expiry": true, "expires": true, "expiration": true, "lifetime": true, "type": true, "mode": true,
	"header": true, "hash": true, "algorithm": true, "alg": true, "format": true, "version": true,
	"count": true, "field": true, "param": true, "prefix": true, "suffix": true, "env": true,
	"var": true, "location": true, "provider": true, "backend": true, "source": true, "method": true,
	"kind": true, "arn": true, "ref": true, "label": true, "policy": true, "rotation": true,
	"store": true, "manager": true, "scope": true, "scopes": true, "audience": true, "issuer": true,
	"sha256": true, "sha": true, "checksum": true, "fingerprint": true,
}

// flagWords anywhere in a name make it a switch, not a value
// (MYSQL_ALLOW_EMPTY_PASSWORD, MYSQL_RANDOM_ROOT_PASSWORD, NO_PASSWORD).
var flagWords = map[string]bool{
	"allow": true, "random": true, "empty": true, "require": true, "required": true, "enable": true,
	"enabled": true, "disable": true, "disabled": true, "skip": true, "generate": true, "no": true,
	"use": true, "reset": true, "min": true, "max": true, "insecure": true,
}

// nameTokens splits a variable or label name into lower-case words at
// non-alphanumeric characters and camelCase humps.
func nameTokens(name string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && i > 0 && unicode.IsLower(rs[i-1]):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return out
}

// secretName reports whether a name says its value is a secret.
func secretName(name string) bool {
	toks := nameTokens(name)
	if len(toks) == 0 || notValueLast[toks[len(toks)-1]] {
		return false
	}
	found := false
	for i, t := range toks {
		switch {
		case flagWords[t]:
			return false
		case secretTokens[t]:
			found = true
		case t == "key" && i > 0 && keyQualifiers[toks[i-1]]:
			found = true
		case t == "auth" && i == len(toks)-1 && i > 0: // BASIC_AUTH, NPM_AUTH
			found = true
		}
	}
	return found
}

// placeholderWords are values that stand for a secret to be given later
// (documentation, examples, defaults meant to be overridden).
var placeholderWords = map[string]bool{
	"changeme": true, "changeit": true, "change": true, "password": true, "passwd": true,
	"secret": true, "token": true, "apikey": true, "example": true, "sample": true, "dummy": true,
	"placeholder": true, "default": true, "test": true, "testing": true, "foo": true, "bar": true,
	"foobar": true, "todo": true, "tbd": true, "fixme": true, "replaceme": true, "setme": true,
	"mysecret": true, "mypassword": true, "yourpassword": true, "yoursecret": true, "yourtoken": true,
	"yourapikey": true, "yourkey": true, "notset": true, "unset": true, "none": true, "null": true,
	"nil": true, "undefined": true, "na": true, "empty": true, "true": true, "false": true,
	"yes": true, "no": true, "on": true, "off": true, "enabled": true, "disabled": true, "random": true,
	"redacted": true, "hidden": true, "masked": true, "secretvalue": true, "insertsecrethere": true,
}

// referencePrefixes start values that name where a secret is kept (a
// file, a secret manager) instead of holding it.
var referencePrefixes = []string{
	"/", "./", "../", "~/", "file:", "@", "vault:", "vault://", "arn:aws:secretsmanager:", "arn:aws:ssm:",
	"secretsmanager:", "ssm:", "sm://", "gcpsm://", "azkv:", "akv:", "kms:", "op://", "env:", "secret:",
	"secretref:", "k8s:", "projects/", "keyvault:", "doppler:", "infisical:",
}

// literalSecret reports whether value, set for a secret-named setting,
// is a literal secret rather than a placeholder, a reference or a flag.
func literalSecret(name, value string) bool {
	v := strings.TrimSpace(value)
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		v = strings.TrimSpace(v[1 : len(v)-1])
	}
	if len([]rune(v)) < 4 {
		return false
	}
	lv := strings.ToLower(v)
	for _, p := range referencePrefixes {
		if strings.HasPrefix(lv, p) {
			return false
		}
	}
	switch {
	case strings.Contains(v, "$"), strings.Contains(v, "{{"), strings.Contains(v, "%("),
		strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">"), strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]"):
		return false // $VAR, ${VAR}, $(cmd), {{ template }}, %(name)s, <your token>, [secret]
	case len(v) >= 2 && v[1] == ':' && (v[2:] == "" || v[2] == '\\'):
		return false // C:\path
	}
	// Only masking characters: xxx, ****, 0000, ----.
	if strings.Trim(lv, "x*.#-_0?") == "" || sameRune(v) {
		return false
	}
	var alnum strings.Builder
	for _, r := range lv {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			alnum.WriteRune(r)
		}
	}
	a := alnum.String()
	if placeholderWords[a] {
		return false
	}
	for _, w := range []string{"your", "change", "replace", "insert", "enter", "fillin", "setme", "placeholder", "example", "dummy"} {
		if strings.Contains(a, w) {
			return false
		}
	}
	// The name repeated as its value (DB_PASS=db_pass).
	return a != strings.Join(nameTokens(name), "")
}

func sameRune(s string) bool {
	first, _ := utf8.DecodeRuneInString(s)
	for _, r := range s {
		if r != first {
			return false
		}
	}
	return true
}

// configFinding is a finding of one of the rules above.
func configFinding(rule, title, where, name, value, layer string) report.Finding {
	return report.Finding{
		Kind:     report.KindSecret,
		Rule:     rule,
		Severity: report.SeverityHigh,
		Title:    title + " (" + where + ")",
		Path:     ConfigPath,
		Layer:    layer,
		Excerpt:  name + "=" + engine.Redact(value),
		Engine:   ConfigEngine,
	}
}

// historySteps knows, for each history entry, the instruction it records
// and the layer it belongs to.
type historySteps struct {
	h      []v1.History
	layers []string
}

func newHistorySteps(h []v1.History, layers []report.Layer) *historySteps {
	hl := analyzer.HistoryLayers(h, layers)
	// An empty-layer step after the last layer (ENV and LABEL at the end
	// of a Dockerfile) belongs to the layer before it: the image as built
	// up to that step.
	prev := ""
	for i := range hl {
		if hl[i] == "" {
			hl[i] = prev
		}
		if !h[i].EmptyLayer {
			prev = hl[i]
		}
	}
	return &historySteps{h: h, layers: hl}
}

// instruction returns the Dockerfile instruction a history entry records
// and its arguments: BuildKit writes "ENV A=1", the classic builder
// "/bin/sh -c #(nop)  ENV A=1".
func instruction(createdBy string) (instr, args string) {
	s := strings.TrimSpace(createdBy)
	if rest, ok := strings.CutPrefix(s, "/bin/sh -c #(nop)"); ok {
		s = strings.TrimSpace(rest)
	}
	instr, args, _ = strings.Cut(s, " ")
	return strings.ToUpper(instr), strings.TrimSpace(args)
}

// setter returns the layer of the last ENV (instr "ENV") or LABEL step
// that set name, and whether there is one.
func (hs *historySteps) setter(instr, name string) (string, bool) {
	for i := len(hs.h) - 1; i >= 0; i-- {
		in, args := instruction(hs.h[i].CreatedBy)
		if in != instr {
			continue
		}
		fields := strings.Fields(args)
		if instr == "ENV" && len(fields) > 0 && fields[0] == name {
			return hs.layers[i], true // legacy "ENV NAME value"
		}
		for _, f := range fields {
			k, _, ok := strings.Cut(f, "=")
			if ok && strings.Trim(k, `"'`) == name {
				return hs.layers[i], true
			}
		}
	}
	return "", false
}

// buildArgs returns the build arguments a history entry records with
// their values: BuildKit's and the classic builder's "RUN |2 A=x B=y
// cmd" (the arguments in effect for that RUN), and "ARG A=x" (a default).
func buildArgs(createdBy string) [][2]string {
	instr, args := instruction(createdBy)
	var out [][2]string
	switch {
	case instr == "ARG":
		for _, f := range strings.Fields(args) {
			if k, v, ok := strings.Cut(f, "="); ok {
				out = append(out, [2]string{k, v})
			}
		}
	case instr == "RUN" && strings.HasPrefix(args, "|"), strings.HasPrefix(instr, "|"):
		s := createdBy[strings.IndexByte(createdBy, '|')+1:]
		nStr, rest, _ := strings.Cut(s, " ")
		n, err := strconv.Atoi(nStr)
		if err != nil || n <= 0 {
			return nil
		}
		fields := strings.Fields(rest)
		for i := 0; i < n && i < len(fields); i++ {
			if k, v, ok := strings.Cut(fields[i], "="); ok {
				out = append(out, [2]string{k, v})
			}
		}
	}
	return out
}
