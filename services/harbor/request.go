package harbor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/customs-scan/customs/pkg/egress"
	harborfmt "github.com/customs-scan/customs/pkg/formats/harbor"
	"github.com/customs-scan/customs/pkg/regauth"
)

// Media types of the scanner API other than reports.
const (
	mediaTypeMetadata     = "application/vnd.scanner.adapter.metadata+json; version=1.1"
	mediaTypeScanRequest  = "application/vnd.scanner.adapter.scan.request+json"
	mediaTypeScanResponse = "application/vnd.scanner.adapter.scan.response+json; version=1.0"
	mediaTypeError        = "application/vnd.scanner.adapter.error+json; version=1.0"
)

// consumedMimeTypes are the artifacts Customs scans for Harbor: image
// manifests. Harbor scans an index by scanning each of its manifests.
var consumedMimeTypes = []string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

// vulnerabilityMimeTypes are the vulnerability reports produced, Harbor's
// default first.
var vulnerabilityMimeTypes = []string{harborfmt.MediaTypeVulnerability, harborfmt.MediaTypeHarborVulnerability}

// Capability types.
const (
	capVulnerability = "vulnerability"
	capSBOM          = "sbom"
)

// maxRequestBytes bounds a scan request body (Harbor's are well under 4 KiB).
const maxRequestBytes = 1 << 20

// scanRequest is the spec's ScanRequest; unknown fields (Harbor also sends
// registry.insecure and artifact.size) are ignored.
type scanRequest struct {
	Registry struct {
		URL string `json:"url"`
		// Authorization is an HTTP Authorization value for the registry:
		// never logged, never stored, sealed into the job.
		Authorization string `json:"authorization"`
	} `json:"registry"`
	Artifact struct {
		Repository string `json:"repository"`
		Digest     string `json:"digest"`
		Tag        string `json:"tag"`
		MimeType   string `json:"mime_type"`
	} `json:"artifact"`
	EnabledCapabilities []struct {
		Type              string   `json:"type"`
		ProducesMimeTypes []string `json:"produces_mime_types"`
		Parameters        *struct {
			SBOMMediaTypes []string `json:"sbom_media_types"`
		} `json:"parameters"`
	} `json:"enabled_capabilities"`
}

// apiError is an answer other than success: the status and a message
// Harbor shows (never a credential).
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// scanTarget is a validated scan request.
type scanTarget struct {
	registry, repository, digest, tag, mimeType string
	insecure                                    bool
	// authorization is the registry credential value, already checked
	// to parse; "" for an anonymous pull.
	authorization string
}

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// decodeScanRequest reads and checks a scan request: 400 for a body that
// is not a ScanRequest, 422 for a field Customs cannot use, 501 for what
// it has no capability for.
func (s *Service) decodeScanRequest(r *http.Request) (*scanTarget, *apiError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		ok := err == nil && (mt == "application/json" ||
			mt == mediaTypeScanRequest && (params["version"] == "" || params["version"] == "1.0" || params["version"] == "1.1"))
		if !ok {
			return nil, errorf(http.StatusBadRequest, "content type %q is not a scan request; want %s; version=1.1", ct, mediaTypeScanRequest)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errorf(http.StatusBadRequest, "body exceeds %d bytes", maxRequestBytes)
		}
		return nil, errorf(http.StatusBadRequest, "read body: %v", err)
	}
	var req scanRequest
	if err := json.Unmarshal(body, &req); err != nil {
		// encoding/json's messages name fields and types, never values.
		return nil, errorf(http.StatusBadRequest, "not a scan request: %v", err)
	}
	clear(body)
	t := &scanTarget{
		repository: req.Artifact.Repository, digest: req.Artifact.Digest,
		tag: req.Artifact.Tag, mimeType: req.Artifact.MimeType, authorization: strings.TrimSpace(req.Registry.Authorization),
	}
	host, scheme, err := registryHost(req.Registry.URL)
	if err != nil {
		return nil, errorf(http.StatusUnprocessableEntity, "registry.url: %v", err)
	}
	t.registry = host
	// The SSRF guard of every source: only listed registries are pulled.
	if !s.allowed.Registry(host) {
		return nil, errorf(http.StatusUnprocessableEntity,
			"registry %s is not in CUSTOMS_REGISTRIES or CUSTOMS_INSECURE_REGISTRIES", host)
	}
	t.insecure = s.allowed.Insecure(host)
	if scheme == "http" && !t.insecure {
		return nil, errorf(http.StatusUnprocessableEntity,
			"registry.url is plain HTTP but %s is not in CUSTOMS_INSECURE_REGISTRIES", host)
	}
	if t.repository == "" {
		return nil, errorf(http.StatusUnprocessableEntity, "artifact.repository is required")
	}
	if !digestRE.MatchString(t.digest) {
		return nil, errorf(http.StatusUnprocessableEntity, "artifact.digest %q: want sha256:<64 hex digits>", t.digest)
	}
	if _, err := name.NewDigest(host+"/"+t.repository+"@"+t.digest, name.StrictValidation); err != nil {
		return nil, errorf(http.StatusUnprocessableEntity, "artifact.repository %q is not a repository name", t.repository)
	}
	if t.tag != "" {
		if _, err := name.NewTag(host+"/"+t.repository+":"+t.tag, name.StrictValidation); err != nil {
			return nil, errorf(http.StatusUnprocessableEntity, "artifact.tag %q is not a tag", t.tag)
		}
	}
	if t.mimeType != "" && !slices.Contains(consumedMimeTypes, t.mimeType) {
		return nil, errorf(http.StatusNotImplemented, "artifact.mime_type %q: Customs scans %s for Harbor",
			t.mimeType, strings.Join(consumedMimeTypes, ", "))
	}
	if t.authorization != "" {
		if _, err := regauth.ParseAuthorization(t.authorization); err != nil {
			return nil, errorf(http.StatusUnprocessableEntity, "registry.%v", err)
		}
	}
	if err := s.checkCapabilities(req); err != nil {
		return nil, err
	}
	return t, nil
}

