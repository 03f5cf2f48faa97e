package customs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/services/customs"
)

// BenchmarkPushToReport measures push-to-report latency of `customs up`:
// one stack (embedded registry, NATS, S3, ingest, scanner, results), then
// per iteration a fresh small Debian-like image is pushed to the registry
// and GET /v1/reports/{digest} is polled until it answers 200.
//
// ns/op is push + webhook + queue + scan + store + first 200; report-ms is
// the part after remote.Write returned; push-ms the push itself. Building
// the image is not timed, and one warm-up push precedes the timer.
//
//	go test -run '^$' -bench PushToReport -benchtime 20x .
func BenchmarkPushToReport(b *testing.B) {
	cfg := customs.DefaultUpConfig()
	cfg.DataDir = b.TempDir()
	for _, a := range []*string{&cfg.IngestAddr, &cfg.ResultsAddr, &cfg.ScannerAddr, &cfg.NATSAddr, &cfg.S3Addr, &cfg.HarborAddr, &cfg.NotifierAddr} {
		*a = "127.0.0.1:0"
	}
	cfg.RegistryAddr = "127.0.0.1:0"
	cfg.Log = zerolog.New(zerolog.NewTestWriter(b)).Level(zerolog.ErrorLevel)
	st, err := customs.Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := st.Stop(); err != nil {
			b.Errorf("stop: %v", err)
		}
	})

	client := &http.Client{Timeout: 10 * time.Second}
	seq := 0
	image := func() v1.Image {
		seq++
		files := append(scantest.DebianRootfs(b),
			scantest.Reg("etc/customs-bench-id", fmt.Sprintf("%d-%d\n", time.Now().UnixNano(), seq)))
		return scantest.Image(b, scantest.Layer(b, files...))
	}

	// Warm-up: first connections, consumers, bucket.
	benchWaitReport(b, client, st.ResultsURL, benchPush(b, st, "bench/debian:latest", image()))

	var pushTotal, reportTotal time.Duration
	n := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		img := image()
		b.StartTimer()

		start := time.Now()
		digest := benchPush(b, st, "bench/debian:latest", img)
		pushed := time.Now()
		benchWaitReport(b, client, st.ResultsURL, digest)
		pushTotal += pushed.Sub(start)
		reportTotal += time.Since(pushed)
		n++
	}
	if n > 0 {
		b.ReportMetric(float64(reportTotal.Microseconds())/1000/float64(n), "report-ms")
		b.ReportMetric(float64(pushTotal.Microseconds())/1000/float64(n), "push-ms")
	}
}

func benchPush(tb testing.TB, st *customs.Stack, repoTag string, img v1.Image) string {
	tb.Helper()
	ref, err := name.ParseReference(st.RegistryAddr+"/"+repoTag, name.Insecure)
	if err != nil {
		tb.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		tb.Fatalf("push %s: %v", repoTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		tb.Fatal(err)
	}
	return d.String()
}

// benchWaitReport polls the results API every 5 ms (finer than the
// e2e tests' waitReport, so the poll interval barely adds to the figure)
// and checks the scan completed.
func benchWaitReport(tb testing.TB, client *http.Client, resultsURL, digest string) {
	tb.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := client.Get(resultsURL + "/v1/reports/" + digest)
		if err != nil {
			tb.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			var r report.Report
			if err := json.Unmarshal(body, &r); err != nil {
				tb.Fatalf("report %s: %v", digest, err)
			}
			if r.Status != report.StatusComplete {
				tb.Fatalf("report %s: status %s error %q", digest, r.Status, r.Error)
			}
			return
		case http.StatusNotFound:
		default:
			tb.Fatalf("GET report %s: %d %s", digest, resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no report for %s after 90s", digest)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
