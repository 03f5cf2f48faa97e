package notifier

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Destination types.
const (
	TypeSlack      = "slack"
	TypeTeams      = "teams"
	TypeMattermost = "mattermost"
	TypeDiscord    = "discord"
	TypeGoogleChat = "googlechat"
	TypeWebhook    = "webhook"
)

var destinationTypes = []string{TypeSlack, TypeTeams, TypeMattermost, TypeDiscord, TypeGoogleChat, TypeWebhook}

// Item kinds a route may name. "quarantine" is not an item: it stands for
// quarantine and release news (and the quarantine part of a push).
const (
	KindVulnerability = "vulnerability"
	KindMalware       = "malware"
	KindSecret        = "secret"
	KindMisconfig     = "misconfig"
	KindQuarantine    = "quarantine"
)

var routeKinds = []string{KindVulnerability, KindMalware, KindSecret, KindMisconfig, KindQuarantine}

var severities = []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

// severityRank orders severities (UNKNOWN 0 … CRITICAL 4); anything else
// ranks as UNKNOWN. pkg/policy has the same table, but importing it would
// bring CEL into the notifier.
func severityRank(s string) int {
	return max(slices.Index(severities, strings.ToUpper(s)), 0)
}

// Default sending rates per destination type, in messages per second:
// Slack and Google Chat allow about one a second (Google Chat: 60 a
// minute per space), Discord about five per two seconds per webhook.
var defaultRates = map[string]float64{
	TypeSlack: 1, TypeGoogleChat: 1, TypeDiscord: 2, TypeTeams: 2, TypeMattermost: 5, TypeWebhook: 10,
}

var destinationName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// AlertsConfig is the checked alerts file (CUSTOMS_ALERTS_FILE): where
// alerts go and which ones. Its URLs and secrets are read once, at load.
type AlertsConfig struct {
	// PublicURL is the results API as people reach it; messages link to
	// PublicURL + the alert's report path. Empty: no link.
	PublicURL    string
	Destinations []Destination
	Routes       []Route
}

// Destination is one chat channel or webhook receiver. Its URL and
// signing secret are unexported and never printed: a chat webhook URL is
// the credential to post into the channel.
type Destination struct {
	Name string
	Type string
	// RatePerSecond is the most messages a second sent to it.
	RatePerSecond float64
	url           string
	// secret is the Standard Webhooks signing secret (type webhook).
	secret string
}

// String names the destination without its URL.
func (d Destination) String() string { return d.Name + " (" + d.Type + ")" }

// Route lets alerts about some repositories through to destinations.
type Route struct {
	// Repositories are pkg/apiauth.MatchRepository patterns; empty: all.
	Repositories []string
	// MinSeverity drops vulnerabilities below it; empty: none dropped.
	MinSeverity string
	// Kinds of news let through; empty: all.
	Kinds []string
	// Verdicts restricts by the alert's verdict; empty: any.
	Verdicts     []string
	Destinations []string
}

// Destination returns the destination called name.
func (c *AlertsConfig) Destination(name string) (Destination, bool) {
	for _, d := range c.Destinations {
		if d.Name == name {
			return d, true
		}
	}
	return Destination{}, false
}

// LoadConfig reads and checks the alerts file:
//
//	public_url: https://customs.example.com   # links: <public_url>/v1/reports/<digest>
//	destinations:
//	  - name: sec-slack
//	    type: slack            # slack | teams | mattermost | discord | googlechat | webhook
//	    url_env: SLACK_URL     # or url: / url_file:
//	    rate_per_second: 1     # optional
//	  - name: siem
//	    type: webhook
//	    url: https://siem.example.com/customs
//	    secret_env: SIEM_SECRET   # whsec_<base64>; or secret: / secret_file:
//	routes:
//	  - repositories: ["payments/*", "public/**"]
//	    min_severity: HIGH
//	    kinds: [vulnerability, malware, secret, misconfig, quarantine]
//	    verdicts: [quarantine, warn]
//	    destinations: [sec-slack, siem]
//
// Errors name the file and line and never quote a URL or secret.
// Relative url_file/secret_file paths are relative to the file.
func LoadConfig(file string) (*AlertsConfig, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("alerts file: %w", err)
	}
	c, err := ParseConfig(data, filepath.Dir(file))
	if err != nil {
		return nil, fmt.Errorf("alerts file %s: %w", file, err)
	}
	return c, nil
}