// checkCapabilities refuses a request for a report Customs cannot make.
func (s *Service) checkCapabilities(req scanRequest) *apiError {
	for i, c := range req.EnabledCapabilities {
		var produced []string
		switch c.Type {
		case capVulnerability:
			produced = vulnerabilityMimeTypes
		case capSBOM:
			if s.sbom == nil {
				return errorf(http.StatusNotImplemented, "enabled_capabilities[%d]: this adapter has no sbom capability", i)
			}
			produced = []string{harborfmt.MediaTypeSBOM}
			if c.Parameters != nil {
				for _, mt := range c.Parameters.SBOMMediaTypes {
					if !slices.Contains(s.sbomMTs, mt) {
						return errorf(http.StatusNotImplemented, "enabled_capabilities[%d]: sbom media type %q is not produced; want one of %s",
							i, mt, strings.Join(s.sbomMTs, ", "))
					}
				}
			}
		default:
			return errorf(http.StatusUnprocessableEntity, "enabled_capabilities[%d].type %q: want vulnerability or sbom", i, c.Type)
		}
		for _, mt := range c.ProducesMimeTypes {
			if !slices.ContainsFunc(produced, func(p string) bool { return sameMediaType(p, mt) }) {
				return errorf(http.StatusNotImplemented, "enabled_capabilities[%d]: %q is not produced; want one of %s",
					i, mt, strings.Join(produced, ", "))
			}
		}
	}
	return nil
}

// registryHost reads registry.url, "a base URL or the Docker Registry v2
// API" (https://core.harbor.domain, http://harbor-core:8080, or just
// harbor-registry:5000), into a normalised host[:port] and its scheme ("":
// none given).
func registryHost(raw string) (host, scheme string, err error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", "", errors.New("required")
	}
	if !strings.Contains(s, "://") {
		s = "//" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("%q is not a URL", raw)
	}
	switch {
	case u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https":
		return "", "", fmt.Errorf("scheme %q: want http or https", u.Scheme)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", "", fmt.Errorf("%q: want [http[s]://]host[:port]", raw)
	case u.Path != "" && u.Path != "/" && strings.TrimSuffix(u.Path, "/") != "/v2":
		return "", "", fmt.Errorf("%q: want the registry's base URL, not a path", raw)
	}
	return egress.NormalizeHost(u.Host), u.Scheme, nil
}

// sameMediaType compares two media types by type and version parameter
// (spacing and parameter case aside).
func sameMediaType(a, b string) bool {
	ta, pa, erra := mime.ParseMediaType(a)
	tb, pb, errb := mime.ParseMediaType(b)
	return erra == nil && errb == nil && ta == tb && pa["version"] == pb["version"]
}
