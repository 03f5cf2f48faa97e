package ingest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
)

type publisher struct{ jetstream.Publisher }

// With authentication off, the warning repeats while ingest serves (every
// minute in production; faster here).
func TestAuthOffIsWarnedAboutRepeatedly(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		warn bool
	}{{Config{WebhookAuth: "off"}, true}, {Config{WebhookToken: "t"}, false}} {
		var logs svcmaintest.LogBuffer
		svc, err := New(tc.cfg, Deps{JetStream: publisher{}, Log: zerolog.New(&logs)})
		if err != nil {
			t.Fatal(err)
		}
		svc.authOffEvery = 20 * time.Millisecond
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
		n := strings.Count(logs.String(), "webhook authentication is off")
		if tc.warn && n < 3 {
			t.Errorf("auth off: %d warnings in 150 ms at one per 20 ms, want several:\n%s", n, logs.String())
		}
		if !tc.warn && n != 0 {
			t.Errorf("with a token: %d warnings", n)
		}
		if tc.warn && !strings.Contains(logs.String(), `"level":"warn"`) {
			t.Errorf("not logged at warn level:\n%s", logs.String())
		}
	}
}
