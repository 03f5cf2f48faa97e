// Package jobs handles scan jobs, one delivery at a time: pull the image by
// digest, scan it, publish its reports, and dead-letter what Customs gives
// up on. Handler's methods are the handlers queue.Worker (the consume loop
// in pkg/queue) calls.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/egress"
	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/regauth"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// Config for the job handler: the scanner's configuration, its defaults
// applied (scanner.Config.withDefaults).
type Config struct {
	Registries         []string
	InsecureRegistries []string
	ScanTimeout        time.Duration
	MaxManifestBytes   int64
	// RedirectHosts may be sent to by registries (blob storage, token
	// realms on another host); they never get registry credentials.
	RedirectHosts []string
	// TokenHosts are token realms trusted with the registry's credentials.
	TokenHosts []string
	// AllowForeignLayers lets foreign-layer URLs be fetched.
	AllowForeignLayers bool
	// PullFrom maps a registry named by jobs to the host pulled from
	// instead (normalised hosts, both allowlisted).
	PullFrom map[string]string
	// Keychain resolves pull credentials per registry host; nil: whatever
	// the remote options carry.
	Keychain authn.Keychain
	// JobKey opens credentials sealed into a job (ScanJob.sealed_authorization);
	// nil: such jobs fail.
	JobKey *wire.JobKey
	// Inspect carries the analyzers and policy, built once per process.
	Inspect inspect.Options
}

// Handler handles scan jobs: Handle for each delivery, GiveUp when the
// queue stops retrying one, HandleAdvisory for jobs whose every delivery
// died with its process.
type Handler struct {
	cfg     Config
	allowed *egress.Policy    // empty: nothing is pulled
	egress  *egress.Transport // every registry request goes through it
	js      jetstream.JetStream
	remote  []remote.Option
	log     zerolog.Logger
	scans   *prometheus.HistogramVec
	// scanned remembers finished jobs (nil: every job is scanned).
	scanned jetstream.KeyValue
	// publisher sends report events (signed; large reports by reference).
	publisher *wire.Publisher
}

// SetReports sets how report events are sent: signed by signer (nil: not
// signed), reports too large for a message put in bodies.
func (h *Handler) SetReports(bodies jetstream.ObjectStore, signer *wire.Signer) {
	h.publisher = &wire.Publisher{JS: h.js, Bodies: bodies, Signer: signer}
}

// SetScanned turns on skipping jobs already scanned, recorded in kv.
func (h *Handler) SetScanned(kv jetstream.KeyValue) { h.scanned = kv }

// New builds a Handler and registers its metrics on reg.
func New(cfg Config, js jetstream.JetStream, remoteOpts []remote.Option, reg prometheus.Registerer, log zerolog.Logger) *Handler {
	policy := egress.NewPolicy(egress.WithRegistries(cfg.Registries...), egress.WithInsecureRegistries(cfg.InsecureRegistries...),
		egress.WithRedirectHosts(cfg.RedirectHosts...), egress.WithTokenHosts(cfg.TokenHosts...), egress.WithForeignLayers(cfg.AllowForeignLayers))
	h := &Handler{
		cfg:     cfg,
		allowed: policy,
		egress:  egress.NewTransport(policy, nil),
		js:      js,
		remote:  remoteOpts,
		log:     log,
		scans: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "customs_scanner_scan_seconds",
			Help:    "Time to pull and scan one job, by status.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}, []string{"status"}),
	}
	reg.MustRegister(h.scans)
	h.publisher = &wire.Publisher{JS: js}
	return h
}

