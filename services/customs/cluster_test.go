package customs_test

// A three-node JetStream cluster under ingest, two scanners and results:
// the stream leader and then a follower are killed during bursts of
// webhooks, and every acknowledged webhook must still end in exactly one
// stored report. The figures (failover time, webhooks accepted while a
// node was down, reports stored) are logged, never asserted: the machines
// running the tests are shared.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/wire"
	"github.com/customs-scan/customs/services/ingest"
	"github.com/customs-scan/customs/services/results"
	"github.com/customs-scan/customs/services/scanner"
)

// ---- the cluster ----

// link carries the route connections one node dials to another. Cutting
// it closes them at once and refuses new ones: what the peers of a
// crashed host see.
type link struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func newLink(t *testing.T, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go l.accept()
	t.Cleanup(func() { _ = ln.Close(); l.cut() })
	return l
}

func (l *link) addr() string { return l.ln.Addr().String() }

func (l *link) accept() {
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		go l.forward(in)
	}
}

func (l *link) forward(in net.Conn) {
	out, err := net.DialTimeout("tcp", l.target, 2*time.Second)
	if err != nil {
		_ = in.Close()
		return
	}
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		_ = in.Close()
		_ = out.Close()
		return
	}
	l.conns[in], l.conns[out] = struct{}{}, struct{}{}
	l.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	_ = in.Close()
	_ = out.Close()
	l.mu.Lock()
	delete(l.conns, in)
	delete(l.conns, out)
	l.mu.Unlock()
}

func (l *link) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for c := range l.conns {
		_ = c.Close()
	}
	clear(l.conns)
}

func (l *link) restore() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
}

type natsNode struct {
	name string
	opts server.Options
	srv  *server.Server
	// out[j] carries this node's routes to node j; in[j] node j's to this one.
	out, in map[int]*link
}

type natsCluster struct {
	t     *testing.T
	nodes []*natsNode
}

// freePort reserves a loopback port: the nodes must know each other's
// route ports before any of them starts, and keep them across restarts.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startCluster starts n JetStream nodes clustered over loopback, file
// storage in temporary directories, each fsyncing every write (the
// chart's sync_interval: always). Each pair of nodes talks through links
// (one per direction) so a node can be cut off before it stops: a plain
// Shutdown first hands its leaderships over, which a crash never does.
func startCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t}
	routePorts := make([]int, n)
	for i := range n {
		routePorts[i] = freePort(t)
		c.nodes = append(c.nodes, &natsNode{name: fmt.Sprintf("n%d", i+1), out: map[int]*link{}, in: map[int]*link{}})
	}
	for i, nd := range c.nodes {
		for j := range n {
			if j == i {
				continue
			}
			l := newLink(t, fmt.Sprintf("127.0.0.1:%d", routePorts[j]))
			nd.out[j], c.nodes[j].in[i] = l, l
		}
	}
	for i, nd := range c.nodes {
		var routes []*url.URL
		for j := range n {
			if j != i {
				routes = append(routes, &url.URL{Scheme: "nats-route", Host: nd.out[j].addr()})
			}
		}
		nd.opts = server.Options{
			ServerName: nd.name,
			Host:       "127.0.0.1",
			Port:       freePort(t),
			JetStream:  true,
			StoreDir:   t.TempDir(),
			SyncAlways: true,
			NoLog:      true,
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: "customs", Host: "127.0.0.1", Port: routePorts[i],
				// Gossiped route addresses would let nodes dial each other
				// directly, around the links; this one refuses connections.
				Advertise: "127.0.0.1:1",
			},
			Routes: routes,
		}
	}
	var wg sync.WaitGroup
	for _, nd := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.start(nd)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			c.stop(nd)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	// What the NATS chart's readiness probe waits for (/healthz): a
	// JetStream request sent before the meta leader is elected goes
	// unanswered until the client gives up.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ready := 0
		for _, nd := range c.nodes {
			if nd.srv.Healthz(nil).Status == "ok" {
				ready++
			}
		}
		if ready == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster has no JetStream meta leader after 30s")
		}
	}
	return c
}

