package regauth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/customs-scan/customs/pkg/quarantine"
)

// Load reads the registry credentials file at path; "" gives an empty
// File (every host anonymous). Two formats are accepted:
//
//	registries:
//	  registry.example.com:              # exact host[:port]
//	    username: customs
//	    password_file: /run/secrets/registry-password   # or password: / password_env:
//	  ghcr.io:
//	    token_env: GHCR_TOKEN            # registry token (Bearer); or token: / token_file:
//	  myregistry.azurecr.io:
//	    identity_token_file: /run/secrets/acr   # OAuth2 refresh token; or identity_token: / identity_token_env:
//	  harbor.example.com:
//	    username: robot$customs+scanner
//	    password_env: HARBOR_ROBOT_SECRET
//	    kind: harbor                     # distribution (default) | harbor | ecr; ECR hostnames default to ecr
//	    harbor:                          # management API; defaults: https://<host>, the same credentials
//	      url: https://harbor.example.com
//	  123456789012.dkr.ecr.eu-west-1.amazonaws.com:
//	    ecr:                             # token from GetAuthorizationToken (AWS default credential chain)
//	      region: eu-west-1              # default: from the hostname
//	      role_arn: arn:aws:iam::123456789012:role/customs   # optional: sts:AssumeRole first
//	      endpoint: https://api.ecr.eu-west-1.amazonaws.com  # optional: another ECR API endpoint
//
// or a Docker config.json ({"auths": {"host": {"auth": base64("user:pass")
// | "username"/"password" | "identitytoken" | "registrytoken"}}}; other
// top-level keys are ignored, credential helpers refused).
//
// Secrets given as files or environment variables are read here, once:
// relative paths are relative to the file's directory, a trailing
// newline is dropped. Unknown keys, a secret given twice, an empty or
// unset source and an entry without credentials are errors naming the
// line; no error quotes a value.
func Load(path string, opts ...Option) (*File, error) {
	f := &File{path: path, entries: map[string]Entry{}, ecr: map[string]*ecrSource{}}
	for _, o := range opts {
		o(&f.opts)
	}
	if path == "" {
		return f, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry auth: %w", err)
	}
	entries, err := parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("registry auth %s: %w", path, err)
	}
	for _, e := range entries {
		f.entries[e.Host] = e
		if e.usesECRToken() {
			f.ecr[e.Host] = newECRSource(e, f.opts)
		}
	}
	return f, nil
}

// parse reads either format; dir resolves relative secret files.
func parse(data []byte, dir string) ([]Entry, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file: want a top-level registries mapping (or a Docker config.json with auths)")
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty file: want a top-level registries mapping (or a Docker config.json with auths)")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, lineErr(root, "want a mapping with registries (or a Docker config.json with auths)")
	}
	p := &parser{dir: dir, seen: map[string]int{}}
	if _, ok := lookupKey(root, "auths"); ok {
		return p.dockerConfig(root)
	}
	var regs *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "registries" {
			return nil, lineErr(k, "unknown key %q (want registries)", k.Value)
		}
		regs = v
	}
	if regs == nil {
		return nil, lineErr(root, "no registries mapping")
	}
	if isNull(regs) {
		return nil, nil // "registries:" with nothing below: no credentials
	}
	if regs.Kind != yaml.MappingNode {
		return nil, lineErr(regs, "registries must be a mapping of host → credentials")
	}
	var (
		out  []Entry
		errs []error
	)
	for i := 0; i+1 < len(regs.Content); i += 2 {
		e, err := p.entry(regs.Content[i], regs.Content[i+1])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}

type parser struct {
	dir  string
	seen map[string]int // host → line
}

// host checks a registry host key and that it is new.
func (p *parser) host(k *yaml.Node, raw string) (string, error) {
	h := normalizeHost(raw)
	if k.Kind != yaml.ScalarNode || h == "" {
		return "", lineErr(k, "a registry host must be a non-empty string")
	}
	if strings.Contains(h, "://") || strings.ContainsAny(h, "/@ \t") {
		return "", lineErr(k, "registry %q: want host[:port] only (no scheme, path or user)", raw)
	}
	if !validHost(h) {
		return "", lineErr(k, "registry %q: want host[:port] (IPv6 in brackets, port 1-65535)", raw)
	}
	if line, dup := p.seen[h]; dup {
		return "", lineErr(k, "registry %q is already given on line %d", h, line)
	}
	p.seen[h] = k.Line
	return h, nil
}

// secretSource is one of x, x_file, x_env.
type secretSource struct {
	name  string // the key used, e.g. password_file
	value *yaml.Node
}