// Handle is the queue handler for one scan job.
func (h *Handler) Handle(ctx context.Context, msg jetstream.Msg) error {
	job, err := wire.DecodeJob(msg.Data())
	if err != nil {
		return queue.Permanent(err)
	}
	// The consume loop's logger (subject, stream sequence, delivery) plus
	// the job's fields goes on the context: pkg/scan's warnings about
	// skipped files then name the job they belong to.
	base := h.log
	if l := zerolog.Ctx(ctx); l.GetLevel() != zerolog.Disabled {
		base = *l
	}
	log := base.With().Str("job_id", job.GetJobId()).Str("digest", job.GetDigest()).
		Str("repository", job.GetRepository()).Logger()
	ctx = log.WithContext(ctx)
	// An empty allowlist pulls nothing: a job forged onto NATS must not
	// pick the host.
	if !h.allowed.Registry(job.GetRegistry()) {
		return queue.Permanent(fmt.Errorf("registry %q is not configured for pulls (CUSTOMS_REGISTRIES, CUSTOMS_INSECURE_REGISTRIES)", job.GetRegistry()))
	}
	// Sealed credentials are opened before anything else: a job that
	// cannot have them fails at once with the reason (no retry can help),
	// and is never pulled anonymously instead.
	jobAuth, err := h.jobCredentials(job)
	if err != nil {
		return queue.Permanent(err)
	}
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	claimed := false
	if h.scanned != nil {
		d, _, err := h.claim(ctx, job, seq, h.cfg.ScanTimeout+5*time.Minute)
		switch {
		case errors.Is(err, errClaimRace):
			return queue.RetryAfter(err, time.Second)
		case err != nil:
			// The bucket is unreachable: scan (a second scan costs time; a
			// skipped one would lose a report).
			log.Warn().Err(err).Msg("cannot read or claim the scanned record; scanning")
		case d == decideDone:
			log.Info().Str("digest", job.GetDigest()).Msg("already scanned; duplicate job acknowledged")
			return nil
		case d == decideTagsAdded:
			log.Info().Str("digest", job.GetDigest()).Strs("tags", job.GetTags()).Msg("already scanned; new tags recorded")
			return nil
		case d == decideMerged:
			log.Info().Str("digest", job.GetDigest()).Strs("tags", job.GetTags()).Msg("being scanned by another job; tags handed to it")
			return nil
		default:
			claimed = true
		}
	}
	start := time.Now()
	reports, err := h.scanJob(ctx, job, jobAuth)
	status := "complete"
	if err != nil {
		status = "error"
	}
	h.scans.WithLabelValues(status).Observe(time.Since(start).Seconds())
	if err == nil {
		for _, r := range reports {
			if err = h.publish(ctx, job, r); err != nil {
				break
			}
		}
	}
	if err != nil {
		if claimed {
			h.release(context.WithoutCancel(ctx), job, seq)
		}
		return err
	}
	if claimed {
		if err := h.complete(ctx, job); err != nil {
			// The reports are out; a later duplicate is merely scanned again.
			log.Warn().Err(err).Msg("cannot record the scan; a duplicate job would scan again")
		}
	}
	log.Info().Int("reports", len(reports)).Dur("took", time.Since(start)).Msg("scan complete")
	return nil
}

// jobCredentials opens the job's sealed credentials (nil, nil when it
// carries none). Errors name what went wrong, never the value.
func (h *Handler) jobCredentials(job *customsv1.ScanJob) (authn.Authenticator, error) {
	if len(job.GetSealedAuthorization()) == 0 {
		return nil, nil
	}
	if h.cfg.JobKey == nil {
		return nil, errors.New("the job carries sealed registry credentials and this scanner has no CUSTOMS_JOB_KEY to open them")
	}
	value, err := h.cfg.JobKey.Open(job, time.Now())
	if err != nil {
		return nil, err
	}
	auth, err := regauth.ParseAuthorization(value)
	if err != nil {
		return nil, fmt.Errorf("sealed registry credentials: %w", err)
	}
	return auth, nil
}

