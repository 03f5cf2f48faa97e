package scan

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// ErrRejected matches (errors.Is) every failure caused by the image's
// content: a limit exceeded, a hostile path, an invalid whiteout, corrupt
// compression or tar data, a digest or diff_id mismatch, an invalid config,
// an unsupported layer media type. Retrying cannot help. Registry and
// network failures never match it; context cancellation returns ctx.Err()
// wrapped.
var ErrRejected = errors.New("scan: image rejected")

// ErrLimitExceeded is the more specific sentinel for limits (Limits, and
// callers' own limits such as a manifest size). Anything matching it also
// matches ErrRejected, including fmt.Errorf("%w: …", ErrLimitExceeded).
var ErrLimitExceeded error = &sentinel{msg: "scan: image rejected: limit exceeded", parent: ErrRejected}

type sentinel struct {
	msg    string
	parent error
}

func (s *sentinel) Error() string        { return s.msg }
func (s *sentinel) Is(target error) bool { return target == s.parent }

// RejectedError is the concrete type of the rejections Image returns (use
// errors.As for details); it matches ErrRejected, and ErrLimitExceeded when
// Limit is set.
type RejectedError struct {
	// Layer is the digest of the layer at fault, "" for image-level
	// problems (config, layer count).
	Layer string
	// LayerIndex is the 0-based position of that layer, bottom first (-1
	// for image-level problems). Messages show it 1-based: "(#3)".
	LayerIndex int
	// Reason says what is wrong, for a person.
	Reason string
	// Limit is set when a Limits value was exceeded.
	Limit bool
	// Err is the underlying error, if any (e.g. from the gzip reader).
	Err error
}

func (e *RejectedError) Error() string {
	var b strings.Builder
	b.WriteString("scan: image rejected: ")
	if e.LayerIndex >= 0 {
		if e.Layer != "" {
			fmt.Fprintf(&b, "layer %s (#%d): ", e.Layer, e.LayerIndex+1)
		} else {
			fmt.Fprintf(&b, "layer #%d: ", e.LayerIndex+1)
		}
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrRejected) and, for limits,
// errors.Is(err, ErrLimitExceeded) true.
func (e *RejectedError) Is(target error) bool {
	return target == ErrRejected || (e.Limit && target == ErrLimitExceeded)
}

func (e *RejectedError) Unwrap() error { return e.Err }

func rejectImage(format string, args ...any) *RejectedError {
	return &RejectedError{LayerIndex: -1, Reason: fmt.Sprintf(format, args...)}
}

func limitImage(format string, args ...any) *RejectedError {
	return &RejectedError{LayerIndex: -1, Reason: fmt.Sprintf(format, args...), Limit: true}
}

// isVerifyError reports whether err comes from go-containerregistry's
// digest/size verification of a blob (internal/verify): the bytes the
// registry served are not the ones the manifest names. The package is
// internal, so its error type is recognised by package path, and its
// untyped size errors by their text.
func isVerifyError(err error) bool {
	for _, e := range unwrapAll(err) {
		if t := reflect.TypeOf(e); t != nil {
			if t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if strings.HasSuffix(t.PkgPath(), "go-containerregistry/internal/verify") {
				return true
			}
		}
		if strings.HasPrefix(e.Error(), "error verifying ") {
			return true
		}
	}
	return false
}

// unwrapAll lists err and every error it wraps (depth first, bounded).
func unwrapAll(err error) []error {
	var out []error
	stack := []error{err}
	for len(stack) > 0 && len(out) < 64 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if e == nil {
			continue
		}
		out = append(out, e)
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			stack = append(stack, u.Unwrap())
		case interface{ Unwrap() []error }:
			stack = append(stack, u.Unwrap()...)
		}
	}
	return out
}
