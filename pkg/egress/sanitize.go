package egress

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// maxReason bounds a sanitised message (queue termination reasons are
// capped at 1 KiB too).
const maxReason = 1024

// Sanitize returns err with a message fit for a report or a log: every
// registry error answer (go-containerregistry's transport.Error, which
// quotes the response body) becomes method, host, status code and known
// error codes; URLs lose their query and credentials; a token response
// quoted by go-containerregistry is dropped. The result still wraps err,
// so errors.Is and errors.As see the original chain.
func Sanitize(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	safe := msg
	visit(err, func(e error) {
		switch e := e.(type) {
		case *transport.Error:
			safe = strings.ReplaceAll(safe, e.Error(), StatusReason(e))
		case *url.Error:
			safe = strings.ReplaceAll(safe, strconv.Quote(e.URL), strconv.Quote(redactURL(e.URL)))
		}
	})
	// bearer.go: fmt.Errorf("no token in bearer response:\n%s", content).
	if i := strings.Index(safe, "no token in bearer response"); i >= 0 {
		safe = safe[:i] + "token response without a token"
	}
	if len(safe) > maxReason {
		cut := maxReason
		for cut > 0 && !utf8.RuneStart(safe[cut]) {
			cut--
		}
		safe = safe[:cut] + " …"
	}
	if safe == msg {
		return err
	}
	return &sanitized{msg: safe, err: err}
}

type sanitized struct {
	msg string
	err error
}

func (s *sanitized) Error() string { return s.msg }
func (s *sanitized) Unwrap() error { return s.err }

// StatusReason is the fixed text of a registry error answer: method, host,
// status code, and the known registry error codes it carried.
func StatusReason(te *transport.Error) string {
	var b strings.Builder
	if te.Request != nil && te.Request.URL != nil {
		b.WriteString(te.Request.Method + " " + te.Request.URL.Host + ": ")
	}
	b.WriteString("answered " + strconv.Itoa(te.StatusCode) + " " + http.StatusText(te.StatusCode))
	var codes []string
	known := errorCodes()
	for _, d := range te.Errors {
		if _, ok := known[string(d.Code)]; ok {
			codes = append(codes, string(d.Code))
		}
	}
	if len(codes) > 0 {
		b.WriteString(" (" + strings.Join(codes, ", ") + ")")
	}
	return b.String()
}

// redactURL keeps scheme, host and path: queries of redirect targets carry
// signatures, and user info is a credential.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// visit calls fn on err and every error it wraps.
func visit(err error, fn func(error)) {
	if err == nil {
		return
	}
	fn(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		visit(u.Unwrap(), fn)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			visit(e, fn)
		}
	}
}