func (h *Handler) scanJob(ctx context.Context, job *customsv1.ScanJob, jobAuth authn.Authenticator) (_ []*report.Report, err error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ScanTimeout)
	defer cancel()
	pullHost, insecure := job.GetRegistry(), job.GetInsecure()
	if to, ok := h.cfg.PullFrom[egress.NormalizeHost(pullHost)]; ok {
		// Pulled from the upstream of the registry the job names (the
		// gate's): the artifact still names the job's registry.
		pullHost, insecure = to, h.allowed.Insecure(to)
	}
	var nameOpts []name.Option
	if insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	ref, err := name.NewDigest(pullHost+"/"+job.GetRepository()+"@"+job.GetDigest(), nameOpts...)
	if err != nil {
		return nil, queue.Permanent(fmt.Errorf("invalid image reference: %w", err))
	}
	rt, err := h.egress.For(pullHost)
	if err != nil {
		return nil, queue.Permanent(err)
	}
	// A registry that answered 429/503 with Retry-After is asked again no
	// sooner than it said (bounded), instead of at the backoff's pace.
	defer func() {
		if err != nil && !queue.IsPermanent(err) {
			if d := egress.RetryAfter(rt); d > 0 {
				err = queue.RetryAfter(err, d)
			}
		}
	}()
	// The egress transport comes last: it replaces any other.
	opts := append(append([]remote.Option{remote.WithContext(ctx)}, h.remote...), remote.WithTransport(rt))
	kc := h.cfg.Keychain
	if kc != nil && pullHost != job.GetRegistry() {
		kc = asNamed{kc: kc, target: ref.RegistryStr(), name: job.GetRegistry()}
	}
	if jobAuth != nil {
		// The job's own credentials go to the host it is pulled from and
		// to no other (pkg/egress keeps them off redirects and realms).
		kc = jobKeychain{host: ref.RegistryStr(), auth: jobAuth, next: kc}
	}
	if kc != nil {
		opts = append(opts, remote.WithAuthFromKeychain(kc))
	}

	// HEAD first: refuse a huge manifest before reading it.
	if head, err := remote.Head(ref, opts...); err == nil {
		if head.Size > h.cfg.MaxManifestBytes {
			return nil, queue.Permanent(fmt.Errorf("%w: manifest %s is %d bytes, more than the limit of %d",
				scan.ErrLimitExceeded, job.GetDigest(), head.Size, h.cfg.MaxManifestBytes))
		}
	} else if err := classify(err); queue.IsPermanent(err) {
		return nil, err
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, classify(fmt.Errorf("get manifest %s: %w", ref, err))
	}
	if desc.Size > h.cfg.MaxManifestBytes || int64(len(desc.Manifest)) > h.cfg.MaxManifestBytes {
		return nil, queue.Permanent(fmt.Errorf("%w: manifest %s is larger than %d bytes",
			scan.ErrLimitExceeded, job.GetDigest(), h.cfg.MaxManifestBytes))
	}
	art := report.Artifact{
		Registry:   job.GetRegistry(),
		Repository: job.GetRepository(),
		Digest:     job.GetDigest(),
		Tags:       append([]string{}, job.GetTags()...),
		MediaType:  string(desc.MediaType),
	}
	iopts := h.cfg.Inspect
	if get := iopts.VulnDB; get != nil {
		// One database for the whole job: an index's platforms are all
		// matched against the same version even if a swap happens mid-job.
		db := get()
		iopts.VulnDB = func() *vulndb.DB { return db }
	}
	iopts.MaxManifestBytes = h.cfg.MaxManifestBytes
	// An index's platforms go out as each finishes: a platform failing
	// later (or the job being retried) cannot hold back finished ones.
	iopts.OnReport = func(ctx context.Context, r *report.Report) error { return h.publish(ctx, job, r) }
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, classify(err)
		}
		idx = h.allowed.Index(idx, ref.Context(), opts...)
		reports, err := inspect.Index(ctx, art, idx, iopts)
		if err != nil {
			return nil, classify(err)
		}
		return reports[len(reports)-1:], nil // the platforms are out already
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, classify(err)
		}
		img = h.allowed.Image(img, ref.Context(), opts...)
		r, err := inspect.Image(ctx, art, img, iopts)
		if err != nil {
			return nil, classify(err)
		}
		return []*report.Report{r}, nil
	default:
		return nil, queue.Permanent(fmt.Errorf("%w: media type %q is not a container image", inspect.ErrUnsupported, desc.MediaType))
	}
}

// asNamed gives a redirected pull (Config.PullFrom) the credentials of
// the registry the job names, and the target's own when it has none: the
// gate and the upstream it fronts take the same credentials, and the
// operator chose to send them there by naming the pair.
type asNamed struct {
	kc           authn.Keychain
	target, name string
}

func (k asNamed) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

func (k asNamed) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() != k.target {
		return authn.Resolve(ctx, k.kc, r)
	}
	auth, err := authn.Resolve(ctx, k.kc, registryName(k.name))
	if err != nil || auth != authn.Anonymous {
		return auth, err
	}
	return authn.Resolve(ctx, k.kc, r)
}

// jobKeychain hands a job's own credentials to exactly its registry host
// and leaves every other host to next (nil: anonymous).
type jobKeychain struct {
	host string
	auth authn.Authenticator
	next authn.Keychain
}

func (k jobKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

func (k jobKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() == k.host {
		return k.auth, nil
	}
	if k.next == nil {
		return authn.Anonymous, nil
	}
	return authn.Resolve(ctx, k.next, r)
}

// registryName is a bare registry host as an authn.Resource.
type registryName string

func (n registryName) String() string      { return string(n) }
func (n registryName) RegistryStr() string { return string(n) }

// classify is the scanner's error table: the image's fault, a registry
// answer that cannot change, or an egress refusal (a realm, redirect or
// foreign layer outside the policy) → permanent; anything else (5xx, 429,
// timeouts, connection refused, auth that may be fixed) → retry. The
// result's message is sanitised: it becomes the report's error and log
// lines, and must not carry a remote response body.
func classify(err error) error {
	if err == nil {
		return nil
	}
	err = egress.Sanitize(err)
	if queue.IsPermanent(err) {
		return err
	}
	if inspect.Rejected(err) || egress.Refused(err) {
		return queue.Permanent(err)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusNotFound:
			return queue.Permanent(err)
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return err
		case te.StatusCode == http.StatusRequestTimeout || te.StatusCode == http.StatusTooManyRequests:
			return err
		case te.StatusCode >= 400 && te.StatusCode < 500:
			return queue.Permanent(err)
		}
	}
	return err
}

