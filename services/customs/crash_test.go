package customs_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// buildScanner compiles cmd/scanner once per test run.
var buildScanner = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "customs-scanner-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "scanner")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/customs-scan/customs/services/scanner/cmd/scanner").CombinedOutput()
	if err != nil {
		return "", &exec.ExitError{Stderr: out}
	}
	return bin, nil
})

func startScannerProcess(t *testing.T, natsURL string, insecure []string, signingKey string) *exec.Cmd {
	t.Helper()
	bin, err := buildScanner()
	if err != nil {
		t.Fatalf("build scanner: %v", err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"CUSTOMS_NATS_URL="+natsURL,
		"CUSTOMS_SCANNER_ADDR=127.0.0.1:0",
		"CUSTOMS_SCANNER_ACK_WAIT=3s",
		"CUSTOMS_INSECURE_REGISTRIES="+strings.Join(insecure, ","),
		"CUSTOMS_REPORT_SIGNING_KEY="+signingKey,
	)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// blockBlob holds registry GETs of one blob until released, and says
// when the first one arrived: the scanner is then mid-scan.
type blockBlob struct {
	digest  atomic.Value // string
	arrived chan struct{}
	once    sync.Once
	release chan struct{}
}

func (b *blockBlob) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := b.digest.Load().(string)
		if r.Method == http.MethodGet && d != "" && strings.HasSuffix(r.URL.Path, "/blobs/"+d) {
			b.once.Do(func() { close(b.arrived) })
			select {
			case <-b.release:
			case <-r.Context().Done():
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// A scanner killed with SIGKILL in the middle of a scan loses nothing: the
// job is redelivered to another scanner process and exactly one report
// appears.
func TestKilledScannerJobIsRedeliveredOnce(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build the scanner")
	}
	block := &blockBlob{arrived: make(chan struct{}), release: make(chan struct{})}
	cfg := testConfig(t)
	cfg.Workers = 0 // scanners run as separate processes here
	cfg.RegistryMiddleware = block.wrap
	st := startStack(t, cfg)

	layer := scantest.Layer(t, scantest.DebianRootfs(t)...)
	block.digest.Store(layerDigest(t, layer))
	first := startScannerProcess(t, st.NATSURL, st.InsecureRegistries, st.ReportSigningKey)
	digest := push(t, st, "testbed/crash:latest", scantest.Image(t, layer))

	select {
	case <-block.arrived:
	case <-time.After(60 * time.Second):
		t.Fatal("the scanner never started pulling the layer")
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	close(block.release)

	startScannerProcess(t, st.NATSURL, st.InsecureRegistries, st.ReportSigningKey)
	r := waitReport(t, st.ResultsURL, digest)
	if r.Status != report.StatusComplete || len(r.Packages) == 0 {
		t.Fatalf("report after redelivery: %+v", r)
	}

	nc, err := nats.Connect(st.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cons, err := js.Consumer(ctx, queue.JobsStream, queue.ScannerConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered == 0 && info.Delivered.Consumer < 2 {
		t.Errorf("the job was not redelivered: %+v", info)
	}
	reports, err := js.Stream(ctx, queue.ReportsStream)
	if err != nil {
		t.Fatal(err)
	}
	rinfo, err := reports.Info(ctx, jetstream.WithSubjectFilter(queue.ReportsSubjectPrefix+strings.TrimPrefix(digest, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	if n := rinfo.State.Subjects[queue.ReportsSubjectPrefix+strings.TrimPrefix(digest, "sha256:")]; n != 1 {
		t.Errorf("%d report events for the digest, want exactly 1", n)
	}
}
