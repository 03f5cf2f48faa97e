package clamd_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/customs-scan/customs/pkg/clamd"
	"github.com/customs-scan/customs/pkg/clamd/clamdtest"
)

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct{ in, network, address string }{
		{"tcp://127.0.0.1:3310", "tcp", "127.0.0.1:3310"},
		{"tcp://clamd:3310/", "tcp", "clamd:3310"},
		{"clamd.svc:3310", "tcp", "clamd.svc:3310"},
		{"[::1]:3310", "tcp", "[::1]:3310"},
		{"unix:///run/clamav/clamd.ctl", "unix", "/run/clamav/clamd.ctl"},
		{"/run/clamav/clamd.ctl", "unix", "/run/clamav/clamd.ctl"},
	} {
		n, a, err := clamd.ParseAddr(tc.in)
		if err != nil || n != tc.network || a != tc.address {
			t.Errorf("ParseAddr(%q) = %q, %q, %v; want %q, %q", tc.in, n, a, err, tc.network, tc.address)
		}
	}
	for _, bad := range []string{"", "http://x:1", "clamd", "tcp://", "unix://"} {
		if _, _, err := clamd.ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q): no error", bad)
		}
	}
}

// fakeClamd is a protocol-level stand-in: it records what a client sent
// and answers what the test says. The real clamd is tested below.
type fakeClamd struct {
	l     net.Listener
	reply func(cmd string, stream []byte) string
	mu    sync.Mutex
	// chunks of the last INSTREAM, as framed by the client.
	chunks []int
	wg     sync.WaitGroup
}

func newFake(t *testing.T, reply func(cmd string, stream []byte) string) *fakeClamd {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeClamd{l: l, reply: reply}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() { l.Close(); f.wg.Wait() })
	return f
}

func (f *fakeClamd) addr() string { return "tcp://" + f.l.Addr().String() }

func (f *fakeClamd) serve() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			f.handle(c)
		}()
	}
}