func (c *natsCluster) start(nd *natsNode) {
	opts := nd.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		c.t.Errorf("node %s: %v", nd.name, err)
		return
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		c.t.Errorf("node %s not ready", nd.name)
		return
	}
	nd.srv = srv
}

func (c *natsCluster) stop(nd *natsNode) {
	if nd.srv != nil {
		nd.srv.Shutdown()
		nd.srv.WaitForShutdown()
		nd.srv = nil
	}
}

// kill cuts the node off from its peers, then stops it: its clients lose
// their connections and its peers hear nothing more from it, not even a
// leadership hand-over.
func (c *natsCluster) kill(nd *natsNode) {
	for _, l := range nd.out {
		l.cut()
	}
	for _, l := range nd.in {
		l.cut()
	}
	c.stop(nd)
}

// restart brings a killed node back with its store directory.
func (c *natsCluster) restart(nd *natsNode) {
	for _, l := range nd.out {
		l.restore()
	}
	for _, l := range nd.in {
		l.restore()
	}
	c.start(nd)
	if c.t.Failed() {
		c.t.FailNow()
	}
}

// URLs is what every service dials: all three nodes.
func (c *natsCluster) URLs() string {
	var urls []string
	for _, nd := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", nd.opts.Port))
	}
	return strings.Join(urls, ",")
}

func (c *natsCluster) node(name string) *natsNode {
	for _, nd := range c.nodes {
		if nd.name == name {
			return nd
		}
	}
	c.t.Fatalf("no node %q", name)
	return nil
}

// localStream is nd's own replica of stream, as its monitoring sees it.
func localStream(nd *natsNode, stream string) (server.StreamDetail, bool) {
	if nd.srv == nil {
		return server.StreamDetail{}, false
	}
	jsz, err := nd.srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return server.StreamDetail{}, false
	}
	for _, acc := range jsz.AccountDetails {
		for _, s := range acc.Streams {
			if s.Name == stream {
				return s, true
			}
		}
	}
	return server.StreamDetail{}, false
}

// leader is the node a live node names as stream's leader, if that one
// is live too ("" while there is none).
func (c *natsCluster) leader(stream string) string {
	for _, nd := range c.nodes {
		s, ok := localStream(nd, stream)
		if !ok || s.Cluster == nil || s.Cluster.Leader == "" {
			continue
		}
		if l := c.node(s.Cluster.Leader); l.srv != nil {
			return l.name
		}
	}
	return ""
}

// ---- S3 that counts writes ----

type countingS3 struct {
	mu   sync.Mutex
	puts map[string]int // object key → PUTs
}

func (c *countingS3) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			// Path style: /<bucket>/<key>.
			_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
			c.mu.Lock()
			c.puts[key]++
			c.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (c *countingS3) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.puts[key]
}

// ---- webhooks, sent the way a registry sends them ----

type attempt struct {
	start, end time.Time
	status     int // 0: no answer
}

type webhook struct {
	digest   string
	body     []byte
	attempts []attempt
	accepted time.Time // the 202
}

// distributionPush is the notification Distribution sends for a manifest
// push (only the fields ingest reads, plus an id that stays the same on
// every retry of the event).
func distributionPush(registryHost, repo, tag, digest, eventID string) []byte {
	env := map[string]any{"events": []any{map[string]any{
		"id": eventID, "timestamp": time.Now().UTC().Format(time.RFC3339Nano), "action": "push",
		"target": map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
			"repository": repo, "tag": tag,
			"url": "http://" + registryHost + "/v2/" + repo + "/manifests/" + digest,
		},
		"request": map[string]any{"host": registryHost, "method": "PUT"},
	}}}
	b, _ := json.Marshal(env)
	return b
}

