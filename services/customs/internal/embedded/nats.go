// Package embedded runs the infrastructure `customs up` needs inside the
// process: NATS with JetStream, an S3-compatible server and, on request,
// an OCI registry. Services reach them through their production clients
// (TCP, HTTP), never through shortcuts.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is an in-process nats-server with JetStream.
type NATS struct {
	srv            *server.Server
	user, password string
}

// StartNATS starts nats-server with JetStream storing under dir, listening on
// addr (host:port; port 0 picks a free one) for `nats` CLI users. Only
// clients presenting user and password may connect.
func StartNATS(addr, dir, user, password string) (*NATS, error) {
	if user == "" || password == "" {
		return nil, errors.New("nats: a user and password are required")
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "customs-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
		Username:   user,
		Password:   password,
	})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("nats server on %s did not become ready", addr)
	}
	return &NATS{srv: srv, user: user, password: password}, nil
}

// URL is the client URL without credentials (for logs).
func (n *NATS) URL() string { return n.srv.ClientURL() }

// AuthURL is the client URL with the credentials in it
// (nats://user:password@host:port), which nats.go and the nats CLI accept.
func (n *NATS) AuthURL() string {
	u, err := url.Parse(n.srv.ClientURL())
	if err != nil {
		return n.srv.ClientURL()
	}
	u.User = url.UserPassword(n.user, n.password)
	return u.String()
}

// Close stops the server and waits for it.
func (n *NATS) Close() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}