// ParseConfig reads the alerts file format (see LoadConfig); dir resolves
// relative *_file paths.
func ParseConfig(data []byte, dir string) (*AlertsConfig, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file: want destinations and routes")
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty file: want destinations and routes")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, lineErr(root, "want a mapping with public_url, destinations and routes")
	}
	c := &AlertsConfig{}
	var dests, routes *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "public_url":
			u, err := parsePublicURL(v)
			if err != nil {
				return nil, err
			}
			c.PublicURL = u
		case "destinations":
			dests = v
		case "routes":
			routes = v
		default:
			return nil, lineErr(k, "unknown key %q (want public_url, destinations, routes)", k.Value)
		}
	}
	if dests == nil || dests.Kind != yaml.SequenceNode || len(dests.Content) == 0 {
		return nil, lineErr(orNode(dests, root), "destinations must be a non-empty list")
	}
	if routes == nil || routes.Kind != yaml.SequenceNode || len(routes.Content) == 0 {
		return nil, lineErr(orNode(routes, root), "routes must be a non-empty list")
	}
	var errs []error
	lines := map[string]int{}
	for _, n := range dests.Content {
		d, err := parseDestination(n, dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if line, dup := lines[d.Name]; dup {
			errs = append(errs, lineErr(n, "destination name %q already used on line %d", d.Name, line))
			continue
		}
		lines[d.Name] = n.Line
		c.Destinations = append(c.Destinations, d)
	}
	for _, n := range routes.Content {
		r, err := parseRoute(n, lines)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.Routes = append(c.Routes, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func orNode(n, fallback *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return fallback
}

func parsePublicURL(v *yaml.Node) (string, error) {
	if v.Kind != yaml.ScalarNode {
		return "", lineErr(v, "public_url must be a string")
	}
	s := strings.TrimRight(strings.TrimSpace(v.Value), "/")
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", lineErr(v, "public_url %q: want http(s)://host[:port][/path], without credentials, query or fragment", v.Value)
	}
	return s, nil
}

func parseDestination(n *yaml.Node, dir string) (Destination, error) {
	var d Destination
	if n.Kind != yaml.MappingNode {
		return d, lineErr(n, "a destination is a mapping with name, type and url (or url_env, url_file)")
	}
	urlSlot, secretSlot := secretSlot{base: "url"}, secretSlot{base: "secret"}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if took, err := urlSlot.take(k, v); took || err != nil {
			if err != nil {
				return d, err
			}
			continue
		}
		if took, err := secretSlot.take(k, v); took || err != nil {
			if err != nil {
				return d, err
			}
			continue
		}
		switch k.Value {
		case "name":
			d.Name = strings.TrimSpace(v.Value)
			if v.Kind != yaml.ScalarNode || !destinationName.MatchString(d.Name) {
				return d, lineErr(v, "name must be 1 to 64 letters, digits, - or _")
			}
		case "type":
			d.Type = strings.ToLower(strings.TrimSpace(v.Value))
			if v.Kind != yaml.ScalarNode || !slices.Contains(destinationTypes, d.Type) {
				return d, lineErr(v, "type %q: want one of %s", v.Value, strings.Join(destinationTypes, ", "))
			}
		case "rate_per_second":
			f, err := strconv.ParseFloat(strings.TrimSpace(v.Value), 64)
			if v.Kind != yaml.ScalarNode || err != nil || f <= 0 || f > 100000 {
				return d, lineErr(v, "rate_per_second must be a number above 0 (at most 100000)")
			}
			d.RatePerSecond = f
		default:
			return d, lineErr(k, "unknown key %q (want name, type, url, url_env, url_file, secret, secret_env, secret_file, rate_per_second)", k.Value)
		}
	}
	switch {
	case d.Name == "":
		return d, lineErr(n, "destination without a name")
	case d.Type == "":
		return d, lineErr(n, "destination %s has no type (%s)", d.Name, strings.Join(destinationTypes, ", "))
	case !urlSlot.set():
		return d, lineErr(n, "destination %s has no url: give exactly one of url, url_env, url_file", d.Name)
	case secretSlot.set() && d.Type != TypeWebhook:
		return d, lineErr(secretSlot.src.key, "destination %s: a signing secret is only for type webhook", d.Name)
	case !secretSlot.set() && d.Type == TypeWebhook:
		return d, lineErr(n, "destination %s: type webhook needs a signing secret (secret, secret_env or secret_file: whsec_<base64>)", d.Name)
	}
	if d.RatePerSecond == 0 {
		d.RatePerSecond = defaultRates[d.Type]
	}
	raw, err := urlSlot.resolve(dir)
	if err != nil {
		return d, fmt.Errorf("destination %s: %w", d.Name, err)
	}
	// Never quote the URL, nor url.Parse's error (which does): the URL
	// is the credential.
	u, perr := url.Parse(raw)
	if perr != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return d, lineErr(urlSlot.src.value, "destination %s: %s does not hold an http(s) URL", d.Name, urlSlot.src.key.Value)
	}
	d.url = raw
	if secretSlot.set() {
		s, err := secretSlot.resolve(dir)
		if err != nil {
			return d, fmt.Errorf("destination %s: %w", d.Name, err)
		}
		if _, err := decodeSecret(s); err != nil {
			return d, lineErr(secretSlot.src.value, "destination %s: %s: %v", d.Name, secretSlot.src.key.Value, err)
		}
		d.secret = s
	}
	return d, nil
}

