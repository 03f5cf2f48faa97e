package webhook

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sources, the values of [Event.Source].
const (
	SourceDistribution = "distribution"
	SourceHarbor       = "harbor"
	SourceECR          = "ecr"
)

// Event is one push that should be scanned.
type Event struct {
	Source     string    // "distribution" | "harbor" | "ecr"
	EventID    string    // the payload's event id; "" when the payload has none (Harbor Default format)
	Registry   string    // host[:port] to pull from, lowercase, as named by the payload
	Repository string    // repository path within Registry, e.g. "library/alpine"
	Digest     string    // "sha256:<64 lowercase hex>"
	Tag        string    // "" when pushed by digest
	MediaType  string    // manifest/index media type, "" when the payload doesn't say
	Timestamp  time.Time // when the registry says the push happened; zero when the payload doesn't say
}

// Skipped says why a payload event was not turned into an Event (for logs/metrics).
type Skipped struct {
	EventID string // the payload's event id; "" when the payload has none
	Reason  string // e.g. "blob push", "action pull", "harbor event QUOTA_EXCEED", "ecr result FAILURE"
}

// Result is what a parser found in one payload, in payload order.
type Result struct {
	Events  []Event
	Skipped []Skipped
}

// ErrMalformed is wrapped by every error due to the payload itself (the HTTP
// layer maps it to 400 and shows the message).
var ErrMalformed = errors.New("malformed webhook payload")

// Manifest media types.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeOCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex           = "application/vnd.oci.image.index.v1+json"

	// Docker schema1 manifests (unsigned and signed) cannot be scanned; a
	// push of one is skipped.
	MediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// maxEventIDLen bounds [Event.EventID]; real ids are UUIDs (36 bytes).
const maxEventIDLen = 256

// normalizeMediaType drops parameters and lowercases, so that
// "application/vnd.OCI.image.manifest.v1+json; charset=utf-8" compares equal
// to the bare type.
func normalizeMediaType(mt string) string {
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	return strings.ToLower(strings.TrimSpace(mt))
}

// IsManifestMediaType reports whether mt names something Customs can scan:
// a Docker schema2 manifest or manifest list, or an OCI image manifest or
// index. Parameters and case are ignored. Docker schema1 manifests are not
// scannable and report false.
func IsManifestMediaType(mt string) bool {
	switch normalizeMediaType(mt) {
	case MediaTypeDockerManifest, MediaTypeDockerManifestList, MediaTypeOCIManifest, MediaTypeOCIIndex:
		return true
	}
	return false
}

// IsIndexMediaType reports whether mt names a multi-platform manifest: a
// Docker manifest list or an OCI image index. Parameters and case are ignored.
func IsIndexMediaType(mt string) bool {
	switch normalizeMediaType(mt) {
	case MediaTypeDockerManifestList, MediaTypeOCIIndex:
		return true
	}
	return false
}

func isSchema1MediaType(mt string) bool {
	switch normalizeMediaType(mt) {
	case MediaTypeDockerSchema1, MediaTypeDockerSchema1Signed:
		return true
	}
	return false
}

// Validate reports whether e is well formed: a known Source, a valid
// Registry, Repository and Digest, a valid Tag when set, a manifest or index
// MediaType when set, and a short printable EventID. Every Event returned by
// the parsers passes Validate; consumers can call it again on events read
// back from a queue.
func (e Event) Validate() error {
	switch e.Source {
	case SourceDistribution, SourceHarbor, SourceECR:
	default:
		return fmt.Errorf("webhook: invalid event: source: unknown source %s", quote(e.Source))
	}
	if err := checkEventID(e.EventID); err != nil {
		return fmt.Errorf("webhook: invalid event: event id: %w", err)
	}
	if err := checkHost(e.Registry); err != nil {
		return fmt.Errorf("webhook: invalid event: registry: %w", err)
	}
	if err := checkRepository(e.Repository); err != nil {
		return fmt.Errorf("webhook: invalid event: repository: %w", err)
	}
	if err := checkDigest(e.Digest); err != nil {
		return fmt.Errorf("webhook: invalid event: digest: %w", err)
	}
	if e.Tag != "" {
		if err := checkTag(e.Tag); err != nil {
			return fmt.Errorf("webhook: invalid event: tag: %w", err)
		}
	}
	if e.MediaType != "" && (!IsManifestMediaType(e.MediaType) || e.MediaType != normalizeMediaType(e.MediaType)) {
		return fmt.Errorf("webhook: invalid event: media type: %s is not a manifest or index media type", quote(e.MediaType))
	}
	return nil
}

// malformed builds an error wrapping ErrMalformed that names the field at path.
func malformed(path string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, path, err)
}

// malformedf is malformed with a formatted problem.
func malformedf(path, format string, args ...any) error {
	return malformed(path, fmt.Errorf(format, args...))
}

// maxQuoted bounds how much of an untrusted value goes into an error
// message or a skip reason.
const maxQuoted = 80

// clip shortens s to at most n bytes without splitting a UTF-8 sequence,
// marking the cut with "...".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// quote renders an untrusted value for a message: clipped and Go-quoted, so
// control characters cannot forge log lines.
func quote(s string) string {
	return strconv.Quote(clip(s, maxQuoted))
}

// word renders an untrusted value for a skip reason: as-is when it is a
// short run of printable ASCII (so reasons read "action pull"), quoted
// otherwise.
func word(s string) string {
	if s == "" || len(s) > maxQuoted {
		return quote(s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\' {
			return quote(s)
		}
	}
	return s
}

// skipID bounds the event id recorded in a Skipped.
func skipID(id string) string { return clip(id, maxEventIDLen) }
