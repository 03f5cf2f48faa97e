package results

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/rs/zerolog"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/quarantine/distribution"
	ecrenf "github.com/customs-scan/customs/pkg/quarantine/ecr"
	"github.com/customs-scan/customs/pkg/quarantine/harbor"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/regauth"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// quarantineWorker binds the records bucket and the consumer of
// ReportStored events the controller acts on.
func (s *Service) quarantineWorker(ctx context.Context) (*queue.Worker, error) {
	kv, err := queue.Ensure(ctx, "kv "+quarantine.Bucket, s.deps.Log, func(ctx context.Context) (jetstream.KeyValue, error) {
		return quarantine.EnsureBucket(ctx, s.deps.JetStream, s.deps.Replicas)
	})
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	s.quarantine.KV = kv
	cons, err := queue.EnsureConsumer(ctx, s.deps.JetStream, queue.EventsStream, jetstream.ConsumerConfig{
		Durable:       queue.QuarantineConsumer,
		Description:   "quarantines images whose stored verdict is quarantine",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxAckPending: 64,
		FilterSubject: queue.ReportStoredSubject + ">",
	}, s.deps.Log)
	if err != nil {
		return nil, fmt.Errorf("results: create quarantine consumer: %w", err)
	}
	return &queue.Worker{
		Consumer: cons,
		Handler: func(ctx context.Context, msg jetstream.Msg) error {
			var ev customsv1.ReportStored
			if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
				return queue.Permanent(fmt.Errorf("decode report stored event: %w", err))
			}
			return s.quarantine.HandleStored(ctx, &ev)
		},
		Slots:   2,
		AckWait: s.cfg.AckWait,
		// A registry that refuses enforcement is asked again, for as long
		// as the event is kept; the record shows the failure meanwhile.
		Backoff: func(n uint64) time.Duration { return min(queue.Backoff(n), 5*time.Minute) },
		Log:     s.deps.Log.With().Str("consumer", queue.QuarantineConsumer).Logger(),
	}, nil
}

// enforcers builds and keeps one set of enforcers per registry host.
type enforcers struct {
	cfg  Config
	auth *regauth.File
	log  zerolog.Logger

	mu     sync.Mutex
	byHost map[string]resolved
}

type resolved struct {
	kind string
	list []quarantine.Enforcer
}

// newResolver says which enforcers act on an image's registry: the
// registry auth file names Harbor and ECR registries (with the
// credentials their APIs need), ECR host names are recognised, every other
// registry is a Distribution registry behind the gate. Entries are built
// at start, so a broken Harbor URL fails New rather than the first
// quarantine.
func newResolver(cfg Config, log zerolog.Logger) (quarantine.Resolver, error) {
	auth, err := regauth.Load(cfg.RegistryAuthFile)
	if err != nil {
		return nil, err
	}
	e := &enforcers{cfg: cfg, auth: auth, log: log, byHost: map[string]resolved{}}
	for _, h := range auth.Hosts() {
		if _, err := e.build(h); err != nil {
			return nil, fmt.Errorf("%s %s: %w", "CUSTOMS_REGISTRY_AUTH", h, err)
		}
	}
	return e.resolve, nil
}

func (e *enforcers) resolve(ref quarantine.Ref) (string, []quarantine.Enforcer) {
	r, err := e.build(ref.Registry)
	if err != nil {
		// Recorded as the enforcement's failure, retried with the event.
		return r.kind, []quarantine.Enforcer{failing{name: r.kind, err: err}}
	}
	return r.kind, r.list
}

func (e *enforcers) build(host string) (resolved, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.byHost[host]; ok {
		return r, nil
	}
	entry, ok := e.auth.Entry(host)
	kind := quarantine.KindDistribution
	switch {
	case ok:
		kind = entry.Kind()
	case quarantine.IsECRHost(host):
		kind = quarantine.KindECR
	}
	r := resolved{kind: kind}
	switch kind {
	case quarantine.KindHarbor:
		h, err := harbor.New(harbor.Config{URL: entry.Harbor.URL, Username: entry.Harbor.Username, Password: entry.Harbor.Password.Reveal()})
		if err != nil {
			return r, err
		}
		r.list = append(r.list, h)
	case quarantine.KindECR:
		settings := entry.ECR
		if settings.Region == "" {
			_, region, err := ecrenf.ParseHost(host)
			if err != nil {
				return r, err
			}
			settings.Region = region
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client, err := regauth.NewECRClient(ctx, settings)
		if err != nil {
			return r, err
		}
		en, err := ecrenf.New(client, ecrenf.Config{Action: e.cfg.QuarantineECR, Region: settings.Region})
		if err != nil {
			return r, err
		}
		r.list = append(r.list, en)
	default:
		g, err := distribution.NewGate(distribution.GateConfig{})
		if err != nil {
			return r, err
		}
		r.list = append(r.list, g)
		if e.cfg.QuarantineDistribution == "move" {
			opts := []remote.Option{remote.WithAuthFromKeychain(e.auth.Keychain(regauth.WithFallback(authn.DefaultKeychain)))}
			var nameOpts []name.Option
			if slices.Contains(e.cfg.InsecureRegistries, host) {
				nameOpts = append(nameOpts, name.Insecure)
			}
			m, err := distribution.NewMove(distribution.MoveConfig{Options: opts, NameOptions: nameOpts})
			if err != nil {
				return r, err
			}
			r.list = append(r.list, m)
		}
	}
	e.byHost[host] = r
	return r, nil
}

// failing stands in for enforcers that could not be built: every action
// fails with why, so the record shows it.
type failing struct {
	name string
	err  error
}

func (f failing) Name() string { return f.name }
func (f failing) Quarantine(context.Context, quarantine.Ref, string) (string, error) {
	return "", f.err
}
func (f failing) Release(context.Context, quarantine.Ref) (string, error) { return "", f.err }
func (f failing) Status(context.Context, quarantine.Ref) (quarantine.Status, error) {
	return quarantine.Status{}, f.err
}