// decodeSecret reads a Standard Webhooks secret: whsec_ followed by the
// base64 of 24 to 64 random bytes (the prefix is optional).
func decodeSecret(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	if err != nil {
		return nil, errors.New("not whsec_<base64>")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("the secret is %d bytes; want 24 to 64 (whsec_ + base64 of random bytes)", len(key))
	}
	return key, nil
}

func parseRoute(n *yaml.Node, dests map[string]int) (Route, error) {
	var r Route
	if n.Kind != yaml.MappingNode {
		return r, lineErr(n, "a route is a mapping with destinations and optionally repositories, min_severity, kinds, verdicts")
	}
	var destNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "repositories":
			list, err := stringList(k, v)
			if err != nil {
				return r, err
			}
			for j, p := range list {
				if err := validPattern(p); err != nil {
					return r, lineErr(v.Content[j], "%v", err)
				}
			}
			r.Repositories = list
		case "min_severity":
			s := strings.ToUpper(strings.TrimSpace(v.Value))
			if v.Kind != yaml.ScalarNode || !slices.Contains(severities, s) {
				return r, lineErr(v, "min_severity %q: want one of %s", v.Value, strings.Join(severities, ", "))
			}
			r.MinSeverity = s
		case "kinds":
			list, err := stringList(k, v)
			if err != nil {
				return r, err
			}
			for j, kind := range list {
				if !slices.Contains(routeKinds, kind) {
					return r, lineErr(v.Content[j], "kind %q: want one of %s", kind, strings.Join(routeKinds, ", "))
				}
			}
			r.Kinds = list
		case "verdicts":
			list, err := stringList(k, v)
			if err != nil {
				return r, err
			}
			for j, verdict := range list {
				if !slices.Contains([]string{"pass", "warn", "quarantine"}, verdict) {
					return r, lineErr(v.Content[j], "verdict %q: want pass, warn or quarantine", verdict)
				}
			}
			r.Verdicts = list
		case "destinations":
			list, err := stringList(k, v)
			if err != nil {
				return r, err
			}
			for j, name := range list {
				if _, ok := dests[name]; !ok {
					return r, lineErr(v.Content[j], "destination %q is not defined under destinations", name)
				}
			}
			r.Destinations, destNode = list, v
		default:
			return r, lineErr(k, "unknown key %q (want repositories, min_severity, kinds, verdicts, destinations)", k.Value)
		}
	}
	if destNode == nil {
		return r, lineErr(n, "route without destinations")
	}
	return r, nil
}

