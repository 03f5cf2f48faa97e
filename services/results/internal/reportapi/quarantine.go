package reportapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/httpx"
	"github.com/customs-scan/customs/pkg/quarantine"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// maxRequestBody bounds what the write routes read.
const maxRequestBody = 64 << 10

// MountQuarantine adds the quarantine routes: reads with the read role
// (scoped tokens see their repositories' records only), quarantine and
// release with the admin role; the operator recorded is the token's name.
// q is nil when quarantine is off.
func MountQuarantine(router chi.Router, auth *apiauth.Authenticator, q *quarantine.Controller, mode string, log zerolog.Logger) {
	read := router.With(auth.Middleware(apiauth.RoleRead))
	admin := router.With(auth.Middleware(apiauth.RoleAdmin))
	visibleRecords := func(req *http.Request, recs []*customsv1.QuarantineRecord) []quarantine.RecordJSON {
		p := apiauth.FromContext(req.Context())
		out := []quarantine.RecordJSON{}
		for _, r := range recs {
			if p.CanSee(r.GetRepository()) {
				out = append(out, quarantine.View(r))
			}
		}
		return out
	}
	read.Get("/v1/quarantine", func(w http.ResponseWriter, req *http.Request) {
		if q == nil || q.KV == nil {
			httpx.WriteJSON(w, http.StatusOK, map[string]any{"mode": mode, "records": []any{}})
			return
		}
		recs, err := quarantine.List(req.Context(), q.KV, "")
		if err != nil {
			log.Error().Err(err).Msg("list quarantine records failed")
			httpx.WriteError(w, http.StatusServiceUnavailable, "quarantine records unavailable")
			return
		}
		repo, state := req.URL.Query().Get("repository"), req.URL.Query().Get("state")
		recs = slices.DeleteFunc(recs, func(r *customsv1.QuarantineRecord) bool {
			return repo != "" && r.GetRepository() != repo || state != "" && r.GetState() != state
		})
		slices.SortFunc(recs, func(a, b *customsv1.QuarantineRecord) int {
			return b.GetQuarantinedAt().AsTime().Compare(a.GetQuarantinedAt().AsTime())
		})
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"mode": mode, "records": visibleRecords(req, recs)})
	})
	read.Get("/v1/quarantine/{digest}", func(w http.ResponseWriter, req *http.Request) {
		digest := chi.URLParam(req, "digest")
		if !digestRE.MatchString(digest) {
			httpx.WriteError(w, http.StatusBadRequest, "digest must look like sha256:<64 lowercase hex>")
			return
		}
		if q == nil || q.KV == nil {
			httpx.WriteError(w, http.StatusNotFound, "no quarantine record for "+digest+" (quarantine is off)")
			return
		}
		recs, err := quarantine.List(req.Context(), q.KV, digest)
		if err != nil {
			log.Error().Err(err).Str("digest", digest).Msg("read quarantine records failed")
			httpx.WriteError(w, http.StatusServiceUnavailable, "quarantine records unavailable")
			return
		}
		views := visibleRecords(req, recs)
		if len(views) == 0 {
			httpx.WriteError(w, http.StatusNotFound, "no quarantine record for "+digest)
			return
		}
		entries, err := quarantine.Audit(req.Context(), q.JS, digest)
		if err != nil {
			log.Error().Err(err).Str("digest", digest).Msg("read quarantine audit failed")
			httpx.WriteError(w, http.StatusServiceUnavailable, "quarantine audit unavailable")
			return
		}
		p := apiauth.FromContext(req.Context())
		audit := []quarantine.AuditJSON{}
		for _, a := range entries {
			if p.CanSee(a.GetRecord().GetRepository()) {
				audit = append(audit, quarantine.ViewAudit(a))
			}
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"digest": digest, "mode": mode, "records": views, "audit": audit})
	})
	type change struct {
		Ref        string `json:"ref"`
		Registry   string `json:"registry"`
		Repository string `json:"repository"`
		Reason     string `json:"reason"`
	}
	decode := func(w http.ResponseWriter, req *http.Request) (change, bool) {
		var c change
		dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxRequestBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			httpx.WriteError(w, http.StatusBadRequest, "body: want JSON {\"reason\": \"...\"}: "+err.Error())
			return c, false
		}
		if strings.TrimSpace(c.Reason) == "" {
			httpx.WriteError(w, http.StatusBadRequest, "reason is required: say why, it is kept in the audit log")
			return c, false
		}
		return c, true
	}
	// fail answers an enforcement failure with the record: the change is
	// recorded (the gate follows the record at once), what a registry
	// refused is in enforcement[].
	respond := func(w http.ResponseWriter, status int, rec *customsv1.QuarantineRecord, err error) {
		body := map[string]any{"record": quarantine.View(rec)}
		if err != nil {
			body["error"] = err.Error()
			status = http.StatusBadGateway
		}
		httpx.WriteJSON(w, status, body)
	}
	admin.Post("/v1/quarantine", func(w http.ResponseWriter, req *http.Request) {
		if q == nil || q.KV == nil {
			httpx.WriteError(w, http.StatusConflict, "quarantine is off (CUSTOMS_QUARANTINE=off)")
			return
		}
		c, ok := decode(w, req)
		if !ok {
			return
		}
		ref, err := quarantine.ParseRef(c.Ref)
		if err != nil {
			httpx.WriteError(w, http.StatusBadRequest, "ref: "+err.Error())
			return
		}
		p := apiauth.FromContext(req.Context())
		if !p.CanSee(ref.Repository) {
			httpx.WriteError(w, http.StatusNotFound, "no repository "+ref.Repository)
			return
		}
		rec, err := q.Quarantine(req.Context(), ref, c.Reason, operator(p))
		if rec == nil {
			log.Error().Err(err).Str("image", ref.String()).Msg("manual quarantine failed")
			httpx.WriteError(w, http.StatusServiceUnavailable, "quarantine records unavailable")
			return
		}
		respond(w, http.StatusOK, rec, err)
	})
	admin.Post("/v1/quarantine/{digest}/release", func(w http.ResponseWriter, req *http.Request) {
		digest := chi.URLParam(req, "digest")
		if !digestRE.MatchString(digest) {
			httpx.WriteError(w, http.StatusBadRequest, "digest must look like sha256:<64 lowercase hex>")
			return
		}
		if q == nil || q.KV == nil {
			httpx.WriteError(w, http.StatusConflict, "quarantine is off (CUSTOMS_QUARANTINE=off)")
			return
		}
		c, ok := decode(w, req)
		if !ok {
			return
		}
		recs, err := quarantine.List(req.Context(), q.KV, digest)
		if err != nil {
			log.Error().Err(err).Str("digest", digest).Msg("read quarantine records failed")
			httpx.WriteError(w, http.StatusServiceUnavailable, "quarantine records unavailable")
			return
		}
		p := apiauth.FromContext(req.Context())
		recs = slices.DeleteFunc(recs, func(r *customsv1.QuarantineRecord) bool {
			return !p.CanSee(r.GetRepository()) ||
				c.Registry != "" && r.GetRegistry() != c.Registry ||
				c.Repository != "" && r.GetRepository() != c.Repository
		})
		switch {
		case len(recs) == 0:
			httpx.WriteError(w, http.StatusNotFound, "no quarantine record for "+digest)
			return
		case len(recs) > 1:
			var refs []string
			for _, r := range recs {
				refs = append(refs, quarantine.View(r).Ref)
			}
			httpx.WriteError(w, http.StatusConflict, "several records for "+digest+": name registry and repository ("+strings.Join(refs, ", ")+")")
			return
		}
		r := recs[0]
		ref := quarantine.Ref{Registry: r.GetRegistry(), Repository: r.GetRepository(), Digest: r.GetDigest()}
		rec, err := q.Release(req.Context(), ref, c.Reason, operator(p))
		if errors.Is(err, quarantine.ErrNotFound) {
			httpx.WriteError(w, http.StatusNotFound, err.Error())
			return
		}
		if rec == nil {
			log.Error().Err(err).Str("image", ref.String()).Msg("release failed")
			httpx.WriteError(w, http.StatusServiceUnavailable, "quarantine records unavailable")
			return
		}
		respond(w, http.StatusOK, rec, err)
	})
}

// operator names who made a change: the token's name.
func operator(p apiauth.Principal) string {
	if p.Anonymous() {
		return "anonymous"
	}
	return p.Name
}
