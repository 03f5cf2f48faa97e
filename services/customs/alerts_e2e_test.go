package customs_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/scan/analyzer/malware"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/services/customs"
	"github.com/customs-scan/customs/services/notifier"
)

// slackReceiver records the bodies Slack's incoming webhook would get.
type slackReceiver struct {
	mu     sync.Mutex
	bodies []string
}

func (s *slackReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var msg struct {
		Text   string            `json:"text"`
		Blocks []json.RawMessage `json:"blocks"`
	}
	if json.Unmarshal(b, &msg) != nil || msg.Text == "" || len(msg.Blocks) == 0 || len(msg.Blocks) > 50 {
		http.Error(w, "invalid_blocks", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

func (s *slackReceiver) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.bodies...)
}

// settledAlerts waits until results has handled every report event and
// the notifier every alert: what would be sent, has been.
func settledAlerts(t *testing.T, st *customs.Stack) {
	t.Helper()
	js := stackJetStream(t, st)
	ctx := context.Background()
	idle := func(stream, consumer string) bool {
		c, err := js.Consumer(ctx, stream, consumer)
		if err != nil {
			return false
		}
		ci, err := c.Info(ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	}
	waitUntil(t, "reports and alerts handled", 60*time.Second, func() bool {
		return idle(queue.ReportsStream, queue.ResultsConsumer) && idle(queue.EventsStream, notifier.Consumer) &&
			idle(queue.JobsStream, queue.ScannerConsumer)
	})
}

// Chat alerts end to end on customs up: one message per news, none when
// nothing is new, never a secret.
func TestChatAlertsOnlyForWhatIsNew(t *testing.T) {
	slack := &slackReceiver{}
	recv := httptest.NewServer(slack)
	t.Cleanup(recv.Close)
	alerts := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(alerts, []byte(`public_url: https://customs.example.com
destinations:
  - name: sec-slack
    type: slack
    url: `+recv.URL+`/services/T000/B000/XXXX
routes:
  - min_severity: HIGH
    destinations: [sec-slack]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	db1 := vulndbtest.Build(t, t0, "osv/other/GHSA-p6mc-m468-83gw.json")
	db2 := vulndbtest.Build(t, t0.Add(24*time.Hour), "osv/other/GHSA-p6mc-m468-83gw.json", "osv/other/GHSA-35jh-r3h4-6jhm.json")
	cfg := testConfig(t)
	cfg.AlertsFile = alerts
	cfg.NotifierAddr = "127.0.0.1:0"
	cfg.DBPath = writeDB(t, db1)
	st := startStack(t, cfg)

	keyID, secret := randomAWSKey(t)
	base := scantest.Layer(t, scantest.AlpineRootfs(t)...)
	threats := scantest.Layer(t, scantest.Reg("opt/app/eicar.com", string(malware.EICAR())),
		scantest.Reg("app/.env", "AWS_ACCESS_KEY_ID="+keyID+"\nAWS_SECRET_ACCESS_KEY="+secret+"\n"))
	lodash := func(version string) v1.Layer {
		return scantest.Layer(t, scantest.Reg("srv/app/node_modules/lodash/package.json", `{"name": "lodash", "version": "`+version+`"}`))
	}
	step := func(what string, want int) []string {
		t.Helper()
		settledAlerts(t, st)
		got := slack.messages()
		if len(got) != want {
			t.Fatalf("%s: %d messages, want %d:\n%s", what, len(got), want, strings.Join(got, "\n"))
		}
		return got
	}

	// 1. Malware: one message naming repository, digest and verdict.
	pushed := time.Now()
	d1 := push(t, st, "shop/app:1", scantest.Image(t, base, threats))
	waitUntil(t, "the first message", 60*time.Second, func() bool { return len(slack.messages()) > 0 })
	t.Logf("push → chat message: %.1fs", time.Since(pushed).Seconds())
	msg := step("malware push", 1)[0]
	for _, want := range []string{"shop/app", strings.TrimPrefix(d1, "sha256:")[:12], "quarantine", "eicar", "https://customs.example.com/"} {
		if !strings.Contains(msg, want) {
			t.Errorf("first message lacks %q:\n%s", want, msg)
		}
	}
	// 2. An unchanged rebuild under the same tag (a new digest): nothing new.
	rebuilt := scantest.Image(t, base, threats)
	cf, _ := rebuilt.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{"build": "2"}
	rebuilt = withConfig(t, rebuilt, cf)
	push(t, st, "shop/app:1", rebuilt)
	step("unchanged rebuild", 1)
	// 3. One more HIGH vulnerability: one message with just that one.
	d3 := push(t, st, "shop/app:1", scantest.Image(t, base, threats, lodash("4.17.18")))
	waitReport(t, st.ResultsURL, d3)
	msg = step("one more HIGH", 2)[1]
	if !strings.Contains(msg, "GHSA-p6mc-m468-83gw") || !strings.Contains(msg, "(1 new)") || strings.Contains(msg, "• *HIGH* malware") {
		t.Errorf("third message should list only the new vulnerability:\n%s", msg)
	}
	// 4. A clean image (not running as root either): no message.
	clean := scantest.Image(t, base)
	ccf, _ := clean.ConfigFile()
	ccf = ccf.DeepCopy()
	ccf.Config.User = "10001"
	push(t, st, "shop/clean:1", withConfig(t, clean, ccf))
	step("clean image", 2)
	// 5. A database update that adds a vulnerability to the stored image.
	js := stackJetStream(t, st)
	if _, _, err := vulndist.Publish(context.Background(), js, db2); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the re-match message", 60*time.Second, func() bool { return len(slack.messages()) >= 3 })
	msg = step("database update", 3)[2]
	if !strings.Contains(msg, "GHSA-35jh-r3h4-6jhm") || !strings.Contains(msg, strings.TrimPrefix(d3, "sha256:")[:12]) {
		t.Errorf("re-match message:\n%s", msg)
	}
	for i, m := range slack.messages() {
		if strings.Contains(m, secret) || strings.Contains(m, keyID) {
			t.Errorf("message %d carries the planted key", i)
		}
	}
}

func withConfig(t *testing.T, img v1.Image, cf *v1.ConfigFile) v1.Image {
	t.Helper()
	out, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