// stringList reads a non-empty list of non-empty strings.
func stringList(k, v *yaml.Node) ([]string, error) {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		return nil, lineErr(v, "%s must be a non-empty list (omit it for no restriction)", k.Value)
	}
	out := make([]string, 0, len(v.Content))
	for _, e := range v.Content {
		s := strings.TrimSpace(e.Value)
		if e.Kind != yaml.ScalarNode || s == "" {
			return nil, lineErr(e, "%s: each entry must be a non-empty string", k.Value)
		}
		out = append(out, s)
	}
	return out, nil
}

// validPattern accepts what pkg/apiauth.MatchRepository understands:
// path.Match syntax with ** only as a trailing /** (apiauth checks its
// own files the same way; its check is not exported).
func validPattern(p string) error {
	base := strings.TrimSuffix(p, "/**")
	if strings.Contains(base, "**") {
		return fmt.Errorf("repository pattern %q: ** is allowed only as a trailing /**", p)
	}
	if _, err := path.Match(base, ""); err != nil {
		return fmt.Errorf("repository pattern %q: %w", p, err)
	}
	return nil
}

// secretSlot collects the three spellings of one secret: x, x_env, x_file.
type secretSlot struct {
	base string
	src  *struct{ key, value *yaml.Node }
}

func (s *secretSlot) take(k, v *yaml.Node) (bool, error) {
	switch k.Value {
	case s.base, s.base + "_env", s.base + "_file":
	default:
		return false, nil
	}
	if s.src != nil {
		return true, lineErr(k, "%s is given twice (%s and %s): give exactly one of %s, %s_env, %s_file",
			s.base, s.src.key.Value, k.Value, s.base, s.base, s.base)
	}
	if v.Kind != yaml.ScalarNode {
		return true, lineErr(v, "%s must be a string", k.Value)
	}
	s.src = &struct{ key, value *yaml.Node }{k, v}
	return true, nil
}

func (s *secretSlot) set() bool { return s.src != nil }

// resolve reads the value from where the slot says. Errors name the key,
// the variable or the file, never the value.
func (s *secretSlot) resolve(dir string) (string, error) {
	k, v := s.src.key, s.src.value
	switch k.Value {
	case s.base:
		if strings.TrimSpace(v.Value) == "" {
			return "", lineErr(v, "%s is empty", k.Value)
		}
		return strings.TrimSpace(v.Value), nil
	case s.base + "_env":
		name := strings.TrimSpace(v.Value)
		val, ok := os.LookupEnv(name)
		if name == "" || !ok || strings.TrimSpace(val) == "" {
			return "", lineErr(v, "%s: environment variable %q is not set or empty", k.Value, name)
		}
		return strings.TrimSpace(val), nil
	default:
		p := strings.TrimSpace(v.Value)
		if p == "" {
			return "", lineErr(v, "%s is empty", k.Value)
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return "", lineErr(v, "%s: %v", k.Value, err)
		}
		val := strings.TrimSpace(string(b))
		if val == "" {
			return "", lineErr(v, "%s: %s is empty", k.Value, p)
		}
		return val, nil
	}
}

func lineErr(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("line %d: %s", n.Line, fmt.Sprintf(format, args...))
}