// secretSlot collects the three spellings of one secret.
type secretSlot struct {
	base string
	src  *secretSource
}

// take claims key k (base, base_file, base_env) into the slot; false when
// k is not one of them.
func (s *secretSlot) take(k, v *yaml.Node) (bool, error) {
	switch k.Value {
	case s.base, s.base + "_file", s.base + "_env":
	default:
		return false, nil
	}
	if s.src != nil {
		return true, lineErr(k, "%s is given twice (%s and %s): give one of %s, %s_file, %s_env",
			s.base, s.src.name, k.Value, s.base, s.base, s.base)
	}
	if v.Kind != yaml.ScalarNode {
		return true, lineErr(v, "%s must be a string", k.Value)
	}
	s.src = &secretSource{name: k.Value, value: v}
	return true, nil
}

func (s *secretSlot) set() bool { return s.src != nil }

// resolve reads the secret from where the slot says.
func (s *secretSlot) resolve(dir string) (Secret, error) {
	if s.src == nil {
		return Secret{}, nil
	}
	v := s.src.value
	switch s.src.name {
	case s.base:
		if v.Value == "" {
			return Secret{}, lineErr(v, "%s is empty", s.base)
		}
		return NewSecret(v.Value), nil
	case s.base + "_env":
		name := strings.TrimSpace(v.Value)
		val, ok := os.LookupEnv(name)
		if name == "" || !ok || val == "" {
			return Secret{}, lineErr(v, "%s: environment variable %q is not set or empty", s.src.name, name)
		}
		return NewSecret(val), nil
	default: // _file
		path := strings.TrimSpace(v.Value)
		if path == "" {
			return Secret{}, lineErr(v, "%s is empty", s.src.name)
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			// The path is no secret; an *os.PathError says why.
			return Secret{}, lineErr(v, "%s: %v", s.src.name, err)
		}
		val := strings.TrimRight(string(b), "\r\n")
		if val == "" {
			return Secret{}, lineErr(v, "%s: %s is empty", s.src.name, path)
		}
		return NewSecret(val), nil
	}
}

