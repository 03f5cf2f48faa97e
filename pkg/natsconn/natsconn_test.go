package natsconn_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/natsconn"
)

func startAuthServer(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, Username: "u", Password: "secret-pw",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// Credentials in the URL are used, and never printed; wrong ones fail
// fast instead of retrying forever.
func TestConnectWithURLCredentials(t *testing.T) {
	plain := startAuthServer(t)
	withCreds := strings.Replace(plain, "nats://", "nats://u:secret-pw@", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc, _, err := natsconn.Connect(ctx, natsconn.Config{URL: withCreds}, "t", zerolog.Nop())
	if err != nil {
		t.Fatalf("connect with credentials: %v", err)
	}
	nc.Close()

	for _, u := range []string{plain, strings.Replace(plain, "nats://", "nats://u:wrong-pw@", 1)} {
		start := time.Now()
		_, _, err := natsconn.Connect(ctx, natsconn.Config{URL: u}, "t", zerolog.Nop())
		if err == nil {
			t.Fatalf("connect to %s without the right credentials succeeded", natsconn.Redact(u))
		}
		if ctx.Err() != nil || time.Since(start) > 10*time.Second {
			t.Errorf("%s: gave up only after %s (%v)", natsconn.Redact(u), time.Since(start), err)
		}
		if strings.Contains(err.Error(), "wrong-pw") {
			t.Errorf("error shows the password: %v", err)
		}
		if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("error does not say why: %v", err)
		}
	}
}

func TestRedact(t *testing.T) {
	got := natsconn.Redact("nats://u:pw@a:4222,nats://b:4222, nats://x:y@c:1")
	if strings.Contains(got, "pw") || strings.Contains(got, ":y@") || !strings.Contains(got, "nats://b:4222") || !strings.Contains(got, "u:") {
		t.Errorf("Redact = %q", got)
	}
}

func TestServerVersionBelowMinimumIsRefused(t *testing.T) {
	for v, ok := range map[string]bool{
		"2.9.10": false, // Debian 12's package: ignores TermWithReason
		"2.10.3": false,
		"2.10.4": true,
		"2.15.2": true,
		"":       false,
	} {
		err := natsconn.CheckServerVersion(v)
		if (err == nil) != ok {
			t.Errorf("CheckServerVersion(%q) = %v", v, err)
		}
		if err != nil && v != "" && !strings.Contains(err.Error(), natsconn.MinServerVersion) {
			t.Errorf("error for %q does not name the minimum: %v", v, err)
		}
	}
}
