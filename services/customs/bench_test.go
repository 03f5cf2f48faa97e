package customs_test

import (
	"bytes"
	"compress/gzip"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/customs"
	"github.com/customs-scan/customs/services/scanner"
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
	st, _ := benchStack(b, nil)

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

// BenchmarkBurst measures whether `customs up` keeps up with a burst of
// pushes: CUSTOMS_BENCH_SMALL small images (default 200, a Debian-like
// rootfs plus a unique file, one layer) with CUSTOMS_BENCH_LARGE large ones
// (default 20: CUSTOMS_BENCH_LARGE_MB of binaries and source files in
// three layers on top of the rootfs, default 40 MB, see benchLargeImage) spread evenly through
// the push order, pushed by CUSTOMS_BENCH_PUSHERS concurrent clients
// (default 8). CUSTOMS_BENCH_SCANNERS=2 starts a second scanner service
// on the same NATS (its own connection, as a second process would have;
// it shares this process's CPUs); CUSTOMS_BENCH_WORKERS sets each
// scanner's Workers, CUSTOMS_BENCH_STREAMS its Streams and
// CUSTOMS_BENCH_MEMORY its Memory budget in bytes (0: the defaults).
//
// A report counts as done when results announces it stored
// (customs.events.stored.<hex>, the event the gate and notifier act on);
// every report is then read once over the API and must be complete.
// Latency is from the push returning (the manifest put that fires the
// webhook) to that event. Metrics: images/min over the burst (first push
// to last report), images/min/core (divided by GOMAXPROCS), images per
// CPU-minute of this process (registry, pushers and all services
// included), p50/p95 ms for small and large images, and small-after-large
// p95: small images pushed after the first large one, the ones
// head-of-line blocking would delay. Building the images is not timed.
//
//	go test -run '^$' -bench Burst -benchtime 1x -timeout 30m .
func BenchmarkBurst(b *testing.B) {
	nSmall := benchEnvInt(b, "CUSTOMS_BENCH_SMALL", 200)
	nLarge := benchEnvInt(b, "CUSTOMS_BENCH_LARGE", 20)
	largeMB := benchEnvInt(b, "CUSTOMS_BENCH_LARGE_MB", 40)
	pushers := max(benchEnvInt(b, "CUSTOMS_BENCH_PUSHERS", 8), 1)
	scanners := max(benchEnvInt(b, "CUSTOMS_BENCH_SCANNERS", 1), 1)
	workers := benchEnvInt(b, "CUSTOMS_BENCH_WORKERS", 0)

	st, cfg := benchStack(b, func(cfg *customs.UpConfig) {
		if workers > 0 {
			cfg.Workers = workers
		}
		cfg.Streams = benchEnvInt(b, "CUSTOMS_BENCH_STREAMS", 0)
		cfg.Memory = int64(benchEnvInt(b, "CUSTOMS_BENCH_MEMORY", 0))
	})
	for i := 1; i < scanners; i++ {
		benchExtraScanner(b, st, cfg, i)
	}

	// Stage times by digest, from the events on core NATS: one
	// subscription each for the whole burst instead of 220 pollers
	// competing with the scanners for the CPU.
	nc, err := nats.Connect(st.NATSURL, nats.Name("customs-bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	var mu sync.Mutex
	stages := map[string]map[string]time.Time{"queued": {}, "scanned": {}, "stored": {}}
	storedCh := make(chan struct{}, 1)
	record := func(stage, digest string) {
		mu.Lock()
		if _, seen := stages[stage][digest]; !seen {
			stages[stage][digest] = time.Now()
		}
		mu.Unlock()
	}
	for subject, fn := range map[string]nats.MsgHandler{
		queue.JobsSubjectPrefix + ">": func(m *nats.Msg) {
			if job, err := wire.DecodeJob(m.Data); err == nil {
				record("queued", job.GetDigest())
			}
		},
		queue.ReportsSubjectPrefix + ">": func(m *nats.Msg) {
			record("scanned", "sha256:"+strings.TrimPrefix(m.Subject, queue.ReportsSubjectPrefix))
		},
		queue.ReportStoredSubject + ">": func(m *nats.Msg) {
			var ev customsv1.ReportStored
			if err := proto.Unmarshal(m.Data, &ev); err != nil || ev.GetCause() != "scan" {
				return
			}
			record("stored", ev.GetDigest())
			select {
			case storedCh <- struct{}{}:
			default:
			}
		},
	} {
		sub, err := nc.Subscribe(subject, fn)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	storedAt := stages["stored"]

	client := &http.Client{Timeout: 30 * time.Second}
	seq := 0
	// Warm-up: first connections, consumers, bucket, the rootfs layer's
	// first scan.
	benchWaitReport(b, client, st.ResultsURL, benchPush(b, st, "bench/warmup:latest", benchSmallImage(b, &seq)))

	var sum burstSums
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		imgs := benchBurstImages(b, &seq, nSmall, nLarge, largeMB)
		mu.Lock()
		for _, m := range stages {
			clear(m)
		}
		mu.Unlock()
		var ru0 benchCPU
		ru0.read()
		b.StartTimer()

		start := time.Now()
		var next atomic.Int64
		g, _ := errgroup.WithContext(context.Background())
		for range pushers {
			g.Go(func() error {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(imgs) {
						return nil
					}
					im := &imgs[i]
					im.start = time.Now()
					ref, err := name.ParseReference(fmt.Sprintf("%s/bench/burst-%d:latest", st.RegistryAddr, i), name.Insecure)
					if err != nil {
						return err
					}
					if err := remote.Write(ref, im.img); err != nil {
						return fmt.Errorf("push %d: %w", i, err)
					}
					im.pushed = time.Now()
				}
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Minute)
		for {
			mu.Lock()
			done := 0
			for i := range imgs {
				if _, ok := storedAt[imgs[i].digest]; ok {
					done++
				}
			}
			mu.Unlock()
			if done == len(imgs) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d reports stored after 20 minutes", done, len(imgs))
			}
			select {
			case <-storedCh:
			case <-time.After(time.Second):
			}
		}
		b.StopTimer()
		var ru1 benchCPU
		ru1.read()
		mu.Lock()
		var last time.Time
		for i := range imgs {
			imgs[i].queued = stages["queued"][imgs[i].digest]
			imgs[i].scanned = stages["scanned"][imgs[i].digest]
			imgs[i].stored = storedAt[imgs[i].digest]
			if imgs[i].stored.After(last) {
				last = imgs[i].stored
			}
		}
		mu.Unlock()
		sum.add(imgs, last.Sub(start), ru1.sub(ru0))
		for _, im := range imgs {
			benchWaitReport(b, client, st.ResultsURL, im.digest) // complete, not failed
		}
		b.StartTimer()
	}
	sum.report(b)
}

// benchExtraScanner runs another scanner service against st's NATS and
// registry, configured as `customs up` configures its own.
func benchExtraScanner(b *testing.B, st *customs.Stack, cfg customs.UpConfig, i int) {
	b.Helper()
	nc, js, err := natsconn.Connect(context.Background(), natsconn.Config{URL: st.NATSURL}, fmt.Sprintf("customs-scanner-%d", i), cfg.Log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	scn, err := scanner.New(scanner.Config{
		Addr: "127.0.0.1:0", Workers: cfg.Workers, Streams: cfg.Streams, Memory: cfg.Memory, AckWait: cfg.AckWait, InsecureRegistries: st.InsecureRegistries,
		PullFrom: []string{st.RegistryAddr + "=" + st.RegistryUpstreamAddr},
		Signing:  wire.SigningConfig{Key: st.ReportSigningKey},
	}, scanner.Deps{JetStream: js, Ready: natsconn.Ready(nc), Log: cfg.Log})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- scn.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("scanner %d: %v", i, err)
		}
	})
}

type burstImage struct {
	img    v1.Image
	digest string
	large  bool
	// start and pushed: the push; queued: ingest published the job;
	// scanned: the scanner published the report; stored: results stored
	// it.
	start, pushed, queued, scanned, stored time.Time
}

func benchSmallImage(b *testing.B, seq *int) v1.Image {
	*seq++
	files := append(scantest.DebianRootfs(b),
		scantest.Reg("etc/customs-bench-id", fmt.Sprintf("%d-%d\n", time.Now().UnixNano(), *seq)))
	return scantest.Image(b, scantest.Layer(b, files...))
}

// benchLargeImage is the small image's rootfs plus mb MB of payload in
// three layers: half random 2 MB "libraries" (incompressible, and binary:
// the threat analyzers skip them after their first bytes, like real
// shared objects), half 256 KB source files (text the secrets analyzer
// reads in full, like a node_modules or site-packages tree).
func benchLargeImage(b *testing.B, seq *int, mb int) v1.Image {
	*seq++
	layers := []v1.Layer{scantest.Layer(b, append(scantest.DebianRootfs(b),
		scantest.Reg("etc/customs-bench-id", fmt.Sprintf("%d-%d\n", time.Now().UnixNano(), *seq)))...)}
	rng := mrand.New(mrand.NewPCG(uint64(*seq), uint64(time.Now().UnixNano())))
	var fs [3][]scantest.File
	for f := range max(mb/4, 1) { // 2 MB each: half the payload
		content := make([]byte, 2<<20)
		_, _ = crand.Read(content)
		fs[f%3] = append(fs[f%3], scantest.File{Path: fmt.Sprintf("usr/lib/bench%d/libbench%d.so", *seq, f), Content: content})
	}
	for f := range max(mb*2, 1) { // 256 KB each: the other half
		fs[f%3] = append(fs[f%3], scantest.File{Path: fmt.Sprintf("srv/app%d/node_modules/pkg%d/index.js", *seq, f), Content: benchSource(rng, 256<<10)})
	}
	for _, l := range fs {
		layers = append(layers, benchFastLayer(b, scantest.Tar(b, l...)))
	}
	return scantest.Image(b, layers...)
}

// benchWords make source-like text: random lines of identifiers and
// punctuation compress about as well as real JavaScript (3-4x).
var benchWords = strings.Fields(`function return const let var if else for while import export default
	require module exports this new class extends async await try catch throw null undefined true false
	value key data options config result error callback promise resolve reject length push map filter
	reduce forEach Object keys assign JSON stringify parse String Number Array Buffer from process env
	= == === => ( ) { } [ ] ; , . + - * / && || ! ? : 0 1 2 16 255 1024 'utf8' "use strict"`)

func benchSource(rng *mrand.Rand, size int) []byte {
	out := make([]byte, 0, size+64)
	for len(out) < size {
		for range 4 + rng.IntN(10) {
			out = append(out, benchWords[rng.IntN(len(benchWords))]...)
			out = append(out, ' ')
		}
		out = append(out, '\n')
	}
	return out[:size]
}

// benchFastLayer gzips at BestSpeed: random data does not compress
// anyway, and the default level makes building 20 large images slow.
func benchFastLayer(b *testing.B, tarball []byte) v1.Layer {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := zw.Write(tarball); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	diffID, _, err := v1.SHA256(bytes.NewReader(tarball))
	if err != nil {
		b.Fatal(err)
	}
	return scantest.RawLayer(buf.Bytes(), diffID, types.OCILayer)
}

// benchBurstImages builds the burst: large images at evenly spaced
// positions (the first a tenth of the way in, so that small images are
// pushed both before and after large ones).
func benchBurstImages(b *testing.B, seq *int, nSmall, nLarge, largeMB int) []burstImage {
	total := nSmall + nLarge
	isLarge := make([]bool, total)
	for k := range nLarge {
		isLarge[(total/10+k*total/nLarge)%total] = true
	}
	// Large images are built on both cores: they are most of the build time.
	imgs := make([]burstImage, total)
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range imgs {
		imgs[i].large = isLarge[i]
		// Each image gets its own two sequence numbers (the small image
		// helper adds one): no two ids collide.
		s := *seq + 2*i
		g.Go(func() error {
			if imgs[i].large {
				imgs[i].img = benchLargeImage(b, &s, largeMB)
			} else {
				imgs[i].img = benchSmallImage(b, &s)
			}
			d, err := imgs[i].img.Digest()
			if err != nil {
				return err
			}
			imgs[i].digest = d.String()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	*seq += 2*total + 1
	return imgs
}

// burstSums accumulates the figures of every iteration.
type burstSums struct {
	images                   int
	wall                     time.Duration
	cpu                      time.Duration
	small, large, smallAfter []time.Duration
	// Stages of every image: push to job (webhook and ingest), job to
	// report event (queue wait and scan), report event to stored.
	webhook, smallScan, largeScan, store []time.Duration
}

func (s *burstSums) add(imgs []burstImage, wall, cpu time.Duration) {
	s.images += len(imgs)
	s.wall += wall
	s.cpu += cpu
	var firstLarge time.Time
	for _, im := range imgs {
		if im.large && (firstLarge.IsZero() || im.start.Before(firstLarge)) {
			firstLarge = im.start
		}
	}
	for _, im := range imgs {
		lat := im.stored.Sub(im.pushed)
		if !im.queued.IsZero() && !im.scanned.IsZero() {
			s.webhook = append(s.webhook, im.queued.Sub(im.pushed))
			s.store = append(s.store, im.stored.Sub(im.scanned))
			if im.large {
				s.largeScan = append(s.largeScan, im.scanned.Sub(im.queued))
			} else {
				s.smallScan = append(s.smallScan, im.scanned.Sub(im.queued))
			}
		}
		switch {
		case im.large:
			s.large = append(s.large, lat)
		default:
			s.small = append(s.small, lat)
			if !firstLarge.IsZero() && im.start.After(firstLarge) {
				s.smallAfter = append(s.smallAfter, lat)
			}
		}
	}
}

func (s *burstSums) report(b *testing.B) {
	if s.images == 0 || s.wall <= 0 {
		return
	}
	perMin := float64(s.images) / s.wall.Minutes()
	b.ReportMetric(perMin, "images/min")
	b.ReportMetric(perMin/float64(runtime.GOMAXPROCS(0)), "images/min/core")
	if s.cpu > 0 {
		b.ReportMetric(float64(s.images)/s.cpu.Minutes(), "images/cpu-min")
	}
	for _, m := range []struct {
		name string
		d    []time.Duration
		p50  bool
	}{
		{"small", s.small, true}, {"large", s.large, true}, {"small-after-large", s.smallAfter, false},
		{"webhook", s.webhook, false}, {"small-scan", s.smallScan, false}, {"large-scan", s.largeScan, false},
		{"store", s.store, false},
	} {
		if len(m.d) == 0 {
			continue
		}
		slices.Sort(m.d)
		if m.p50 {
			b.ReportMetric(benchPercentile(m.d, 50), m.name+"-p50-ms")
		}
		b.ReportMetric(benchPercentile(m.d, 95), m.name+"-p95-ms")
	}
}

// benchPercentile is the nearest-rank percentile of sorted d, in ms.
func benchPercentile(d []time.Duration, p int) float64 {
	i := (len(d)*p + 99) / 100
	return float64(d[max(i, 1)-1].Microseconds()) / 1000
}

func benchEnvInt(b *testing.B, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a count", key, v)
	}
	return n
}

// benchStack starts an in-process `customs up` with an embedded registry,
// every listener on a free port; set, when given, adjusts the config.
func benchStack(b *testing.B, set func(*customs.UpConfig)) (*customs.Stack, customs.UpConfig) {
	b.Helper()
	cfg := customs.DefaultUpConfig()
	cfg.DataDir = b.TempDir()
	for _, a := range []*string{&cfg.IngestAddr, &cfg.ResultsAddr, &cfg.ScannerAddr, &cfg.NATSAddr, &cfg.S3Addr, &cfg.HarborAddr, &cfg.NotifierAddr} {
		*a = "127.0.0.1:0"
	}
	cfg.RegistryAddr = "127.0.0.1:0"
	cfg.Log = zerolog.New(zerolog.NewTestWriter(b)).Level(zerolog.ErrorLevel)
	if set != nil {
		set(&cfg)
	}
	st, err := customs.Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := st.Stop(); err != nil {
			b.Errorf("stop: %v", err)
		}
	})
	return st, cfg
}
