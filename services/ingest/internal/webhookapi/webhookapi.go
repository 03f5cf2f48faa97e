// Package webhookapi serves POST /v1/webhooks/{source}: authenticate, parse,
// filter, publish one job per manifest push, and answer only after
// JetStream acknowledged.
package webhookapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/egress"
	"github.com/customs-scan/customs/pkg/httpx"
	"github.com/customs-scan/customs/pkg/webhook"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// Config for the webhook endpoints.
type Config struct {
	// Token is required in every request when set; ingest.New refuses an
	// empty one unless authentication was turned off explicitly.
	Token              string
	Registries         []string
	InsecureRegistries []string
	MaxBodyBytes       int64
}

// API is the webhook handler set.
type API struct {
	token    []byte         // SHA-256 of the token; nil: no authentication
	allowed  *egress.Policy // the same allowlist type the scanner checks
	maxBody  int64
	js       jetstream.Publisher
	log      zerolog.Logger
	requests *prometheus.CounterVec
	jobs     *prometheus.CounterVec
}

type parser func([]byte) (webhook.Result, error)

// New builds the API and registers its metrics on reg.
func New(cfg Config, js jetstream.Publisher, reg prometheus.Registerer, log zerolog.Logger) *API {
	a := &API{
		token:   tokenHash(cfg.Token),
		allowed: egress.NewPolicy(egress.WithRegistries(cfg.Registries...), egress.WithInsecureRegistries(cfg.InsecureRegistries...)),
		maxBody: cfg.MaxBodyBytes,
		js:      js,
		log:     log.With().Str("service", "ingest").Logger(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "customs_ingest_webhooks_total", Help: "Webhook requests by source and HTTP status.",
		}, []string{"source", "status"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "customs_ingest_jobs_total", Help: "Scan jobs by source and result (queued, duplicate, not_allowed).",
		}, []string{"source", "result"}),
	}
	reg.MustRegister(a.requests, a.jobs)
	return a
}

func tokenHash(token string) []byte {
	if token == "" {
		return nil
	}
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Mount adds the webhook routes to r.
func (a *API) Mount(r chi.Router) {
	r.Post("/v1/webhooks/distribution", a.serve("distribution", webhook.ParseDistribution,
		"application/vnd.docker.distribution.events.v1+json",
		"application/vnd.docker.distribution.events.v2+json",
		"application/json"))
	r.Post("/v1/webhooks/harbor", a.serve("harbor", webhook.ParseHarbor,
		"application/json", "application/cloudevents+json"))
	r.Post("/v1/webhooks/ecr", a.serve("ecr", webhook.ParseECR, "application/json"))
}

// response is the body of a successful webhook call.
type response struct {
	Jobs    []jobRef  `json:"jobs"`
	Skipped []skipped `json:"skipped"`
}

// jobRef is one job this request queued (or found already queued).
type jobRef struct {
	JobID     string `json:"job_id"`
	Digest    string `json:"digest"`
	Duplicate bool   `json:"duplicate"`
}

// skipped is an event that does not become a job, and why.
type skipped struct {
	EventID string `json:"event_id,omitempty"`
	Reason  string `json:"reason"`
}

// errUnavailable: the job could not be queued; the sender must retry.
var errUnavailable = errors.New("job queue unavailable")

func (a *API) serve(source string, parse parser, contentTypes ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, resp, err := a.handle(r, source, parse, contentTypes)
		a.requests.WithLabelValues(source, fmt.Sprint(status)).Inc()
		if err != nil {
			// Classified once, here: the status says who must act.
			a.log.Warn().Err(err).Str("source", source).Int("status", status).Msg("webhook rejected")
			if status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "5")
			}
			httpx.WriteError(w, status, err.Error())
			return
		}
		httpx.WriteJSON(w, status, resp)
	}
}

func (a *API) handle(r *http.Request, source string, parse parser, contentTypes []string) (int, *response, error) {
	if a.token != nil && !a.authorized(r) {
		return http.StatusUnauthorized, nil, errors.New("missing or wrong bearer token in Authorization header")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !contains(contentTypes, mt) {
			return http.StatusUnsupportedMediaType, nil, fmt.Errorf("content type %q is not accepted here; want one of %s", ct, strings.Join(contentTypes, ", "))
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, a.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, nil, fmt.Errorf("body exceeds %d bytes", a.maxBody)
		}
		return http.StatusBadRequest, nil, fmt.Errorf("read body: %w", err)
	}
	res, err := parse(body)
	if err != nil {
		return http.StatusBadRequest, nil, err
	}
	resp := &response{Jobs: []jobRef{}, Skipped: []skipped{}}
	for _, s := range res.Skipped {
		resp.Skipped = append(resp.Skipped, skipped{EventID: s.EventID, Reason: s.Reason})
	}
	for _, ev := range res.Events {
		if !a.allowed.Registry(ev.Registry) {
			a.jobs.WithLabelValues(source, "not_allowed").Inc()
			a.log.Warn().Str("source", source).Str("registry", ev.Registry).Str("repository", ev.Repository).
				Str("digest", ev.Digest).Msg("event names a registry that is not configured; no job")
			resp.Skipped = append(resp.Skipped, skipped{EventID: ev.EventID, Reason: "registry " + ev.Registry + " is not in CUSTOMS_REGISTRIES"})
			continue
		}
		job := newJob(source, ev, a.allowed.Insecure(ev.Registry))
		dup, err := a.publish(r.Context(), job)
		if err != nil {
			return http.StatusServiceUnavailable, nil, err
		}
		result := "queued"
		if dup {
			result = "duplicate"
		}
		a.jobs.WithLabelValues(source, result).Inc()
		a.log.Info().Str("source", source).Str("job_id", job.GetJobId()).Bool("duplicate", dup).Msg("scan job queued")
		resp.Jobs = append(resp.Jobs, jobRef{JobID: job.GetJobId(), Digest: job.GetDigest(), Duplicate: dup})
	}
	if len(resp.Jobs) == 0 {
		return http.StatusOK, resp, nil
	}
	return http.StatusAccepted, resp, nil
}

func (a *API) authorized(r *http.Request) bool {
	got, ok := apiauth.BearerToken(r)
	// Hashes have one length, so the comparison does not leak the token's.
	h := sha256.Sum256([]byte(got))
	return ok && subtle.ConstantTimeCompare(h[:], a.token) == 1
}

// newJob builds the scan job for one push event.
func newJob(source string, ev webhook.Event, insecure bool) *customsv1.ScanJob {
	var tags []string
	if ev.Tag != "" {
		tags = []string{ev.Tag}
	}
	return &customsv1.ScanJob{
		JobId:       wire.JobID(ev.Registry, ev.Repository, ev.Digest),
		Source:      source,
		Registry:    egress.NormalizeHost(ev.Registry),
		Repository:  ev.Repository,
		Digest:      ev.Digest,
		Tags:        tags,
		MediaType:   ev.MediaType,
		Insecure:    insecure,
		RequestedAt: timestamppb.Now(),
		EventId:     ev.EventID,
	}
}

func (a *API) publish(ctx context.Context, job *customsv1.ScanJob) (duplicate bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	duplicate, err = wire.PublishJob(ctx, a.js, job)
	if err != nil {
		return false, fmt.Errorf("%w: %w", errUnavailable, err)
	}
	return duplicate, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