// validHost accepts host, host:port, [v6] and [v6]:port.
func validHost(h string) bool {
	validPort := func(p string) bool {
		n, err := strconv.Atoi(p)
		return err == nil && n >= 1 && n <= 65535
	}
	if strings.HasPrefix(h, "[") {
		if host, port, err := net.SplitHostPort(h); err == nil {
			return validPort(port) && net.ParseIP(host) != nil
		}
		return strings.HasSuffix(h, "]") && net.ParseIP(h[1:len(h)-1]) != nil
	}
	if strings.Count(h, ":") > 1 {
		return false
	}
	if host, port, err := net.SplitHostPort(h); err == nil {
		return host != "" && validPort(port)
	}
	return !strings.Contains(h, ":")
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// entry reads one host's mapping of the YAML format.
func (p *parser) entry(k, v *yaml.Node) (Entry, error) {
	host, err := p.host(k, k.Value)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Host: host}
	if v.Kind != yaml.MappingNode {
		return e, lineErr(v, "registry %s: want a mapping of credentials", host)
	}
	password := secretSlot{base: "password"}
	token := secretSlot{base: "token"}
	identity := secretSlot{base: "identity_token"}
	var harborNode, ecrNode *yaml.Node
	for i := 0; i+1 < len(v.Content); i += 2 {
		kk, vv := v.Content[i], v.Content[i+1]
		taken := false
		for _, s := range []*secretSlot{&password, &token, &identity} {
			ok, err := s.take(kk, vv)
			if err != nil {
				return e, err
			}
			taken = taken || ok
		}
		if taken {
			continue
		}
		switch kk.Value {
		case "username":
			if vv.Kind != yaml.ScalarNode || strings.TrimSpace(vv.Value) == "" {
				return e, lineErr(vv, "username must be a non-empty string")
			}
			e.Username = vv.Value
		case "kind":
			switch kind := strings.ToLower(strings.TrimSpace(vv.Value)); kind {
			case KindDistribution, KindHarbor, KindECR:
				e.kind = kind
			default:
				return e, lineErr(vv, "kind %q: want distribution, harbor or ecr", vv.Value)
			}
		case "harbor":
			harborNode = vv
		case "ecr":
			ecrNode = vv
		default:
			return e, lineErr(kk, "unknown key %q (want username, password, password_file, password_env, token, token_file, token_env, identity_token, identity_token_file, identity_token_env, kind, harbor, ecr)", kk.Value)
		}
	}
	// The kind, explicit or implied by a settings block or the hostname.
	switch {
	case e.kind != "":
	case ecrNode != nil:
		e.kind = KindECR
	case harborNode != nil:
		e.kind = KindHarbor
	}
	if harborNode != nil && e.Kind() != KindHarbor {
		return e, lineErr(harborNode, "registry %s: harbor settings are for kind harbor (this is %s)", host, e.Kind())
	}
	if ecrNode != nil && e.Kind() != KindECR {
		return e, lineErr(ecrNode, "registry %s: ecr settings are for kind ecr (this is %s)", host, e.Kind())
	}
	if e.Password, err = password.resolve(p.dir); err != nil {
		return e, err
	}
	if e.Token, err = token.resolve(p.dir); err != nil {
		return e, err
	}
	if e.IdentityToken, err = identity.resolve(p.dir); err != nil {
		return e, err
	}
	basic := e.Username != "" || password.set()
	switch {
	case e.Username != "" && !password.set():
		return e, lineErr(k, "registry %s: username without password (password, password_file or password_env)", host)
	case password.set() && e.Username == "":
		return e, lineErr(k, "registry %s: password without username", host)
	case countTrue(basic, token.set(), identity.set()) > 1:
		return e, lineErr(k, "registry %s: give one of username/password, token or identity_token", host)
	}
	static := basic || token.set() || identity.set()
	if e.Kind() == KindECR {
		if e.ECR, err = p.ecr(host, ecrNode, static); err != nil {
			return e, err
		}
	} else if !static {
		return e, lineErr(k, "registry %s: no credentials (username with password/password_file/password_env, token, or identity_token)", host)
	}
	if e.Kind() == KindHarbor {
		if e.Harbor, err = p.harbor(e, k, harborNode); err != nil {
			return e, err
		}
	}
	return e, nil
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// harbor reads the harbor block (n may be nil) with the entry's
// credentials and https://<host> as defaults.
func (p *parser) harbor(e Entry, k, n *yaml.Node) (HarborSettings, error) {
	h := HarborSettings{URL: "https://" + e.Host, Username: e.Username, Password: e.Password}
	at := k
	if n != nil && !isNull(n) {
		at = n
		if n.Kind != yaml.MappingNode {
			return h, lineErr(n, "harbor must be a mapping (url, username, password)")
		}
		password := secretSlot{base: "password"}
		username := ""
		for i := 0; i+1 < len(n.Content); i += 2 {
			kk, vv := n.Content[i], n.Content[i+1]
			if ok, err := password.take(kk, vv); err != nil {
				return h, err
			} else if ok {
				continue
			}
			switch kk.Value {
			case "url":
				u, err := url.Parse(strings.TrimSpace(vv.Value))
				if vv.Kind != yaml.ScalarNode || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
					return h, lineErr(vv, "harbor url must be an http(s) URL without credentials")
				}
				h.URL = strings.TrimSuffix(u.String(), "/")
			case "username":
				if vv.Kind != yaml.ScalarNode || strings.TrimSpace(vv.Value) == "" {
					return h, lineErr(vv, "harbor username must be a non-empty string")
				}
				username = vv.Value
			default:
				return h, lineErr(kk, "unknown harbor key %q (want url, username, password, password_file, password_env)", kk.Value)
			}
		}
		if (username != "") != password.set() {
			return h, lineErr(n, "harbor: give username and password together (or neither: the registry's are used)")
		}
		if username != "" {
			pw, err := password.resolve(p.dir)
			if err != nil {
				return h, err
			}
			h.Username, h.Password = username, pw
		}
	}
	if h.Username == "" || h.Password.IsZero() {
		return h, lineErr(at, "registry %s: the Harbor API needs a username and password (the registry's or harbor's own)", e.Host)
	}
	return h, nil
}

