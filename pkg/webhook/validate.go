package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// maxRepositoryLen is the distribution reference limit on a repository path.
const maxRepositoryLen = 255

// checkDigest accepts "sha256:" followed by exactly 64 lowercase hex digits.
func checkDigest(d string) error {
	if d == "" {
		return errors.New("missing digest")
	}
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 {
		return fmt.Errorf("%s is not a sha256 digest", quote(d))
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%s is not a sha256 digest", quote(d))
		}
	}
	return nil
}

// checkRepository accepts the distribution reference path grammar:
//
//	path      := component ('/' component)*
//	component := alnum+ (separator alnum+)*
//	alnum     := [a-z0-9]
//	separator := '.' | '_' | '__' | '-'+
//
// with the whole path at most 255 bytes. It therefore rejects uppercase,
// empty components, leading or trailing separators and "." or ".."
// components.
func checkRepository(r string) error {
	if r == "" {
		return errors.New("missing repository")
	}
	if len(r) > maxRepositoryLen {
		return fmt.Errorf("repository is %d bytes long, more than %d", len(r), maxRepositoryLen)
	}
	for i, c := range strings.Split(r, "/") {
		if !validComponent(c) {
			return fmt.Errorf("%s is not a valid repository: component %d %s does not match [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*", quote(r), i, quote(c))
		}
	}
	return nil
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// validComponent matches [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*.
func validComponent(c string) bool {
	i := 0
	alnums := func() bool {
		start := i
		for i < len(c) && isLowerAlnum(c[i]) {
			i++
		}
		return i > start
	}
	if !alnums() {
		return false
	}
	for i < len(c) {
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
		if !alnums() {
			return false
		}
	}
	return true
}

// checkTag accepts [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func checkTag(t string) error {
	bad := fmt.Errorf("%s is not a valid tag", quote(t))
	if t == "" || len(t) > 128 {
		return bad
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
		case (c == '.' || c == '-') && i > 0:
		default:
			return bad
		}
	}
	return nil
}

// checkEventID accepts ids of at most 256 bytes of printable ASCII (UUIDs in
// practice); the id becomes a deduplication key and a log field.
func checkEventID(id string) error {
	if len(id) > maxEventIDLen {
		return fmt.Errorf("event id is %d bytes long, more than %d", len(id), maxEventIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("event id %s contains a non-printable or non-ASCII byte", quote(id))
		}
	}
	return nil
}

// checkHost accepts a lowercase registry host: a DNS name, a dotted-quad
// IPv4 address or a bracketed IPv6 address, optionally followed by
// ":port" (1-65535). No scheme, userinfo, path, query, whitespace or
// percent-encoding. The registry host later drives outbound pulls, so this is
// deliberately stricter than what a URL parser accepts.
func checkHost(h string) error {
	switch {
	case h == "":
		return errors.New("missing registry host")
	case len(h) > 261: // 253 for the name + ":65535"
		return fmt.Errorf("registry host %s is too long", quote(h))
	case strings.Contains(h, "://"):
		return fmt.Errorf("registry host %s must not contain a scheme", quote(h))
	case strings.Contains(h, "@"):
		return errors.New("registry host must not contain userinfo") // do not echo credentials
	case strings.ContainsAny(h, "/?#\\"):
		return fmt.Errorf("registry host %s must not contain a path", quote(h))
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(isLowerAlnum(c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return fmt.Errorf("registry host %s contains invalid character %q", quote(h), c)
		}
	}

	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return fmt.Errorf("registry host %s has an unterminated IPv6 literal", quote(h))
		}
		name, port = h[1:end], h[end+1:]
		ip, err := netip.ParseAddr(name)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return fmt.Errorf("registry host %s is not a valid IPv6 literal", quote(h))
		}
		if port != "" {
			p, ok := strings.CutPrefix(port, ":")
			if !ok {
				return fmt.Errorf("registry host %s has trailing characters after the IPv6 literal", quote(h))
			}
			port = p
			if err := checkPort(port); err != nil {
				return fmt.Errorf("registry host %s: %w", quote(h), err)
			}
		}
		return nil
	}
	if i := strings.IndexByte(h, ':'); i >= 0 {
		name, port = h[:i], h[i+1:]
		if err := checkPort(port); err != nil {
			return fmt.Errorf("registry host %s: %w", quote(h), err)
		}
	}
	if strings.ContainsAny(name, "[]") {
		return fmt.Errorf("registry host %s is not a valid host name", quote(h))
	}
	if err := checkHostname(name); err != nil {
		return fmt.Errorf("registry host %s: %w", quote(h), err)
	}
	return nil
}

func checkPort(p string) error {
	if p == "" || len(p) > 5 || p[0] == '0' {
		return fmt.Errorf("invalid port %s", quote(p))
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("invalid port %s", quote(p))
	}
	return nil
}

// checkHostname accepts a lowercase DNS name (labels of [a-z0-9-], 1-63
// bytes, not starting or ending with '-', total at most 253 bytes, no
// trailing dot) or a dotted-quad IPv4 address. A name whose last label is
// all digits must be an IPv4 address, so "1.2.3.999" or "10.1" is rejected
// rather than sent to a resolver that might read it as an address.
func checkHostname(n string) error {
	if n == "" {
		return errors.New("empty host name")
	}
	if len(n) > 253 {
		return errors.New("host name longer than 253 bytes")
	}
	labels := strings.Split(n, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("invalid host name label %s", quote(l))
		}
		for i := 0; i < len(l); i++ {
			if !isLowerAlnum(l[i]) && l[i] != '-' {
				return fmt.Errorf("invalid host name label %s", quote(l))
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		ip, err := netip.ParseAddr(n)
		if err != nil || !ip.Is4() {
			return errors.New("numeric host name is not a valid IPv4 address")
		}
	}
	return nil
}

// parseTime parses an RFC 3339 timestamp; "" is the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is not an RFC 3339 timestamp", quote(s))
	}
	return t.UTC(), nil
}
