// Package clamd is a small client for ClamAV's daemon, clamd: PING,
// VERSION and INSTREAM over TCP or a unix socket.
//
// Every request uses its own connection (clamd closes a connection after
// answering a command that is not part of an IDSESSION, and connecting is
// cheap next to scanning), so a Client is safe for concurrent use and
// holds no sockets between requests. Deadlines and cancellation come from
// the context of each call.
//
// INSTREAM sends the data in chunks, each prefixed with its length as a
// 4-byte big-endian integer, and a zero-length chunk to end the stream.
// clamd refuses streams longer than its StreamMaxLength (25 MiB by
// default) with "INSTREAM size limit exceeded. ERROR"; the client never
// sends data larger than MaxStreamBytes (set it to clamd's
// StreamMaxLength) and reports such data as skipped, not as an error.
package clamd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultMaxStreamBytes is clamd's default StreamMaxLength (25 MiB).
const DefaultMaxStreamBytes = 25 << 20

// DefaultChunkSize is the INSTREAM chunk size. clamd accepts chunks of
// any size up to StreamMaxLength; 64 KiB keeps the copy buffer small.
const DefaultChunkSize = 64 << 10

// maxReply bounds what is read of clamd's answer to one command.
const maxReply = 64 << 10

// ErrUnavailable is wrapped by every error that means clamd could not be
// reached or stopped talking (dial failure, reset or closed connection,
// I/O timeout): the file was not scanned through no fault of its own, so
// the scan should be retried rather than reported clean.
var ErrUnavailable = errors.New("clamd unavailable")

// ErrClamd is wrapped by errors clamd itself answered ("... ERROR"), other
// than the stream size limit (which is a skip, see Result.Skipped).
var ErrClamd = errors.New("clamd error")

// Result is clamd's verdict on one stream.
type Result struct {
	// Signatures are the names of the signatures that matched ("Eicar-
	// Test-Signature"); more than one only when clamd runs with
	// AllMatchScan. Empty when the stream is clean or was skipped.
	Signatures []string
	// Skipped is true when the data was not scanned because it is larger
	// than MaxStreamBytes (nothing was sent) or clamd refused it as larger
	// than its StreamMaxLength. Reason says which.
	Skipped bool
	Reason  string
}

// Found reports whether at least one signature matched.
func (r Result) Found() bool { return len(r.Signatures) > 0 }

// Stats counts what a Client did since it was created.
type Stats struct {
	// Scanned streams clamd answered OK or FOUND.
	Scanned int64
	// Found streams with at least one signature.
	Found int64
	// Skipped streams: larger than MaxStreamBytes, or refused by clamd's
	// StreamMaxLength.
	Skipped int64
	// Errors: requests that failed (unreachable, protocol or clamd errors).
	Errors int64
}

// Option configures a Client.
type Option func(*Client)

// WithMaxStreamBytes sets the largest stream sent to clamd; larger data is
// skipped. Set it to clamd's StreamMaxLength. Default 25 MiB (clamd's
// default); n <= 0 keeps the default.
func WithMaxStreamBytes(n int64) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxStream = n
		}
	}
}

// WithChunkSize sets the INSTREAM chunk size (default 64 KiB).
func WithChunkSize(n int) Option {
	return func(c *Client) {
		if n > 0 {
			c.chunk = n
		}
	}
}

// Client talks to one clamd. It is safe for concurrent use.
type Client struct {
	network, address string
	maxStream        int64
	chunk            int
	dialer           net.Dialer

	scanned, found, skipped, errs atomic.Int64
}

// New returns a client for addr without contacting clamd. addr is
// "tcp://host:port", "unix:///path/to/clamd.ctl", a bare "host:port" or
// a bare absolute socket path.
func New(addr string, opts ...Option) (*Client, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	c := &Client{network: network, address: address, maxStream: DefaultMaxStreamBytes, chunk: DefaultChunkSize}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	return c, nil
}