// deliver posts the webhook until ingest answers 202 (a registry retries
// forever), every 250 ms, each attempt bounded as Distribution bounds it.
func deliver(ctx context.Context, ingestURL, token string, h *webhook) {
	client := &http.Client{Timeout: 10 * time.Second}
	for ctx.Err() == nil {
		a := attempt{start: time.Now()}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ingestURL+"/v1/webhooks/distribution", bytes.NewReader(h.body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v2+json")
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			a.status = resp.StatusCode
		}
		a.end = time.Now()
		h.attempts = append(h.attempts, a)
		if a.status == http.StatusAccepted {
			h.accepted = a.end
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// ---- the test ----

type clusterImage struct {
	repo, tag, digest string
}

func TestClusterNodeLossLosesNoReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster and kills two nodes in turn (~40 s)")
	}
	begin := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel).With().Timestamp().Logger()

	c := startCluster(t, 3)
	const replicas = 3

	// The registry the scanners pull from, and the images the webhooks name.
	// Layer downloads take 400 ms, so scans are under way when a node is
	// killed and their reports are published during the election.
	regHandler := registry.New(registry.Logger(stdlog.New(io.Discard, "", 0)))
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			time.Sleep(400 * time.Millisecond)
		}
		regHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(reg.Close)
	regHost := strings.TrimPrefix(reg.URL, "http://")
	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	const warmup, burst = 3, 30
	images := make([]clusterImage, warmup+2*burst)
	for i := range images {
		own := scantest.Layer(t, scantest.Reg(fmt.Sprintf("srv/build-%d", i), fmt.Sprintf("build %d\n", i)))
		img := scantest.Image(t, base, own)
		images[i] = clusterImage{repo: "cluster/app", tag: fmt.Sprintf("v%d", i), digest: pushTo(t, regHost, "cluster/app", fmt.Sprintf("v%d", i), img)}
	}

	// S3 over HTTP, counting each object's writes.
	s3 := &countingS3{puts: map[string]int{}}
	s3srv := httptest.NewServer(s3.wrap(gofakes3.New(s3mem.New()).Server()))
	t.Cleanup(s3srv.Close)
	bucket, err := store.NewS3(ctx, store.S3Config{Bucket: "customs-reports", Region: "us-east-1", Endpoint: s3srv.URL,
		PathStyle: true, AccessKeyID: "test", SecretAccessKey: "test", CreateBucket: true}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Each service has its own connection naming all three nodes, as its
	// command would with CUSTOMS_NATS_URL and CUSTOMS_NATS_REPLICAS=3.
	conns := map[string]*nats.Conn{}
	connect := func(name string) jetstream.JetStream {
		nc, js, err := natsconn.Connect(ctx, natsconn.Config{URL: c.URLs(), Replicas: replicas}, "customs-"+name, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		conns[name] = nc
		return js
	}
	jsIngest := connect("ingest")
	jsScanner := map[string]jetstream.JetStream{"scanner-1": connect("scanner-1"), "scanner-2": connect("scanner-2")}
	jsResults := connect("results")
	if _, err := queue.Ensure(ctx, "streams", log, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, queue.EnsureStreams(ctx, jsIngest, queue.Topology{Replicas: replicas})
	}); err != nil {
		t.Fatal(err)
	}
	const webhookToken = "cluster-test-webhook-token"
	signing := wire.SigningConfig{Key: "cluster-test-report-signing-key-0123456789"}
	insecure := []string{regHost}

	var services sync.WaitGroup
	serve := func(name string, run func(ctx context.Context, ln net.Listener) error) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		services.Add(1)
		go func() {
			defer services.Done()
			if err := run(ctx, ln); err != nil && ctx.Err() == nil {
				t.Errorf("%s stopped: %v", name, err)
			}
		}()
		return "http://" + ln.Addr().String()
	}
	// Registered after every connection: runs before they close.
	t.Cleanup(func() { cancel(); services.Wait() })

	ing, err := ingest.New(ingest.Config{WebhookToken: webhookToken, InsecureRegistries: insecure},
		ingest.Deps{JetStream: jsIngest, Ready: natsconn.Ready(conns["ingest"]), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ingestURL := serve("ingest", ing.Serve)
	readyz := []string{ingestURL}
	for _, name := range []string{"scanner-1", "scanner-2"} {
		scn, err := scanner.New(scanner.Config{Workers: 2, AckWait: 5 * time.Second, InsecureRegistries: insecure, Signing: signing},
			scanner.Deps{JetStream: jsScanner[name], Ready: natsconn.Ready(conns[name]), Log: log, Replicas: replicas})
		if err != nil {
			t.Fatal(err)
		}
		readyz = append(readyz, serve(name, scn.Serve))
	}
	res, err := results.New(results.Config{APIAuth: "off", AckWait: 5 * time.Second, Signing: signing},
		results.Deps{Replicas: replicas, JetStream: jsResults, Bucket: bucket, Ready: natsconn.Ready(conns["results"]), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	resultsURL := serve("results", res.Serve)
	readyz = append(readyz, resultsURL)

	// The observer's own connection reads cluster state; it is no service.
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	var hooks []*webhook
	send := func(from, to int, every time.Duration) *sync.WaitGroup {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			im := images[i]
			h := &webhook{digest: im.digest, body: distributionPush(regHost, im.repo, im.tag, im.digest, fmt.Sprintf("event-%d", i))}
			hooks = append(hooks, h)
			wg.Add(1)
			go func() {
				defer wg.Done()
				dctx, dcancel := context.WithTimeout(ctx, 60*time.Second)
				defer dcancel()
				deliver(dctx, ingestURL, webhookToken, h)
			}()
			time.Sleep(every)
		}
		return &wg
	}

	// Warm-up: the pipeline works and every resource exists.
	send(0, warmup, 0).Wait()
	for _, im := range images[:warmup] {
		waitStored(t, resultsURL, im.digest, 60*time.Second)
	}
	streams := checkReplicas(t, ctx, js, replicas)
	t.Logf("cluster up, streams and buckets created, %d warm-up reports stored: %.1fs", warmup, time.Since(begin).Seconds())

	// Phase 1 kills the node leading CUSTOMS_JOBS, phase 2 a node leading
	// neither CUSTOMS_JOBS nor CUSTOMS_REPORTS.
	type phase struct {
		name        string
		victim      func() string
		from, to    int
		killedAt    time.Time
		restartedAt time.Time
	}
	phases := []*phase{
		{name: "leader", from: warmup, to: warmup + burst, victim: func() string {
			// One node leads both: the kill takes webhooks' and reports'
			// acknowledgements in flight at once.
			jobs, reports := c.waitLeader(queue.JobsStream), c.waitLeader(queue.ReportsStream)
			if reports != jobs {
				c.lead(nc, queue.ReportsStream, jobs)
			}
			t.Logf("leader of %s and %s before the kill: %s", queue.JobsStream, queue.ReportsStream, jobs)
			return jobs
		}},
		{name: "follower", from: warmup + burst, to: warmup + 2*burst, victim: func() string {
			jobs, reports := c.waitLeader(queue.JobsStream), c.waitLeader(queue.ReportsStream)
			for _, nd := range c.nodes {
				if nd.name != jobs && nd.name != reports {
					return nd.name
				}
			}
			// Both leaders on one node: any other is a follower of both.
			for _, nd := range c.nodes {
				if nd.name != jobs {
					return nd.name
				}
			}
			return ""
		}},
	}
	for _, p := range phases {
		victim := c.node(p.victim())
		var onVictim []string
		for name, conn := range conns {
			if conn.ConnectedServerName() == victim.name {
				onVictim = append(onVictim, name)
			}
		}
		slices.Sort(onVictim)
		before := len(hooks)
		done := make(chan *sync.WaitGroup)
		go func() { done <- send(p.from, p.to, 100*time.Millisecond) }()
		time.Sleep(time.Second) // about ten webhooks in
		p.killedAt = time.Now()
		c.kill(victim)
		t.Logf("%s kill: node %s stopped (connected to it: %v)", p.name, victim.name, onVictim)

		// A live leader of CUSTOMS_JOBS (a new one after the leader kill).
		c.waitLeader(queue.JobsStream)
		elected := time.Now()
		wg := <-done
		wg.Wait()
		phaseHooks := hooks[before:]
		var firstAfter time.Time
		unanswered, refused := 0, 0
		for _, h := range phaseHooks {
			if h.accepted.IsZero() {
				t.Errorf("webhook for %s was never accepted (%d attempts)", h.digest, len(h.attempts))
			}
			for _, a := range h.attempts {
				switch {
				case a.status == 0:
					unanswered++
				case a.status != http.StatusAccepted:
					refused++
				}
				if a.status == http.StatusAccepted && a.start.After(p.killedAt) && (firstAfter.IsZero() || a.end.Before(firstAfter)) {
					firstAfter = a.end
				}
			}
		}
		if t.Failed() {
			t.FailNow()
		}

		// Every service finds a live node by itself.
		waitReady(t, readyz, 30*time.Second)
		for name, conn := range conns {
			if !conn.IsConnected() || conn.ConnectedServerName() == victim.name {
				t.Errorf("%s: %s, on %q", name, conn.Status(), conn.ConnectedServerName())
			}
		}

		p.restartedAt = time.Now()
		acceptedDown := 0
		for _, h := range phaseHooks {
			if h.accepted.After(p.killedAt) && h.accepted.Before(p.restartedAt) {
				acceptedDown++
			}
		}
		c.restart(victim)
		caughtUp := waitCaughtUp(t, ctx, js, victim, streams, 60*time.Second)
		t.Logf("%s kill: %s led by a live node %.2fs after the kill; first webhook sent after the kill accepted after %.2fs; "+
			"%d of %d webhooks accepted while %s was down (%d attempts refused with 503, %d unanswered); "+
			"restarted %s caught up with all %d streams and buckets in %.2fs",
			p.name, queue.JobsStream, elected.Sub(p.killedAt).Seconds(), firstAfter.Sub(p.killedAt).Seconds(),
			acceptedDown, len(phaseHooks), victim.name, refused, unanswered,
			victim.name, len(streams), caughtUp.Seconds())
	}

	// Every acknowledged webhook ends in exactly one stored report.
	for _, h := range hooks {
		r := waitStored(t, resultsURL, h.digest, 90*time.Second)
		if r.Status != report.StatusComplete {
			t.Errorf("%s: report %s (%s)", h.digest, r.Status, r.Error)
		}
	}
	ctxInfo, cancelInfo := context.WithTimeout(ctx, 10*time.Second)
	defer cancelInfo()
	reportsStream, err := js.Stream(ctxInfo, queue.ReportsStream)
	if err != nil {
		t.Fatal(err)
	}
	rinfo, err := reportsStream.Info(ctxInfo, jetstream.WithSubjectFilter(queue.ReportsSubjectPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]int{}
	keys, err := bucket.List(ctxInfo, "repositories/", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if i := strings.LastIndex(k, "-"); i >= 0 {
			listed["sha256:"+strings.TrimSuffix(k[i+1:], ".json")]++
		}
	}
	rewrites := 0
	for _, h := range hooks {
		hex := strings.TrimPrefix(h.digest, "sha256:")
		if n := rinfo.State.Subjects[queue.ReportsSubjectPrefix+hex]; n != 1 {
			t.Errorf("%s: %d report events, want 1", h.digest, n)
		}
		if n := listed[h.digest]; n != 1 {
			t.Errorf("%s: listed %d times, want 1", h.digest, n)
		}
		// The same report written again after a lost ack is the same object.
		rewrites += max(s3.count("reports/sha256/"+hex+".json")-1, 0)
	}
	dlq, err := js.Stream(ctxInfo, queue.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := dlq.Info(ctxInfo); err != nil {
		t.Fatal(err)
	} else if info.State.Msgs != 0 {
		t.Errorf("%d dead letters, want none", info.State.Msgs)
	}
	checkReplicas(t, ctx, js, replicas)
	reconnects := map[string]uint64{}
	for name, conn := range conns {
		reconnects[name] = conn.Stats().Reconnects
	}
	t.Logf("%d webhooks acknowledged, %d reports stored (one report event and one listing entry each), "+
		"%d report objects written more than once (same content, after a lost ack), no dead letters; "+
		"reconnects per service %v; %.1fs in all",
		len(hooks), len(hooks), rewrites, reconnects, time.Since(begin).Seconds())
}

func pushTo(t *testing.T, host, repo, tag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// waitStored polls the report API until digest's report is there.
func waitStored(t *testing.T, resultsURL, digest string, within time.Duration) *report.Report {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(resultsURL + "/v1/reports/" + digest)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				var r report.Report
				if err := json.Unmarshal(body, &r); err != nil {
					t.Fatalf("report %s: %v", digest, err)
				}
				return &r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report for %s after %s", digest, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitReady(t *testing.T, urls []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, u := range urls {
		for {
			resp, err := http.Get(u + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz not 200 after %s", u, within)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (c *natsCluster) waitLeader(stream string) string {
	c.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if l := c.leader(stream); l != "" {
			return l
		}
	}
	c.t.Fatalf("%s has no leader", stream)
	return ""
}

// lead moves stream's leadership to node name: the leader steps down
// with name as its preferred successor.
func (c *natsCluster) lead(nc *nats.Conn, stream, name string) {
	c.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); c.leader(stream) != name; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: leadership did not move to %s", stream, name)
		}
		body := fmt.Sprintf(`{"placement":{"preferred":%q}}`, name)
		if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, []byte(body), 2*time.Second); err != nil {
			c.t.Logf("%s: step down: %v", stream, err)
		}
	}
}

// checkReplicas: every stream, KV bucket and object store has replicas.
// It returns their names.
func checkReplicas(t *testing.T, ctx context.Context, js jetstream.JetStream, replicas int) []string {
	t.Helper()
	lister := js.ListStreams(ctx)
	var names []string
	for info := range lister.Info() {
		names = append(names, info.Config.Name)
		peers := 0
		if info.Cluster != nil && info.Cluster.Leader != "" {
			peers = 1 + len(info.Cluster.Replicas)
		}
		if info.Config.Replicas != replicas || peers != replicas {
			t.Errorf("%s has %d replicas configured and %d peers, want %d", info.Config.Name, info.Config.Replicas, peers, replicas)
		}
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	for _, want := range []string{queue.JobsStream, queue.ReportsStream, queue.DLQStream, queue.EventsStream,
		"KV_" + scanner.ScannedBucket, "OBJ_customs-layer-cache", "OBJ_" + wire.ReportBodiesBucket, "KV_customs-verdicts"} {
		if !slices.Contains(names, want) {
			t.Errorf("no stream %s (have %v)", want, names)
		}
	}
	t.Logf("%d streams and buckets, %d replicas each: %v", len(names), replicas, names)
	return names
}

// waitCaughtUp waits until nd's own replica of each stream has the last
// sequence the stream's leader reports.
func waitCaughtUp(t *testing.T, ctx context.Context, js jetstream.JetStream, nd *natsNode, streams []string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	pending := slices.Clone(streams)
	for len(pending) > 0 {
		if time.Since(start) > within {
			var state []string
			for _, stream := range pending {
				local, ok := localStream(nd, stream)
				state = append(state, fmt.Sprintf("%s (its replica: %v, last sequence %d)", stream, ok, local.State.LastSeq))
			}
			t.Fatalf("node %s has not caught up after %s: %s", nd.name, within, strings.Join(state, "; "))
		}
		pending = slices.DeleteFunc(pending, func(stream string) bool {
			ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			s, err := js.Stream(ictx, stream)
			if err != nil {
				return false
			}
			local, ok := localStream(nd, stream)
			return ok && local.State.LastSeq == s.CachedInfo().State.LastSeq
		})
		if len(pending) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return time.Since(start)
}
