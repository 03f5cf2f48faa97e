package scanner_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
	"github.com/customs-scan/customs/services/scanner"
)

// What pkg/scan logs through zerolog.Ctx reaches the operator with the
// job's fields (and the service named once).
func TestScanLibraryLogsCarryTheJob(t *testing.T) {
	var buf svcmaintest.LogBuffer
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	if err := queue.EnsureStreams(t.Context(), js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	e := startLogged(t, ns, js, scanner.Config{}, zerolog.New(&buf).Level(zerolog.DebugLevel))
	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	a := scantest.Image(t, base, scantest.Layer(t, scantest.Reg("srv/a", "a")))
	b := scantest.Image(t, base, scantest.Layer(t, scantest.Reg("srv/b", "b")))
	e.enqueue(t, "team/a", e.push(t, "team/a", a))
	queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)
	digestB := e.push(t, "team/b", b)
	e.enqueue(t, "team/b", digestB)
	queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 2)

	var hit map[string]any
	for _, l := range buf.Lines() {
		if l["message"] == "scan: layer results from the cache" {
			hit = l
		}
	}
	if hit == nil {
		t.Fatal("the scan library's cache-hit line did not reach the log")
	}
	if hit["digest"] != digestB || hit["repository"] != "team/b" || hit["job_id"] == nil || hit["stream_seq"] == nil {
		t.Errorf("scan library log line lacks the job's fields: %v", hit)
	}
	if hit["service"] != "scanner" {
		t.Errorf("service field = %v", hit["service"])
	}
	if raw := buf.String(); strings.Contains(raw, `"service":"scanner","service"`) {
		t.Error("the service field is added more than once")
	}
}

// fakeClamd answers PING and VERSION, and INSTREAM with "OK", or with
// clamd's error reply for a stream holding the crafted marker (as clamd
// does when a file makes it run out of memory).
func fakeClamd(t *testing.T, marker []byte) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	handle := func(c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		cmd, err := r.ReadString(0)
		if err != nil {
			return
		}
		switch cmd {
		case "zPING\x00":
			io.WriteString(c, "PONG\x00")
		case "zVERSION\x00":
			io.WriteString(c, "ClamAV 1.4.6/27470/Tue Nov 25 09:00:00 2026\x00")
		case "zINSTREAM\x00":
			var stream []byte
			for {
				var n uint32
				if binary.Read(r, binary.BigEndian, &n) != nil {
					return
				}
				if n == 0 {
					break
				}
				chunk := make([]byte, n)
				if _, err := io.ReadFull(r, chunk); err != nil {
					return
				}
				stream = append(stream, chunk...)
			}
			if bytes.Contains(stream, marker) {
				io.WriteString(c, "stream: Can't allocate memory ERROR\x00")
				return
			}
			io.WriteString(c, "stream: OK\x00")
		}
	}
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { handle(c) })
		}
	})
	return "tcp://" + l.Addr().String()
}

// An analyzer failing on a crafted file (clamd refuses it) skips that
// file: the warning reaches the operator's log with the job's fields, and
// customs_scanner_analyzer_errors_total{analyzer} counts it.
func TestAnalyzerFailureIsLoggedAndCounted(t *testing.T) {
	var buf svcmaintest.LogBuffer
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	if err := queue.EnsureStreams(t.Context(), js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	marker := []byte("CRAFTED-TO-CRASH-CLAMD")
	cfg := scanner.Config{}
	cfg.Engine.ClamdAddr = fakeClamd(t, marker)
	e := startLogged(t, ns, js, cfg, zerolog.New(&buf).Level(zerolog.InfoLevel))
	img := scantest.Image(t, scantest.Layer(t, append(scantest.DebianRootfs(t),
		scantest.Exec("usr/local/bin/crafted.sh", append([]byte("#!/bin/sh\n# "), marker...)),
		scantest.Exec("usr/local/bin/fine.sh", []byte("#!/bin/sh\necho fine\n")),
	)...))
	digest := e.push(t, "team/crafted", img)
	e.enqueue(t, "team/crafted", digest)
	queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)

	var line map[string]any
	for _, l := range buf.Lines() {
		if l["message"] == "scan: analyzer failed; file skipped" {
			line = l
		}
	}
	if line == nil {
		t.Fatalf("no analyzer failure in the log:\n%s", buf.String())
	}
	if line["analyzer"] != "clamav" || line["path"] != "usr/local/bin/crafted.sh" || line["digest"] != digest ||
		line["repository"] != "team/crafted" || line["level"] != "warn" {
		t.Errorf("log line = %v", line)
	}
	resp, err := http.Get(e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `customs_scanner_analyzer_errors_total{analyzer="clamav"} 1`; !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %s:\n%s", want, grepLines(string(body), "analyzer_errors"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