// Dial returns a client for addr (see New) after checking that clamd
// answers PING.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	c, err := New(addr, opts...)
	if err != nil {
		return nil, err
	}
	if err := c.Ping(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseAddr splits a clamd address into a network ("tcp" or "unix") and
// an address for net.Dial.
func ParseAddr(addr string) (network, address string, err error) {
	switch {
	case addr == "":
		return "", "", errors.New("clamd: empty address")
	case strings.HasPrefix(addr, "tcp://"):
		network, address = "tcp", strings.TrimSuffix(strings.TrimPrefix(addr, "tcp://"), "/")
	case strings.HasPrefix(addr, "unix://"):
		network, address = "unix", strings.TrimPrefix(addr, "unix://")
	case strings.HasPrefix(addr, "/"):
		network, address = "unix", addr
	case strings.Contains(addr, "://"):
		return "", "", fmt.Errorf("clamd: address %q: unsupported scheme (want tcp:// or unix://)", addr)
	default:
		network, address = "tcp", addr
	}
	if network == "tcp" {
		if _, _, err := net.SplitHostPort(address); err != nil {
			return "", "", fmt.Errorf("clamd: address %q: %v", addr, err)
		}
	}
	if address == "" {
		return "", "", fmt.Errorf("clamd: address %q: empty", addr)
	}
	return network, address, nil
}

// Addr returns the address the client dials, as "network://address".
func (c *Client) Addr() string { return c.network + "://" + c.address }

// MaxStreamBytes returns the largest stream the client sends.
func (c *Client) MaxStreamBytes() int64 { return c.maxStream }

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{Scanned: c.scanned.Load(), Found: c.found.Load(), Skipped: c.skipped.Load(), Errors: c.errs.Load()}
}

// Ping checks that clamd answers PONG.
func (c *Client) Ping(ctx context.Context) error {
	reply, err := c.simple(ctx, "PING")
	if err != nil {
		return err
	}
	if len(reply) != 1 || reply[0] != "PONG" {
		return fmt.Errorf("clamd %s: PING: unexpected reply %q: %w", c.Addr(), strings.Join(reply, "|"), ErrClamd)
	}
	return nil
}

// Version returns clamd's version string, e.g. "ClamAV 1.4.6/27000/Mon
// Jan  6 09:00:00 2025" (engine/database version/database date).
func (c *Client) Version(ctx context.Context) (string, error) {
	reply, err := c.simple(ctx, "VERSION")
	if err != nil {
		return "", err
	}
	if len(reply) != 1 || strings.HasSuffix(reply[0], " ERROR") {
		return "", fmt.Errorf("clamd %s: VERSION: unexpected reply %q: %w", c.Addr(), strings.Join(reply, "|"), ErrClamd)
	}
	return reply[0], nil
}

func (c *Client) simple(ctx context.Context, cmd string) ([]string, error) {
	conn, stop, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	if _, err := conn.Write([]byte("z" + cmd + "\x00")); err != nil {
		return nil, c.ioErr(ctx, cmd, err)
	}
	reply, err := readReplies(conn)
	if err != nil {
		return nil, c.ioErr(ctx, cmd, err)
	}
	return reply, nil
}

// InStream sends size bytes read from r to clamd with zINSTREAM and
// returns its verdict. Data larger than MaxStreamBytes is not sent: the
// result is Skipped (no error). A size < 0 means unknown: the data is
// streamed and clamd's StreamMaxLength decides. r must yield size bytes;
// fewer is an error (nothing is reported clean on a short read).
//
// Errors wrap ErrUnavailable (clamd unreachable, connection lost,
// timeout), ErrClamd (clamd answered ERROR) or the context's error.
func (c *Client) InStream(ctx context.Context, r io.Reader, size int64) (Result, error) {
	if size > c.maxStream {
		c.skipped.Add(1)
		return Result{Skipped: true, Reason: fmt.Sprintf("%d bytes exceed the stream limit of %d bytes", size, c.maxStream)}, nil
	}
	res, err := c.inStream(ctx, r, size)
	switch {
	case err != nil:
		c.errs.Add(1)
	case res.Skipped:
		c.skipped.Add(1)
	default:
		c.scanned.Add(1)
		if res.Found() {
			c.found.Add(1)
		}
	}
	return res, err
}

