package harbor

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
)

// The defaults live in the env tags (what cmd/harbor-adapter and customs
// up parse) and in withDefaults (what Go callers that leave a field zero
// get): both give the same configuration.
func TestDefaultsAgree(t *testing.T) { svcmaintest.CheckDefaults(t, Config.withDefaults) }

const key = "0123456789abcdef0123456789abcdef"

// Nothing open by default, no job without a usable key, a Refresh-After
// Harbor can read.
func TestValidate(t *testing.T) {
	type c = svcmaintest.Case[Config]
	svcmaintest.CheckValidate(t,
		c{Config: Config{Token: "t", JobKey: key}},
		c{Config: Config{Auth: "off", JobKey: key}},
		c{Config: Config{Token: "t", JobKey: key, RefreshAfter: 127 * time.Second}},
		c{Config: Config{JobKey: key}, Want: "CUSTOMS_HARBOR_TOKEN is not set"},
		c{Config: Config{Token: "t", Auth: "off", JobKey: key}, Want: "both set"},
		c{Config: Config{Token: "t", Auth: "maybe", JobKey: key}, Want: "CUSTOMS_HARBOR_AUTH"},
		c{Config: Config{Token: "t"}, Want: "CUSTOMS_JOB_KEY is not set"},
		c{Config: Config{Token: "t", JobKey: "short"}, Want: "CUSTOMS_JOB_KEY"},
		c{Config: Config{Token: "t", JobKey: key, RefreshAfter: 500 * time.Millisecond}, Want: "CUSTOMS_HARBOR_REFRESH_AFTER"},
		c{Config: Config{Token: "t", JobKey: key, RefreshAfter: 128 * time.Second}, Want: "CUSTOMS_HARBOR_REFRESH_AFTER"},
	)
}

type nopJS struct{ jetstream.JetStream }

type nopBucket struct{ store.Bucket }

func (nopBucket) Ping(context.Context) error { return nil }

// With authentication off, the warning repeats while the adapter serves
// (every minute in production; faster here).
func TestAuthOffIsWarnedAboutRepeatedly(t *testing.T) {
	var logs svcmaintest.LogBuffer
	svc, err := New(Config{Auth: "off", JobKey: key}, Deps{JetStream: nopJS{}, Bucket: nopBucket{}, Log: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	svc.authOffEvery = 20 * time.Millisecond
	// Binding the buckets waits for a JetStream that never answers;
	// only the warning is looked at.
	svc.deps.JetStream = blockingJS{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, ln) }()
	time.Sleep(150 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "scanner API authentication is off"); n < 3 {
		t.Errorf("auth off: %d warnings in 150 ms at one per 20 ms, want several:\n%s", n, logs.String())
	}
}

// blockingJS fails every bucket call until its context ends.
type blockingJS struct{ jetstream.JetStream }

func (blockingJS) CreateOrUpdateKeyValue(ctx context.Context, _ jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
