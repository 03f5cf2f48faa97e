// Package reportapi is the report API: GET routes serving stored reports,
// inventories, failed attempts, listings and the vulnerability database
// state, each behind apiauth.
package reportapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/formats"
	"github.com/customs-scan/customs/pkg/httpx"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/services/results/internal/reportstore"
)

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// repositoryRE is the OCI distribution spec's repository name grammar; a
// scoped caller may only name repositories that match it, so a pattern
// like team-a/* cannot be stretched with "team-a/..".
var repositoryRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

// visible reports whether the caller may see a stored report or inventory
// (both carry the artifact). An unscoped caller sees everything without
// the document being decoded.
func visible(req *http.Request, raw []byte) bool {
	p := apiauth.FromContext(req.Context())
	if !p.Scoped() {
		return true
	}
	var doc struct {
		Artifact struct {
			Repository string `json:"repository"`
		} `json:"artifact"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return false
	}
	return p.CanSee(doc.Artifact.Repository)
}

// StateFunc returns the quarantine state of registry/repository@digest,
// nil when there is none.
type StateFunc func(ctx context.Context, registry, repository, digest string) (any, error)

// withState adds "quarantine" to a stored report: the record is read at
// serve time, so a release shows at once without rewriting the report.
func withState(ctx context.Context, raw []byte, state StateFunc) ([]byte, error) {
	var doc struct {
		Artifact struct {
			Registry   string `json:"registry"`
			Repository string `json:"repository"`
			Digest     string `json:"digest"`
		} `json:"artifact"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return raw, nil // served as stored; visible() decides about it
	}
	st, err := state(ctx, doc.Artifact.Registry, doc.Artifact.Repository, doc.Artifact.Digest)
	if err != nil || st == nil {
		return raw, err
	}
	sb, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	end := bytes.LastIndexByte(raw, '}')
	if end < 0 {
		return raw, nil
	}
	out := make([]byte, 0, len(raw)+len(sb)+32)
	out = append(out, bytes.TrimRight(raw[:end], " \n\t")...)
	out = append(out, ",\n  \"quarantine\": "...)
	out = append(out, sb...)
	out = append(out, "\n}"...)
	return out, nil
}

// negotiate picks the format of a report: ?format= (400 for an unknown
// name, listing the known ones), else Accept (406 when it names only
// media types Customs does not write).
func negotiate(w http.ResponseWriter, req *http.Request) (string, bool) {
	if names, ok := req.URL.Query()["format"]; ok {
		name := ""
		if len(names) > 0 {
			name = names[0]
		}
		if _, _, known := formats.Lookup(name); !known {
			httpx.WriteError(w, http.StatusBadRequest, fmt.Sprintf("unknown format %q: known formats are %s", name, strings.Join(formats.Names(), ", ")))
			return "", false
		}
		return name, true
	}
	accept := req.Header.Get("Accept")
	name, ok := formats.FromAccept(accept)
	if !ok && acceptsHTML(accept) {
		// A browser carrying a token (the web pages' session, a bookmarked
		// API link): the report's own representation, not a 406.
		return formats.JSON, true
	}
	if !ok {
		var types []string
		for _, n := range formats.Names() {
			_, ct, _ := formats.Lookup(n)
			types = append(types, ct)
		}
		httpx.WriteError(w, http.StatusNotAcceptable, fmt.Sprintf("no acceptable format in Accept %q: reports are served as %s (or ?format=%s)",
			accept, strings.Join(types, ", "), strings.Join(formats.Names(), "|")))
		return "", false
	}
	return name, true
}

// acceptsHTML reports whether Accept names text/html (browsers do).
func acceptsHTML(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/html" {
			return true
		}
	}
	return false
}

// convert encodes a stored report in another format. It is encoded into
// memory first, so a failure is still an error status, not half a body.
func convert(raw []byte, name string) ([]byte, string, error) {
	var r report.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, "", fmt.Errorf("decode stored report: %w", err)
	}
	r.Normalize()
	enc, contentType, _ := formats.Lookup(name)
	var buf bytes.Buffer
	if err := enc(&buf, &r, formats.Options{}); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), contentType, nil
}

// DBInfo describes the vulnerability database results matches against.
type DBInfo struct {
	Status     string     `json:"status"` // "loaded" or "none"
	Version    string     `json:"version,omitempty"`
	BuiltAt    *time.Time `json:"built_at,omitempty"`
	Advisories int        `json:"advisories,omitempty"`
	Entries    int        `json:"entries,omitempty"`
}

