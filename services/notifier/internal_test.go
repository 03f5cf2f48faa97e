package notifier

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
)

// The defaults live in the env tags (what cmd/notifier parses) and in
// withDefaults (what Go callers that leave a field zero get): both give
// the same configuration.
func TestDefaultsAgree(t *testing.T) { svcmaintest.CheckDefaults(t, Config.withDefaults) }

func TestValidate(t *testing.T) {
	good := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(good, []byte(`
destinations:
  - {name: hook, type: mattermost, url: "https://chat.example.com/hooks/abc"}
routes:
  - destinations: [hook]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	type c = svcmaintest.Case[Config]
	svcmaintest.CheckValidate(t,
		c{Config: Config{AlertsFile: good}},
		c{Config: Config{AlertsFile: good, AckWait: 5 * time.Second, RetryWindow: time.Second, SentTTL: time.Hour}},
		c{Config: Config{}, Want: "CUSTOMS_ALERTS_FILE is required"},
		c{Config: Config{AlertsFile: filepath.Join(t.TempDir(), "missing.yaml")}, Want: "no such file"},
		c{Config: Config{AlertsFile: good, AckWait: time.Millisecond}, Want: "CUSTOMS_NOTIFIER_ACK_WAIT"},
		c{Config: Config{AlertsFile: good, SentTTL: time.Second}, Want: "CUSTOMS_NOTIFIER_SENT_TTL"},
		c{Config: Config{AlertsFile: good, RetryWindow: -time.Second}, Want: "CUSTOMS_NOTIFIER_RETRY_WINDOW"},
	)
}

// The signer follows the Standard Webhooks spec: its published test
// vector (secret, msg id, timestamp, payload → signature).
func TestSignatureSpecVector(t *testing.T) {
	tg, err := newTarget(Destination{Name: "siem", Type: TypeWebhook, url: "https://siem.example.com/", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := tg.signer.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"2", 2 * time.Second},
		{"0.5", 500 * time.Millisecond},
		{"", 0},
		{"soon", 0},
		{now.Add(3 * time.Second).Format(http.TimeFormat), 3 * time.Second},
	} {
		if got := retryAfterHeader(tc.header, now); got != tc.want {
			t.Errorf("Retry-After %q: %v, want %v", tc.header, got, tc.want)
		}
	}
	if got := discordRetryAfter([]byte(`{"message": "You are being rate limited.", "retry_after": 1.25, "global": false}`)); got != 1250*time.Millisecond {
		t.Errorf("discord retry_after: %v", got)
	}
}

func TestSentKey(t *testing.T) {
	hex := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if got, want := sentKey("sec-slack", "sha256:"+hex, "abc123"), "sec-slack.sha256_"+hex+".abc123"; got != want {
		t.Errorf("sentKey = %s, want %s", got, want)
	}
	// Outside the KV key alphabet: hashed, still distinct and valid.
	a, b := sentKey("d", "sha256:x", "id with spaces"), sentKey("d", "sha256:x", "id with spaces!")
	if a == b || !keyToken.MatchString(a[len("d.sha256_x."):]) {
		t.Errorf("sentKey of unusual ids: %s, %s", a, b)
	}
}