// maxFindingsPerRule bounds the findings of one rule in a report: a
// hostile image can plant any number of fake tokens, and the report (and
// with it the verdict) must still reach results.
const maxFindingsPerRule = 100

// publishTimeout bounds one report publish (a large report's object,
// then the event). Platform reports are published inside the scan's
// context, whose deadline is the scan timeout (15 min by default): an
// acknowledgement lost with a stream leader would hold the slot that
// long. Bounded, the publish fails and the job is retried; the event's
// message id drops the copy if the lost one was stored after all.
const publishTimeout = 10 * time.Second

func (h *Handler) publish(ctx context.Context, job *customsv1.ScanJob, r *report.Report) error {
	var requested time.Time // zero: the job did not say (an older ingest)
	if job.GetRequestedAt() != nil {
		requested = job.GetRequestedAt().AsTime()
		r.RequestedAt = &requested
	}
	r.CapFindings(maxFindingsPerRule)
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	return h.publisher.Publish(ctx, job.GetJobId(), requested, r)
}

// GiveUp records a job Customs stops retrying: a DeadLetter on the DLQ
// stream and a failed report, so the user sees why there is no scan.
func (h *Handler) GiveUp(ctx context.Context, msg jetstream.Msg, out queue.Outcome) error {
	var delivered, seq uint64
	if md, err := msg.Metadata(); err == nil {
		delivered, seq = md.NumDelivered, md.Sequence.Stream
	}
	return h.deadLetter(ctx, msg.Data(), seq, delivered, out.Reason, inspect.Rejected(out.Err))
}

// maxDeliveriesAdvisory is the server's io.nats.jetstream.advisory.v1.max_deliver.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// HandleAdvisory dead-letters a job whose every delivery ended without an
// answer (the worker crashed or hung each time): JetStream stops
// delivering it but keeps it in the work queue, where nobody would look.
func (h *Handler) HandleAdvisory(ctx context.Context, msg jetstream.Msg) error {
	var adv maxDeliveriesAdvisory
	if err := json.Unmarshal(msg.Data(), &adv); err != nil {
		return queue.Permanent(fmt.Errorf("decode advisory: %w", err))
	}
	if adv.Stream != queue.JobsStream {
		return nil
	}
	stream, err := h.js.Stream(ctx, queue.JobsStream)
	if err != nil {
		return fmt.Errorf("jobs stream: %w", err)
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // already terminated and dead-lettered by its worker
	}
	if err != nil {
		return fmt.Errorf("get job %d: %w", adv.StreamSeq, err)
	}
	reason := fmt.Sprintf("no worker finished this job in %d deliveries (crashed or timed out)", adv.Deliveries)
	if err := h.deadLetter(ctx, raw.Data, adv.StreamSeq, adv.Deliveries, reason, false); err != nil {
		return err
	}
	if err := stream.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("delete dead job %d: %w", adv.StreamSeq, err)
	}
	return nil
}

func (h *Handler) deadLetter(ctx context.Context, data []byte, seq, delivered uint64, reason string, rejected bool) error {
	job, jerr := wire.DecodeJob(data)
	if jerr != nil {
		job = &customsv1.ScanJob{JobId: fmt.Sprintf("undecodable-seq-%d", seq)}
	}
	// Dead letters are kept 30 days and read by people: they never carry
	// credentials, not even sealed ones (which expire within the hour).
	job.SealedAuthorization = nil
	dl := &customsv1.DeadLetter{Job: job, Reason: reason, Deliveries: delivered, FailedAt: timestamppb.Now()}
	b, err := proto.Marshal(dl)
	if err != nil {
		return fmt.Errorf("encode dead letter: %w", err)
	}
	// The same id from the worker and from the advisory path: one entry.
	if _, err := h.js.Publish(ctx, queue.DLQSubjectPrefix+"scan", b,
		jetstream.WithMsgID(fmt.Sprintf("dlq:%s:%d", queue.JobsStream, seq))); err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	h.log.Warn().Str("job_id", job.GetJobId()).Str("reason", reason).Uint64("deliveries", delivered).Msg("scan job dead-lettered")
	if jerr != nil {
		return nil
	}
	started := time.Now()
	if job.GetRequestedAt() != nil {
		started = job.GetRequestedAt().AsTime()
	}
	art := report.Artifact{
		Registry: job.GetRegistry(), Repository: job.GetRepository(), Digest: job.GetDigest(),
		Tags: append([]string{}, job.GetTags()...), MediaType: job.GetMediaType(),
	}
	return h.publish(ctx, job, inspect.Failed(art, started, reason, rejected))
}