func (f *fakeClamd) handle(c net.Conn) {
	var cmd []byte
	one := make([]byte, 1)
	for {
		if _, err := io.ReadFull(c, one); err != nil {
			return
		}
		if one[0] == 0 {
			break
		}
		cmd = append(cmd, one[0])
	}
	var stream []byte
	if string(cmd) == "zINSTREAM" {
		var chunks []int
		for {
			var n uint32
			if err := binary.Read(c, binary.BigEndian, &n); err != nil {
				return
			}
			if n == 0 {
				break
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			chunks = append(chunks, int(n))
			stream = append(stream, buf...)
		}
		f.mu.Lock()
		f.chunks = chunks
		f.mu.Unlock()
	}
	io.WriteString(c, f.reply(string(cmd), stream))
}

func TestInStreamProtocol(t *testing.T) {
	ctx := context.Background()
	f := newFake(t, func(cmd string, stream []byte) string {
		switch {
		case cmd == "zPING":
			return "PONG\x00"
		case cmd == "zVERSION":
			return "ClamAV 1.4.6/27470/Tue Nov 25 09:00:00 2026\x00"
		case bytes.Contains(stream, []byte("two")):
			return "stream: Sig.One FOUND\x00stream: Sig.Two FOUND\x00"
		case bytes.Contains(stream, []byte("evil")):
			return "stream: Win.Test.EICAR_HDB-1 FOUND\x00"
		case bytes.Contains(stream, []byte("oom")):
			return "Can't allocate memory ERROR\x00"
		case bytes.Contains(stream, []byte("big")):
			return "INSTREAM size limit exceeded. ERROR\x00"
		}
		return "stream: OK\x00"
	})
	c, err := clamd.Dial(ctx, f.addr(), clamd.WithChunkSize(4), clamd.WithMaxStreamBytes(64))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Version(ctx); err != nil || !strings.HasPrefix(v, "ClamAV 1.4.6/") {
		t.Fatalf("Version = %q, %v", v, err)
	}

	scan := func(s string) (clamd.Result, error) {
		return c.InStream(ctx, strings.NewReader(s), int64(len(s)))
	}
	res, err := scan("0123456789")
	if err != nil || res.Found() || res.Skipped {
		t.Fatalf("clean: %+v, %v", res, err)
	}
	f.mu.Lock()
	if got := f.chunks; len(got) != 3 || got[0] != 4 || got[1] != 4 || got[2] != 2 {
		t.Errorf("chunks = %v, want [4 4 2]", got)
	}
	f.mu.Unlock()

	if res, err = scan("an evil file"); err != nil || !res.Found() || res.Signatures[0] != "Win.Test.EICAR_HDB-1" {
		t.Fatalf("found: %+v, %v", res, err)
	}
	if res, err = scan("two sigs"); err != nil || len(res.Signatures) != 2 || res.Signatures[1] != "Sig.Two" {
		t.Fatalf("two: %+v, %v", res, err)
	}
	if res, err = scan("big but under our limit"); err != nil || !res.Skipped || !strings.Contains(res.Reason, "size limit") {
		t.Fatalf("clamd size limit: %+v, %v", res, err)
	}
	if _, err = scan("oom"); !errors.Is(err, clamd.ErrClamd) || errors.Is(err, clamd.ErrUnavailable) {
		t.Fatalf("ERROR reply: %v", err)
	}
	// Larger than MaxStreamBytes: not sent at all.
	f.mu.Lock()
	f.chunks = nil
	f.mu.Unlock()
	if res, err = scan(strings.Repeat("x", 65)); err != nil || !res.Skipped || res.Found() {
		t.Fatalf("over MaxStreamBytes: %+v, %v", res, err)
	}
	f.mu.Lock()
	if f.chunks != nil {
		t.Errorf("over MaxStreamBytes: %d chunks sent", len(f.chunks))
	}
	f.mu.Unlock()
	// A reader shorter than size is an error, never a clean result.
	if _, err = c.InStream(ctx, strings.NewReader("short"), 10); err == nil {
		t.Fatal("short reader: no error")
	}
	st := c.Stats()
	if st.Scanned != 3 || st.Found != 2 || st.Skipped != 2 || st.Errors != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := clamd.Dial(ctx, addr); !errors.Is(err, clamd.ErrUnavailable) {
		t.Fatalf("Dial: %v, want ErrUnavailable", err)
	}
	c, err := clamd.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.InStream(ctx, strings.NewReader("x"), 1); !errors.Is(err, clamd.ErrUnavailable) {
		t.Fatalf("InStream: %v, want ErrUnavailable", err)
	}
	sock := filepath.Join(t.TempDir(), "none.ctl")
	c, err = clamd.New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); !errors.Is(err, clamd.ErrUnavailable) {
		t.Fatalf("unix Ping: %v, want ErrUnavailable", err)
	}

	// A server that accepts and hangs up without answering.
	f := newFake(t, func(string, []byte) string { return "" })
	c, err = clamd.New(f.addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.InStream(ctx, strings.NewReader("x"), 1); !errors.Is(err, clamd.ErrUnavailable) {
		t.Fatalf("no answer: %v, want ErrUnavailable", err)
	}
}

func TestContextCancel(t *testing.T) {
	// A server that never answers: only the context ends the request.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	c, err := clamd.New(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := c.InStream(ctx, strings.NewReader("data"), 4)
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// Against a real clamd with a database the test writes.
func TestRealClamd(t *testing.T) {
	clamExe := clamdtest.TestFile(t, "clam.exe")
	marker := []byte("CUSTOMS-TEST-MALWARE-MARKER-7f3a")
	srv := clamdtest.Start(t, clamdtest.Config{
		Signatures: []string{
			clamdtest.HashSignature("Customs.Test.ClamExe", clamExe),
			clamdtest.BodySignature("Customs.Test.Marker", marker),
		},
		StreamMaxLength: 1 << 20,
	})
	ctx := context.Background()
	c, err := clamd.Dial(ctx, srv.Addr, clamd.WithMaxStreamBytes(srv.StreamMaxLength))
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Version(ctx)
	if err != nil || !strings.HasPrefix(v, "ClamAV ") {
		t.Fatalf("Version = %q, %v", v, err)
	}
	t.Logf("clamd: %s", v)

	scan := func(b []byte) clamd.Result {
		t.Helper()
		res, err := c.InStream(ctx, bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%v\n%s", err, srv.Log())
		}
		return res
	}
	// clamd appends ".UNOFFICIAL" to signatures of databases it does not
	// know as official.
	if res := scan(clamExe); !res.Found() || !strings.HasPrefix(res.Signatures[0], "Customs.Test.ClamExe") {
		t.Errorf("clam.exe: %+v", res)
	}
	body := append(append(bytes.Repeat([]byte("padding "), 5000), marker...), "trailer"...)
	if res := scan(body); !res.Found() || !strings.HasPrefix(res.Signatures[0], "Customs.Test.Marker") {
		t.Errorf("marker: %+v", res)
	}
	if res := scan([]byte("#!/bin/sh\necho hello\n")); res.Found() || res.Skipped {
		t.Errorf("clean file: %+v", res)
	}
	// Exactly StreamMaxLength is accepted by clamd.
	if res := scan(make([]byte, srv.StreamMaxLength)); res.Found() || res.Skipped {
		t.Errorf("StreamMaxLength bytes: %+v", res)
	}
	// Larger: skipped by the client, nothing sent.
	if res := scan(make([]byte, srv.StreamMaxLength+1)); !res.Skipped {
		t.Errorf("over the limit: %+v", res)
	}
	// A client configured above clamd's limit: clamd refuses, still a
	// skip and not an error.
	loose, err := clamd.New(srv.Addr, clamd.WithMaxStreamBytes(8<<20))
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20)
	res, err := loose.InStream(ctx, bytes.NewReader(big), int64(len(big)))
	if err != nil || !res.Skipped || !strings.Contains(res.Reason, "size limit") {
		t.Errorf("over clamd's limit: %+v, %v", res, err)
	}
	if st := c.Stats(); st.Scanned != 4 || st.Found != 2 || st.Skipped != 1 || st.Errors != 0 {
		t.Errorf("Stats = %+v", st)
	}

	// Outage: clamd gone → ErrUnavailable, never a clean result.
	srv.Stop()
	if _, err := c.InStream(ctx, bytes.NewReader(clamExe), int64(len(clamExe))); !errors.Is(err, clamd.ErrUnavailable) {
		t.Fatalf("after Stop: %v, want ErrUnavailable", err)
	}
}
