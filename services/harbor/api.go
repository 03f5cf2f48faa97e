package harbor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/apiauth"
	harborfmt "github.com/customs-scan/customs/pkg/formats/harbor"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// scannerName and scannerVendor are what Harbor lists as the scanner.
const (
	scannerName   = "Customs"
	scannerVendor = "Customs"
)

func (s *Service) mount(r chi.Router) {
	r.Route("/api/v1", func(r chi.Router) {
		r.Use(s.authenticate)
		r.Get("/metadata", s.metadata)
		r.Post("/scan", s.scan)
		r.Get("/scan/{id}/report", s.report)
	})
}

func tokenHash(token string) []byte {
	if token == "" {
		return nil
	}
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// authenticate admits requests with the registration's bearer token
// (scheme case-insensitive, compared in constant time), or everyone when
// authentication is off.
func (s *Service) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.token != nil {
			got, ok := apiauth.BearerToken(r)
			// Hashes have one length, so the comparison does not leak the token's.
			h := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(h[:], s.token) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="customs-harbor"`)
				writeError(w, http.StatusUnauthorized, "missing or wrong bearer token in Authorization header")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes the spec's ErrorResponse.
func writeError(w http.ResponseWriter, status int, msg string) {
	type errorBody struct {
		Message string `json:"message"`
	}
	writeJSON(w, status, mediaTypeError, struct {
		Error errorBody `json:"error"`
	}{errorBody{msg}})
}

type capability struct {
	Type                 string         `json:"type"`
	ConsumesMimeTypes    []string       `json:"consumes_mime_types"`
	ProducesMimeTypes    []string       `json:"produces_mime_types"`
	AdditionalAttributes map[string]any `json:"additional_attributes,omitempty"`
}

// metadata is GET /api/v1/metadata: who Customs is and what it makes.
func (s *Service) metadata(w http.ResponseWriter, r *http.Request) {
	caps := []capability{{Type: capVulnerability, ConsumesMimeTypes: consumedMimeTypes, ProducesMimeTypes: vulnerabilityMimeTypes}}
	if s.sbom != nil {
		caps = append(caps, capability{Type: capSBOM, ConsumesMimeTypes: consumedMimeTypes,
			ProducesMimeTypes:    []string{harborfmt.MediaTypeSBOM},
			AdditionalAttributes: map[string]any{"sbom_media_types": s.sbomMTs}})
	}
	props := map[string]string{
		"harbor.scanner-adapter/scanner-type": "os-package-vulnerability",
		// Bearer: Harbor then sends a registry token of its scanner robot,
		// whose pulls Harbor exempts from "prevent vulnerable images".
		"harbor.scanner-adapter/registry-authorization-type": "Bearer",
	}
	if b := s.bound.Load(); b != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		p, _, ok, err := b.vulndb.Current(ctx)
		cancel()
		switch {
		case err != nil:
			s.log.Warn().Err(err).Msg("cannot read the vulnerability database version for metadata")
		case ok:
			props["harbor.scanner-adapter/vulnerability-database-updated-at"] = p.Built.UTC().Format(time.RFC3339)
			props["customs/vulnerability-database-version"] = p.Version
		}
	}
	writeJSON(w, http.StatusOK, mediaTypeMetadata, map[string]any{
		"scanner":      harborfmt.Scanner{Name: scannerName, Vendor: scannerVendor, Version: s.version},
		"capabilities": caps,
		"properties":   props,
	})
}

// scan is POST /api/v1/scan: validate, answer from a stored report or
// queue a job, 202 with the id.
func (s *Service) scan(w http.ResponseWriter, r *http.Request) {
	t, aerr := s.decodeScanRequest(r)
	if aerr != nil {
		s.requests.WithLabelValues("refused").Inc()
		s.log.Warn().Int("status", aerr.status).Str("reason", aerr.msg).Msg("scan request refused")
		writeError(w, aerr.status, aerr.msg)
		return
	}
	b := s.bound.Load()
	if b == nil {
		s.requests.WithLabelValues("refused").Inc()
		writeError(w, http.StatusInternalServerError, "the adapter is starting: JetStream buckets not bound yet")
		return
	}
	id, err := newScanID()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	rec := &scanRecord{Registry: t.registry, Repository: t.repository, Digest: t.digest, Tag: t.tag,
		MimeType: t.mimeType, RequestedAt: time.Now().UTC()}
	// A digest with a complete stored report is answered from it: no pull
	// (the scanner would skip it as already scanned anyway).
	stored, err := completeStored(ctx, b.verdicts, t.digest)
	if err != nil {
		s.log.Warn().Err(err).Str("digest", t.digest).Msg("cannot read the digest's verdict; queueing a scan")
	}
	rec.Queued = !stored
	if err := putScan(ctx, b.scans, id, rec); err != nil {
		s.requests.WithLabelValues("refused").Inc()
		s.log.Error().Err(err).Msg("cannot record a scan request")
		writeError(w, http.StatusInternalServerError, "cannot record the scan request: JetStream unavailable")
		return
	}
	if rec.Queued {
		if err := s.queue(ctx, id, t, rec.RequestedAt); err != nil {
			s.requests.WithLabelValues("refused").Inc()
			deleteScan(context.WithoutCancel(ctx), b.scans, id)
			s.log.Error().Err(err).Str("scan_id", id).Msg("cannot queue a scan job")
			writeError(w, http.StatusInternalServerError, "cannot queue the scan: job queue unavailable")
			return
		}
	}
	result := "queued"
	if !rec.Queued {
		result = "stored"
	}
	s.requests.WithLabelValues(result).Inc()
	s.log.Info().Str("scan_id", id).Str("registry", t.registry).Str("repository", t.repository).Str("digest", t.digest).
		Str("result", result).Bool("credentials", t.authorization != "").Msg("scan request accepted")
	writeJSON(w, http.StatusAccepted, mediaTypeScanResponse, map[string]string{"id": id})
}

// queue publishes the scan job, Harbor's credentials sealed into it.
func (s *Service) queue(ctx context.Context, id string, t *scanTarget, requested time.Time) error {
	var tags []string
	if t.tag != "" {
		tags = []string{t.tag}
	}
	job := &customsv1.ScanJob{
		JobId: wire.JobID(t.registry, t.repository, t.digest), Source: "harbor",
		Registry: t.registry, Repository: t.repository, Digest: t.digest, Tags: tags, MediaType: t.mimeType,
		Insecure: t.insecure, RequestedAt: timestamppb.New(requested),
		// One job per request: a webhook retry is not a thing here.
		EventId: "harbor-scan:" + id,
	}
	if t.authorization != "" {
		if err := s.key.Seal(job, t.authorization, requested.Add(sealedFor)); err != nil {
			return err
		}
	}
	_, err := wire.PublishJob(ctx, s.deps.JetStream, job)
	return err
}

// Report kinds an Accept header can ask for.
type wanted struct {
	mediaType string // the report's Content-Type
	sbom      string // sbom_media_type, for the SBOM report
}

// negotiate reads Accept (and sbom_media_type): missing or */* means the
// v1.0 Harbor report, as the spec says; an SBOM needs a supported
// sbom_media_type (400 otherwise); a type Customs does not produce is 501.
func (s *Service) negotiate(r *http.Request) (wanted, *apiError) {
	accept := strings.TrimSpace(r.Header.Get("Accept"))
	if accept == "" {
		return wanted{mediaType: harborfmt.MediaTypeHarborVulnerability}, nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		v := params["version"]
		switch {
		case mt == "*/*" || mt == "application/*":
			return wanted{mediaType: harborfmt.MediaTypeHarborVulnerability}, nil
		case mt == "application/vnd.security.vulnerability.report" && (v == "" || v == "1.1"):
			return wanted{mediaType: harborfmt.MediaTypeVulnerability}, nil
		case mt == "application/vnd.scanner.adapter.vuln.report.harbor+json" && (v == "" || v == "1.0"):
			return wanted{mediaType: harborfmt.MediaTypeHarborVulnerability}, nil
		case mt == "application/vnd.security.sbom.report+json" && (v == "" || v == "1.0"):
			if s.sbom == nil {
				return wanted{}, errorf(http.StatusNotImplemented, "this adapter has no sbom capability")
			}
			// Media types hold no spaces: a "+" sent unencoded (decoded
			// to a space) is still a "+".
			q := strings.ReplaceAll(r.URL.Query().Get("sbom_media_type"), " ", "+")
			if q == "" {
				return wanted{}, errorf(http.StatusBadRequest, "an SBOM report needs ?sbom_media_type= (one of %s)", strings.Join(s.sbomMTs, ", "))
			}
			if !slices.Contains(s.sbomMTs, q) {
				return wanted{}, errorf(http.StatusBadRequest, "sbom_media_type %q: want one of %s", q, strings.Join(s.sbomMTs, ", "))
			}
			return wanted{mediaType: harborfmt.MediaTypeSBOM, sbom: q}, nil
		}
	}
	produced := slices.Clone(vulnerabilityMimeTypes)
	if s.sbom != nil {
		produced = append(produced, harborfmt.MediaTypeSBOM)
	}
	return wanted{}, errorf(http.StatusNotImplemented, "no report of type %q; this adapter produces %s", accept, strings.Join(produced, ", "))
}

// report is GET /api/v1/scan/{id}/report: 302 while the scan runs, the
// report in the type asked for once stored, 500 with the reason for a
// failed scan, 404 for an unknown id.
func (s *Service) report(w http.ResponseWriter, r *http.Request) {
	status := s.serveReport(w, r)
	s.reports.WithLabelValues(strconv.Itoa(status)).Inc()
}

func (s *Service) serveReport(w http.ResponseWriter, r *http.Request) int {
	id := chi.URLParam(r, "id")
	want, aerr := s.negotiate(r)
	if aerr != nil {
		writeError(w, aerr.status, aerr.msg)
		return aerr.status
	}
	pending := func() int {
		// The spec's 302: same URL, poll again after Refresh-After seconds.
		w.Header().Set("Location", r.URL.RequestURI())
		w.Header().Set("Refresh-After", s.refreshAfter())
		w.WriteHeader(http.StatusFound)
		return http.StatusFound
	}
	b := s.bound.Load()
	if b == nil {
		return pending()
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	rec, err := getScan(ctx, b.scans, id)
	if errors.Is(err, errUnknownScan) {
		writeError(w, http.StatusNotFound, "no scan request "+strconv.Quote(id)+" (unknown, or older than a day): ask again")
		return http.StatusNotFound
	}
	if err != nil {
		// JetStream unavailable: Harbor polls again, the scan goes on.
		s.log.Warn().Err(err).Str("scan_id", id).Msg("cannot read a scan request; answering pending")
		return pending()
	}
	res, err := s.outcome(ctx, b, rec)
	if err != nil {
		s.log.Warn().Err(err).Str("scan_id", id).Str("digest", rec.Digest).Msg("cannot read the stored report; answering pending")
		return pending()
	}
	switch res.state {
	case statePending:
		return pending()
	case stateFailed:
		writeError(w, http.StatusInternalServerError, "scan failed: "+res.report.Error)
		return http.StatusInternalServerError
	}
	art := harborfmt.Artifact{Repository: rec.Repository, Digest: rec.Digest, Tag: rec.Tag, MimeType: rec.MimeType}
	if art.MimeType == "" {
		art.MimeType = res.report.Artifact.MediaType
	}
	sc := harborfmt.Scanner{Name: scannerName, Vendor: scannerVendor, Version: res.report.Scanner.Version}
	if want.sbom == "" {
		writeJSON(w, http.StatusOK, want.mediaType, harborfmt.NewVulnerabilityReport(res.report, art, sc, time.Now()))
		return http.StatusOK
	}
	var doc bytes.Buffer
	if err := s.sbom(&doc, res.report, want.sbom); err != nil {
		s.log.Error().Err(err).Str("scan_id", id).Str("sbom_media_type", want.sbom).Msg("cannot render the SBOM")
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("render %s SBOM: %v", want.sbom, err))
		return http.StatusInternalServerError
	}
	if raw := bytes.TrimSpace(doc.Bytes()); !json.Valid(raw) || len(raw) == 0 || raw[0] != '{' {
		s.log.Error().Str("scan_id", id).Str("sbom_media_type", want.sbom).Msg("SBOM renderer wrote no JSON object")
		writeError(w, http.StatusInternalServerError, "render "+want.sbom+" SBOM: not a JSON object")
		return http.StatusInternalServerError
	}
	writeJSON(w, http.StatusOK, want.mediaType, harborfmt.NewSBOMReport(art, sc, want.sbom, bytes.TrimSpace(doc.Bytes()), time.Now()))
	return http.StatusOK
}
