package notifier_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/customs-scan/customs/services/notifier"
)

// SendTest posts the sample alert once to each destination (or the one
// named) and reports each answer, without the URL.
func TestSendTest(t *testing.T) {
	ok := newReceiver(t, nil)
	gone := newReceiver(t, func(int) answer { return answer{Status: http.StatusNotFound} })
	hook := newReceiver(t, nil)
	file := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(file, []byte("destinations:\n"+destinationYAML("ok", "slack", ok.URL())+destinationYAML("gone", "teams", gone.URL())+
		destinationYAML("hook", "webhook", hook.URL(), "secret: "+testSecret)+"routes:\n  - destinations: [ok]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := notifier.LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	res, err := notifier.SendTest(context.Background(), cfg, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("%d results", len(res))
	}
	for _, r := range res {
		switch r.Destination {
		case "ok", "hook":
			if r.Err != nil || r.Status != http.StatusOK {
				t.Errorf("%s: status %d, err %v", r.Destination, r.Status, r.Err)
			}
		case "gone":
			if r.Err == nil || r.Status != http.StatusNotFound || strings.Contains(r.Err.Error(), "hooks") {
				t.Errorf("gone: status %d, err %v", r.Status, r.Err)
			}
		}
	}
	verifySignature(t, hook.Requests()[0], testSecret)
	if len(ok.Requests()) != 1 || len(gone.Requests()) != 1 {
		t.Error("want one request to each destination")
	}

	res, err = notifier.SendTest(context.Background(), cfg, "hook", nil)
	if err != nil || len(res) != 1 || len(hook.Requests()) != 2 {
		t.Errorf("--destination hook: %v, %v", res, err)
	}
	if _, err := notifier.SendTest(context.Background(), cfg, "nope", nil); err == nil {
		t.Error("an unknown destination was accepted")
	}
}
