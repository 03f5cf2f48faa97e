package customs_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// `customs alerts test` sends the sample alert to each destination of an
// alerts file and prints each answer, never the URL; exit 1 when one
// failed, and only the named destination with --destination.
func TestAlertsTestCommand(t *testing.T) {
	var slackHits, goneHits atomic.Int64
	slackSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slackHits.Add(1)
		_, _ = w.Write([]byte("ok"))
	}))
	defer slackSrv.Close()
	goneSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		goneHits.Add(1)
		http.Error(w, "no_service", http.StatusNotFound)
	}))
	defer goneSrv.Close()
	file := filepath.Join(t.TempDir(), "alerts.yaml")
	yaml := `destinations:
  - name: chat
    type: slack
    url_env: TEST_SLACK_URL
  - name: gone
    type: discord
    url: ` + goneSrv.URL + `/api/webhooks/1/SECRETgone
routes:
  - destinations: [chat, gone]
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := customsBin(t)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "TEST_SLACK_URL="+slackSrv.URL+"/services/T0/B0/SECRETslack")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("alerts", "test", "--alerts", file)
	var exit *exec.ExitError
	if !asExit(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1 (one destination refused); output:\n%s", err, out)
	}
	if !strings.Contains(out, "chat (slack): sent, answered 200") || !strings.Contains(out, "gone (discord): failed: answered 404 Not Found") {
		t.Errorf("output:\n%s", out)
	}
	if strings.Contains(out, "SECRET") {
		t.Errorf("the output shows a destination URL:\n%s", out)
	}
	out, err = run("alerts", "test", "--alerts", file, "--destination", "chat")
	if err != nil || !strings.Contains(out, "chat (slack): sent") || strings.Contains(out, "gone") {
		t.Errorf("--destination chat: %v\n%s", err, out)
	}
	if slackHits.Load() != 2 || goneHits.Load() != 1 {
		t.Errorf("requests: slack %d, gone %d; want 2 and 1", slackHits.Load(), goneHits.Load())
	}
}
