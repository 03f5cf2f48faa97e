package results

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/queue"
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

// newResolver says which enforcers act on an image's registry.
func newResolver(cfg Config) (quarantine.Resolver, error) {
	return func(ref quarantine.Ref) (string, []quarantine.Enforcer) {
		if quarantine.IsECRHost(ref.Registry) {
			return quarantine.KindECR, nil
		}
		return quarantine.KindDistribution, nil
	}, nil
}
