// Package queuetest runs a real nats-server with JetStream inside a test:
// the broker the queue package's streams, consumers and buckets live on.
package queuetest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is an in-process nats-server with JetStream and file storage in a
// temporary directory, on a loopback port that stays the same across Restart.
type Server struct {
	tb   testing.TB
	opts server.Options
	srv  *server.Server
}

// Start starts a server and shuts it down when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  tb.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	s.start()
	s.opts.Port = s.srv.Addr().(*net.TCPAddr).Port
	tb.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start() {
	s.tb.Helper()
	opts := s.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		s.tb.Fatalf("queuetest: new server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		s.tb.Fatalf("queuetest: server not ready")
	}
	s.srv = srv
}

// URL is the client URL.
func (s *Server) URL() string { return s.srv.ClientURL() }

// Shutdown stops the server (idempotent); Restart brings it back with its data.
func (s *Server) Shutdown() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// Restart starts the server again on the same port and store directory.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Shutdown()
	s.start()
}

// Connect returns a connection that reconnects forever and a JetStream
// context; both are closed when the test ends.
func (s *Server) Connect(tb testing.TB) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(s.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		tb.Fatalf("queuetest: connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("queuetest: jetstream: %v", err)
	}
	return nc, js
}

// WaitMsgs waits (up to 30 s) until stream holds at least n messages and
// returns them in order. Errors are retried: the server may be restarting.
func WaitMsgs(tb testing.TB, js jetstream.JetStream, stream string, n int) []jetstream.RawStreamMsg {
	tb.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := js.Stream(ctx, stream)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(ctx)
		}
		if err == nil && info.State.Msgs >= uint64(n) {
			var out []jetstream.RawStreamMsg
			for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
				if m, err := s.GetMsg(ctx, seq); err == nil {
					out = append(out, *m)
				}
			}
			return out
		}
		if time.Now().After(deadline) {
			if err != nil {
				tb.Fatalf("%s: %v", stream, err)
			}
			tb.Fatalf("%s has %d messages, want %d", stream, info.State.Msgs, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