// ecr reads the ecr block (n may be nil). Without static credentials the
// region must be known: given, or from an ECR hostname.
func (p *parser) ecr(host string, n *yaml.Node, static bool) (ECRSettings, error) {
	var s ECRSettings
	if n != nil && !isNull(n) {
		if n.Kind != yaml.MappingNode {
			return s, lineErr(n, "ecr must be a mapping (region, role_arn, endpoint)")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kk, vv := n.Content[i], n.Content[i+1]
			if vv.Kind != yaml.ScalarNode {
				return s, lineErr(vv, "ecr %s must be a string", kk.Value)
			}
			val := strings.TrimSpace(vv.Value)
			switch kk.Value {
			case "region":
				s.Region = val
			case "role_arn":
				if !strings.HasPrefix(val, "arn:") || !strings.Contains(val, ":role/") {
					return s, lineErr(vv, "role_arn %q: want arn:<partition>:iam::<account>:role/<name>", val)
				}
				s.RoleARN = val
			case "endpoint":
				u, err := url.Parse(val)
				if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
					return s, lineErr(vv, "ecr endpoint must be an http(s) URL without credentials")
				}
				s.Endpoint = val
			default:
				return s, lineErr(kk, "unknown ecr key %q (want region, role_arn, endpoint)", kk.Value)
			}
		}
	}
	if s.Region == "" {
		s.Region = regionOf(host)
	}
	if s.Region == "" && !static {
		at := n
		if at == nil {
			return s, fmt.Errorf("registry %s: ecr.region is required (the host is not an ECR hostname)", host)
		}
		return s, lineErr(at, "registry %s: ecr.region is required (the host is not an ECR hostname)", host)
	}
	return s, nil
}

// regionOf reads the region of an ECR hostname
// (<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]); "" otherwise.
func regionOf(host string) string {
	if !quarantine.IsECRHost(host) {
		return ""
	}
	return strings.Split(host, ".")[3]
}

// dockerConfig reads a Docker config.json's auths.
func (p *parser) dockerConfig(root *yaml.Node) ([]Entry, error) {
	var (
		out  []Entry
		errs []error
	)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "credsStore", "credHelpers":
			return nil, lineErr(k, "%s: credential helpers are not read from this file (give the credentials here, or leave the host to the Docker keychain)", k.Value)
		case "auths":
			if v.Kind != yaml.MappingNode {
				return nil, lineErr(v, "auths must be a mapping of host → credentials")
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				e, err := p.dockerAuth(v.Content[j], v.Content[j+1])
				if err != nil {
					errs = append(errs, err)
					continue
				}
				out = append(out, e)
			}
		}
	}
	return out, errors.Join(errs...)
}

// dockerAuth reads one auths entry; its key may be a URL
// ("https://index.docker.io/v1/").
func (p *parser) dockerAuth(k, v *yaml.Node) (Entry, error) {
	raw := k.Value
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		raw = rest
	}
	raw, _, _ = strings.Cut(raw, "/")
	host, err := p.host(k, raw)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Host: host}
	if v.Kind != yaml.MappingNode {
		return e, lineErr(v, "auths %s: want a mapping of credentials", host)
	}
	var auth, username, password string
	var authSet, passwordSet bool
	for i := 0; i+1 < len(v.Content); i += 2 {
		kk, vv := v.Content[i], v.Content[i+1]
		if vv.Kind != yaml.ScalarNode {
			return e, lineErr(vv, "auths %s: %s must be a string", host, kk.Value)
		}
		switch kk.Value {
		case "auth":
			auth, authSet = vv.Value, vv.Value != ""
		case "username":
			username = vv.Value
		case "password":
			password, passwordSet = vv.Value, vv.Value != ""
		case "identitytoken":
			if vv.Value != "" {
				e.IdentityToken = NewSecret(vv.Value)
			}
		case "registrytoken":
			if vv.Value != "" {
				e.Token = NewSecret(vv.Value)
			}
		case "email", "serveraddress":
			// Informational in Docker's format.
		default:
			return e, lineErr(kk, "auths %s: unknown key %q (want auth, username, password, identitytoken, registrytoken)", host, kk.Value)
		}
	}
	if authSet {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth))
		user, pass, ok := strings.Cut(string(b), ":")
		if err != nil || !ok || user == "" {
			return e, lineErr(k, "auths %s: auth is not base64 of username:password", host)
		}
		if username != "" && username != user || passwordSet && password != pass {
			return e, lineErr(k, "auths %s: auth and username/password disagree", host)
		}
		username, password, passwordSet = user, pass, pass != ""
	}
	e.Username = username
	if passwordSet {
		e.Password = NewSecret(password)
	}
	// Docker writes "user:" (no password) beside an identity token.
	if !passwordSet && e.IdentityToken.IsZero() && e.Token.IsZero() {
		return e, lineErr(k, "auths %s: no credentials (auth, username/password, identitytoken or registrytoken)", host)
	}
	if passwordSet && username == "" {
		return e, lineErr(k, "auths %s: password without username", host)
	}
	e.ECR.Region = regionOf(host) // an ECR host given static credentials
	return e, nil
}

func lookupKey(m *yaml.Node, key string) (*yaml.Node, bool) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1], true
		}
	}
	return nil, false
}

func lineErr(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("line %d: %s", n.Line, fmt.Sprintf(format, args...))
}
