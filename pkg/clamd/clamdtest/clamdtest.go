// Package clamdtest starts a real clamd for tests, with a small signature
// database the test writes itself (no freshclam, no network):
//
//	srv := clamdtest.Start(t, clamdtest.Config{
//		Signatures: []string{
//			clamdtest.HashSignature("Customs.Test.ClamExe", clamdtest.TestFile(t, "clam.exe")),
//			clamdtest.BodySignature("Customs.Test.Marker", []byte("CUSTOMS-TEST-MARKER")),
//		},
//		StreamMaxLength: 1 << 20,
//	})
//	c, err := clamd.Dial(ctx, srv.Addr, clamd.WithMaxStreamBytes(srv.StreamMaxLength))
//
// Tests skip (not fail) when clamd or ClamAV's test files are not
// installed: run scripts/ci-deps.sh (Debian's clamav-daemon and
// clamav-testfiles).
package clamdtest

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/clamd"
)

// SkipMessage is the reason tests skip when clamd is not installed.
const SkipMessage = "install clamav-daemon (scripts/ci-deps.sh)"

// TestFilesDir is where Debian's clamav-testfiles puts ClamAV's samples
// (clam.exe, clam.zip, …: harmless files that ClamAV's own test
// signatures detect).
const TestFilesDir = "/usr/share/clamav-testfiles"

// Binary returns the path of clamd, or skips t when it is not installed.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("clamd"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/clamd", "/usr/local/sbin/clamd"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	t.Skip(SkipMessage)
	return ""
}

// TestFile returns one of ClamAV's test samples, or skips t when
// clamav-testfiles is not installed.
func TestFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(TestFilesDir, name))
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("install clamav-testfiles (scripts/ci-deps.sh)")
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// HashSignature is an .hdb line matching exactly data: "md5:size:name".
func HashSignature(name string, data []byte) string {
	sum := md5.Sum(data)
	return fmt.Sprintf("%s:%d:%s", hex.EncodeToString(sum[:]), len(data), name)
}

// BodySignature is an .ndb line matching pattern anywhere in any file:
// "name:0:*:hexbytes".
func BodySignature(name string, pattern []byte) string {
	return fmt.Sprintf("%s:0:*:%s", name, hex.EncodeToString(pattern))
}

// Config configures Start.
type Config struct {
	// Signatures are lines of .hdb ("md5:size:name") and .ndb
	// ("name:target:offset:hex") databases; Start sorts them into
	// customs.hdb and customs.ndb by their shape. At least one is needed
	// (clamd refuses to start without signatures).
	Signatures []string
	// StreamMaxLength is clamd's StreamMaxLength in bytes (default 1 MiB).
	StreamMaxLength int64
}

// Server is a running clamd.
type Server struct {
	// Addr is "tcp://127.0.0.1:<port>".
	Addr string
	// Dir holds clamd.conf, db/, clamd.log.
	Dir string
	// StreamMaxLength is the configured StreamMaxLength.
	StreamMaxLength int64

	cmd *exec.Cmd
}

// Start starts clamd in the foreground on a free 127.0.0.1 port with the
// signatures of cfg, waits until it answers PING, and stops it when the
// test ends. It skips t when clamd is not installed.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin := Binary(t)
	if len(cfg.Signatures) == 0 {
		t.Fatal("clamdtest: no signatures (clamd refuses to start without)")
	}
	if cfg.StreamMaxLength <= 0 {
		cfg.StreamMaxLength = 1 << 20
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	var hdb, ndb []string
	for _, s := range cfg.Signatures {
		// .hdb: md5:size:name; .ndb: name:target:offset:hex.
		if f := strings.Split(s, ":"); len(f) == 3 && len(f[0]) == 32 {
			hdb = append(hdb, s)
		} else {
			ndb = append(ndb, s)
		}
	}
	write := func(name string, lines []string) {
		if len(lines) == 0 {
			return
		}
		if err := os.WriteFile(filepath.Join(db, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("customs.hdb", hdb)
	write("customs.ndb", ndb)

	port := freePort(t)
	conf := filepath.Join(dir, "clamd.conf")
	// No User line: clamd keeps the user it was started as (root in CI).
	confText := strings.Join([]string{
		"Foreground yes",
		"TCPSocket " + port,
		"TCPAddr 127.0.0.1",
		"DatabaseDirectory " + db,
		"LogFile " + filepath.Join(dir, "clamd.log"),
		"LogVerbose yes",
		"PidFile " + filepath.Join(dir, "clamd.pid"),
		fmt.Sprintf("StreamMaxLength %d", cfg.StreamMaxLength),
		"MaxThreads 4",
		"SelfCheck 3600",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(confText), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-c", conf)
	out, err := os.Create(filepath.Join(dir, "clamd.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("clamdtest: start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); out.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	srv := &Server{Addr: "tcp://127.0.0.1:" + port, Dir: dir, StreamMaxLength: cfg.StreamMaxLength, cmd: cmd}
	c, err := clamd.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for PONG while clamd is alive. The bound only keeps a broken
	// machine from hanging the suite; loading a few signatures takes well
	// under a second.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("clamdtest: clamd exited before answering PING (%v):\n%s", err, srv.Log())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx)
		cancel()
		if err == nil {
			return srv
		}
		if time.Now().After(deadline) {
			t.Fatalf("clamdtest: clamd does not answer PING: %v\n%s", err, srv.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log returns clamd's output and log file, for failure messages.
func (s *Server) Log() string {
	var b strings.Builder
	for _, name := range []string{"clamd.out", "clamd.log"} {
		if data, err := os.ReadFile(filepath.Join(s.Dir, name)); err == nil {
			fmt.Fprintf(&b, "--- %s\n%s", name, data)
		}
	}
	return b.String()
}

// Stop kills clamd now (to test an outage) and waits for it to exit.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	for {
		// Wait until the port refuses connections.
		c, err := net.Dial("tcp", strings.TrimPrefix(s.Addr, "tcp://"))
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}
