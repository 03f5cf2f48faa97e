package apiauth

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads a tokens file:
//
//	tokens:
//	  - name: ci-team-a
//	    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  # customs token hash
//	    role: read
//	    repositories: ["team-a/*"]      # optional; omitted: every repository
//	  - name: ops
//	    sha256: …
//	    role: admin
//
// Only hashes are stored, so the file is not a secret to guard (the
// tokens are). Errors name the file and line.
func Load(file string) ([]Token, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("api tokens: %w", err)
	}
	toks, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("api tokens %s: %w", file, err)
	}
	return toks, nil
}

// Parse reads the tokens file format (see Load).
func Parse(data []byte) ([]Token, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file: want a top-level tokens list")
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty file: want a top-level tokens list")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, lineErr(root, "want a mapping with a tokens list")
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "tokens" {
			return nil, lineErr(k, "unknown key %q (want tokens)", k.Value)
		}
		list = v
	}
	if list == nil {
		return nil, lineErr(root, "no tokens list")
	}
	if list.Kind != yaml.SequenceNode {
		return nil, lineErr(list, "tokens must be a list")
	}
	var (
		toks   []Token
		errs   []error
		names  = map[string]int{}
		hashes = map[[32]byte]string{}
	)
	for _, n := range list.Content {
		t, err := parseToken(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if line, dup := names[t.Name]; dup {
			errs = append(errs, lineErr(n, "token name %q already used on line %d", t.Name, line))
			continue
		}
		if other, dup := hashes[t.hash]; dup {
			errs = append(errs, lineErr(n, "token %q has the same hash as token %q", t.Name, other))
			continue
		}
		names[t.Name], hashes[t.hash] = n.Line, t.Name
		toks = append(toks, t)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(toks) == 0 {
		return nil, lineErr(list, "the tokens list is empty")
	}
	return toks, nil
}

func parseToken(n *yaml.Node) (Token, error) {
	var t Token
	if n.Kind != yaml.MappingNode {
		return t, lineErr(n, "a token is a mapping with name, sha256, role and optionally repositories")
	}
	var hashSeen, roleSeen bool
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name":
			t.Name = strings.TrimSpace(v.Value)
			if v.Kind != yaml.ScalarNode || t.Name == "" {
				return t, lineErr(v, "name must be a non-empty string")
			}
		case "sha256":
			s := strings.ToLower(strings.TrimSpace(v.Value))
			b, err := hex.DecodeString(s)
			if v.Kind != yaml.ScalarNode || err != nil || len(b) != len(t.hash) {
				return t, lineErr(v, "sha256 must be 64 hex digits: the SHA-256 of the token (printf %%s \"$TOKEN\" | sha256sum), never the token itself")
			}
			copy(t.hash[:], b)
			hashSeen = true
		case "role":
			r, err := parseRole(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil {
				return t, lineErr(v, "role %q: want read or admin", v.Value)
			}
			t.Role, roleSeen = r, true
		case "repositories":
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				return t, lineErr(v, "repositories must be a non-empty list of patterns (omit it for every repository)")
			}
			t.Repositories = []string{}
			for _, p := range v.Content {
				if p.Kind != yaml.ScalarNode {
					return t, lineErr(p, "a repository pattern must be a string")
				}
				if err := validPattern(p.Value); err != nil {
					return t, lineErr(p, "%v", err)
				}
				t.Repositories = append(t.Repositories, p.Value)
			}
		default:
			return t, lineErr(k, "unknown key %q (want name, sha256, role, repositories)", k.Value)
		}
	}
	switch {
	case t.Name == "":
		return t, lineErr(n, "token without a name")
	case !hashSeen:
		return t, lineErr(n, "token %q has no sha256", t.Name)
	case !roleSeen:
		return t, lineErr(n, "token %q has no role (read or admin)", t.Name)
	}
	return t, nil
}

func lineErr(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("line %d: %s", n.Line, fmt.Sprintf(format, args...))
}