func (c *Client) inStream(ctx context.Context, r io.Reader, size int64) (Result, error) {
	conn, stop, err := c.connect(ctx)
	if err != nil {
		return Result{}, err
	}
	defer stop()

	werr := c.send(conn, r, size)
	var srcErr *sourceError
	if errors.As(werr, &srcErr) {
		return Result{}, fmt.Errorf("clamd: INSTREAM: reading the data: %w", srcErr.err)
	}
	// When clamd refuses the stream (size limit) it answers and closes
	// the connection while we may still be writing: read its answer even
	// after a write error, and only report the write error when there is
	// no answer.
	replies, rerr := readReplies(conn)
	if len(replies) == 0 {
		if werr != nil {
			return Result{}, c.ioErr(ctx, "INSTREAM", werr)
		}
		if rerr == nil {
			rerr = io.ErrUnexpectedEOF
		}
		return Result{}, c.ioErr(ctx, "INSTREAM", rerr)
	}
	return c.parseStream(replies)
}

// send writes the chunks and the terminator.
func (c *Client) send(conn net.Conn, r io.Reader, size int64) error {
	w := bufio.NewWriterSize(conn, c.chunk+4)
	if _, err := w.WriteString("zINSTREAM\x00"); err != nil {
		return err
	}
	if size >= 0 {
		r = io.LimitReader(r, size)
	}
	buf := make([]byte, 4+c.chunk)
	var sent int64
	for {
		n, err := io.ReadFull(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf[:4], uint32(n))
			if _, werr := w.Write(buf[:4+n]); werr != nil {
				return werr
			}
			sent += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return &sourceError{err}
		}
	}
	if size >= 0 && sent != size {
		return &sourceError{fmt.Errorf("got %d of %d bytes: %w", sent, size, io.ErrUnexpectedEOF)}
	}
	binary.BigEndian.PutUint32(buf[:4], 0)
	if _, err := w.Write(buf[:4]); err != nil {
		return err
	}
	return w.Flush()
}

type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }

func (c *Client) parseStream(replies []string) (Result, error) {
	var res Result
	for _, line := range replies {
		switch {
		case line == "stream: OK":
		case strings.HasPrefix(line, "stream: ") && strings.HasSuffix(line, " FOUND"):
			sig := strings.TrimSuffix(strings.TrimPrefix(line, "stream: "), " FOUND")
			res.Signatures = append(res.Signatures, sig)
		case strings.HasPrefix(line, "INSTREAM size limit exceeded"):
			return Result{Skipped: true, Reason: "clamd: " + line}, nil
		case strings.HasSuffix(line, " ERROR"):
			return Result{}, fmt.Errorf("clamd %s: INSTREAM: %q: %w", c.Addr(), line, ErrClamd)
		default:
			return Result{}, fmt.Errorf("clamd %s: INSTREAM: unexpected reply %q: %w", c.Addr(), line, ErrClamd)
		}
	}
	return res, nil
}

// connect dials clamd and ties the connection to ctx: its deadline
// becomes the connection's, and cancellation closes it. stop must be
// called when done.
func (c *Client) connect(ctx context.Context) (net.Conn, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	conn, err := c.dialer.DialContext(ctx, c.network, c.address)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, nil, cerr
		}
		return nil, nil, fmt.Errorf("clamd %s: %w: %w", c.Addr(), ErrUnavailable, err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	unwatch := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return conn, func() { unwatch(); _ = conn.Close() }, nil
}

func (c *Client) ioErr(ctx context.Context, cmd string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("clamd %s: %s: %w", c.Addr(), cmd, cerr)
	}
	// The connection's deadline is ctx's: its timeout may fire just
	// before ctx reports itself done.
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return fmt.Errorf("clamd %s: %s: %w", c.Addr(), cmd, context.DeadlineExceeded)
	}
	return fmt.Errorf("clamd %s: %s: %w: %w", c.Addr(), cmd, ErrUnavailable, err)
}

// readReplies reads NUL-terminated replies until clamd closes the
// connection. A reply cut short by EOF still counts.
func readReplies(conn net.Conn) ([]string, error) {
	b, err := io.ReadAll(io.LimitReader(conn, maxReply))
	var out []string
	for _, part := range bytes.Split(b, []byte{0}) {
		if s := strings.TrimSpace(string(part)); s != "" {
			out = append(out, s)
		}
	}
	return out, err
}