// Mount adds the report routes to r, each behind auth with the read role.
// A token scoped to some repositories gets 404 for any other repository's
// report, inventory or listing, exactly as for one that does not exist, so
// repository names and digests don't leak. db reports the current
// vulnerability database (nil: the route is not served).
//
// state, when set, gives the quarantine state of an image, added to its
// report as "quarantine" (nil: no record).
func Mount(router chi.Router, s *reportstore.Store, auth *apiauth.Authenticator, db func() DBInfo, state StateFunc, log zerolog.Logger) {
	r := router.With(auth.Middleware(apiauth.RoleRead))
	if db != nil {
		r.Get("/v1/vulnerability-db", func(w http.ResponseWriter, req *http.Request) {
			httpx.WriteJSON(w, http.StatusOK, db())
		})
	}
	// load reads one stored document of a digest: it checks the digest,
	// hides other teams' documents as missing (404) and answers 503 for a
	// storage failure; ok is false when it has answered.
	load := func(w http.ResponseWriter, req *http.Request, what, missing string, read func(context.Context, string) ([]byte, error)) (raw []byte, ok bool) {
		digest := chi.URLParam(req, "digest")
		if !digestRE.MatchString(digest) {
			httpx.WriteError(w, http.StatusBadRequest, "digest must look like sha256:<64 lowercase hex>")
			return nil, false
		}
		raw, err := read(req.Context(), digest)
		if errors.Is(err, store.ErrNotFound) || err == nil && !visible(req, raw) {
			httpx.WriteError(w, http.StatusNotFound, "no "+what+" for "+digest+missing)
			return nil, false
		}
		if err != nil {
			log.Error().Err(err).Str("digest", digest).Str("document", what).Msg("read failed")
			httpx.WriteError(w, http.StatusServiceUnavailable, "report storage unavailable")
			return nil, false
		}
		return raw, true
	}
	// document serves a stored document as it is.
	document := func(what, missing string, read func(context.Context, string) ([]byte, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			if raw, ok := load(w, req, what, missing, read); ok {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(raw)
			}
		}
	}
	// A report in the format ?format= names, else the one Accept prefers
	// (Customs JSON by default); the quarantine state is added to the JSON.
	r.Get("/v1/reports/{digest}", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Add("Vary", "Accept")
		name, ok := negotiate(w, req)
		if !ok {
			return
		}
		raw, ok := load(w, req, "report", " (yet)", s.GetRaw)
		if !ok {
			return
		}
		if name == formats.JSON {
			if state != nil {
				withQ, err := withState(req.Context(), raw, state)
				if err != nil {
					log.Error().Err(err).Str("digest", chi.URLParam(req, "digest")).Msg("read quarantine state failed")
					httpx.WriteError(w, http.StatusServiceUnavailable, "quarantine records unavailable")
					return
				}
				raw = withQ
			}
			w.Header().Set("Content-Type", formats.JSONContentType)
			_, _ = w.Write(raw)
			return
		}
		body, contentType, err := convert(raw, name)
		if err != nil {
			log.Error().Err(err).Str("digest", chi.URLParam(req, "digest")).Str("format", name).Msg("convert report failed")
			httpx.WriteError(w, http.StatusInternalServerError, "the report could not be converted to "+name)
			return
		}
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(body)
	})
	r.Get("/v1/reports/{digest}/inventory", document("inventory", " (not scanned yet, an index, or a failed scan)", s.GetInventoryRaw))
	// Attempts are shown to whoever may see the digest's report; the
	// attempts document is built from the stored attempt records.
	r.Get("/v1/reports/{digest}/attempts", document("report", " (yet)", func(ctx context.Context, digest string) ([]byte, error) {
		raw, err := s.GetRaw(ctx, digest)
		if err != nil {
			return nil, err
		}
		attempts, err := s.Attempts(ctx, digest, 100)
		if err != nil {
			return nil, err
		}
		var doc struct {
			Artifact json.RawMessage `json:"artifact"`
		}
		_ = json.Unmarshal(raw, &doc) // visible() reads the artifact: keep it
		return json.Marshal(map[string]any{"digest": digest, "artifact": doc.Artifact, "attempts": append([]*report.Report{}, attempts...)})
	}))
	r.Get("/v1/reports", func(w http.ResponseWriter, req *http.Request) {
		repo := req.URL.Query().Get("repository")
		if repo == "" {
			httpx.WriteError(w, http.StatusBadRequest, "query parameter repository is required")
			return
		}
		if p := apiauth.FromContext(req.Context()); !p.CanSee(repo) || p.Scoped() && !repositoryRE.MatchString(repo) {
			httpx.WriteError(w, http.StatusNotFound, "no repository "+repo)
			return
		}
		limit := 100
		if l := req.URL.Query().Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n <= 0 || n > 1000 {
				httpx.WriteError(w, http.StatusBadRequest, "limit must be an integer from 1 to 1000")
				return
			}
			limit = n
		}
		list, err := s.List(req.Context(), repo, limit)
		if err != nil {
			log.Error().Err(err).Str("repository", repo).Msg("list reports failed")
			httpx.WriteError(w, http.StatusServiceUnavailable, "report storage unavailable")
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"repository": repo, "reports": list})
	})
}
