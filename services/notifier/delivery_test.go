package notifier_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slack-go/slack"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/notifier"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// allProducts starts one receiver per destination type and an alerts
// file sending everything to all of them.
func allProducts(t *testing.T) (map[string]*receiver, string) {
	t.Helper()
	rs := map[string]*receiver{}
	yaml := "public_url: https://customs.example.com\ndestinations:\n"
	for _, typ := range []string{"slack", "teams", "mattermost", "discord", "googlechat", "webhook"} {
		status := http.StatusOK
		if typ == "discord" {
			status = http.StatusNoContent
		}
		rs[typ] = newReceiver(t, func(int) answer { return answer{Status: status} })
		var extra []string
		if typ == "webhook" {
			extra = append(extra, "secret: "+testSecret)
		}
		yaml += destinationYAML("to-"+typ, typ, rs[typ].URL(), extra...)
	}
	yaml += "routes:\n  - destinations: [to-slack, to-teams, to-mattermost, to-discord, to-googlechat, to-webhook]\n"
	return rs, yaml
}

// A 500-item alert reaches every product once, in its format and within
// its limits, shortened with "… and N more" (the webhook gets all 500,
// signed); the same alert again under another message id (a redelivery
// after the duplicate window) sends nothing more.
func TestOneMessagePerDestinationWithinLimits(t *testing.T) {
	rs, yaml := allProducts(t)
	h := startNotifier(t, yaml, notifier.Config{})
	huge := hugeAlert("huge-1", 500)
	h.publish(t, huge, huge.GetId())
	for typ, r := range rs {
		got := r.waitAccepted(t, 1, 20*time.Second)
		checkProduct(t, typ, got[0], huge)
	}

	// The same news again, as a redelivery the stream did not drop, then
	// a small alert: each destination handles its messages in order, so
	// once the small one is in, the repeat was handled before it.
	h.publish(t, huge, huge.GetId()+"-redelivered")
	small := newAlert("small-1", "payments/web", vuln("CVE-2026-1", "HIGH", "openssl"))
	h.publish(t, small, small.GetId())
	for typ, r := range rs {
		got := r.waitAccepted(t, 2, 20*time.Second)
		if len(got) != 2 || !strings.Contains(string(got[1].Body), "payments/web") {
			t.Errorf("%s: %d messages, want the huge alert once and then the small one", typ, len(got))
		}
	}
	time.Sleep(300 * time.Millisecond)
	for typ, r := range rs {
		if n := len(r.Requests()); n != 2 {
			t.Errorf("%s got %d requests, want 2", typ, n)
		}
	}
	if got := h.metric(t, `customs_notifier_messages_total{destination="to-slack",result="sent"}`); got != "2" {
		t.Errorf("sent metric for to-slack = %q, want 2", got)
	}
	h.checkNoSecrets(t, slices.Collect(mapValues(rs))...)
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

var moreRE = regexp.MustCompile(`and (\d+) more new items`)

// checkMore finds "… and N more" in text and checks N is what is left.
func checkMore(t *testing.T, typ, text string, total int) {
	t.Helper()
	m := moreRE.FindStringSubmatch(text)
	if m == nil {
		t.Errorf("%s: no \"… and N more\" in the message", typ)
		return
	}
	if n, _ := strconv.Atoi(m[1]); n <= 0 || n >= total {
		t.Errorf("%s: \"and %s more\" of %d", typ, m[1], total)
	}
}

func runes(s string) int { return utf8.RuneCountInString(s) }

// checkProduct validates one received message against its product's
// shape and limits.
func checkProduct(t *testing.T, typ string, req request, a *customsv1.Alert) {
	t.Helper()
	body := req.Body
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", typ, ct)
	}
	link := "https://customs.example.com/v1/reports/" + a.GetDigest()
	total := len(a.GetNewItems())
	switch typ {
	case "slack":
		var msg slack.WebhookMessage // slack-go's decoder checks block types
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatalf("slack: %v", err)
		}
		if msg.Text == "" || msg.Blocks == nil {
			t.Fatal("slack: no fallback text or no blocks")
		}
		var raw struct {
			Blocks []struct {
				Type   string `json:"type"`
				Text   *struct{ Type, Text string }
				Fields []struct{ Type, Text string }
				Elems  []struct{ Type, Text string } `json:"elements"`
			} `json:"blocks"`
		}
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatal(err)
		}
		if n := len(raw.Blocks); n == 0 || n > 50 {
			t.Errorf("slack: %d blocks", n)
		}
		var all strings.Builder
		chars := 0
		for i, b := range raw.Blocks {
			switch b.Type {
			case "header":
				if b.Text == nil || b.Text.Type != "plain_text" || runes(b.Text.Text) > 150 {
					t.Errorf("slack: header %d is not plain_text ≤ 150", i)
				}
			case "section":
				if b.Text != nil && runes(b.Text.Text) > 3000 {
					t.Errorf("slack: section %d text has %d characters", i, runes(b.Text.Text))
				}
				if len(b.Fields) > 10 {
					t.Errorf("slack: section %d has %d fields", i, len(b.Fields))
				}
				for _, f := range b.Fields {
					if runes(f.Text) > 2000 {
						t.Errorf("slack: a field has %d characters", runes(f.Text))
					}
					chars += runes(f.Text)
					all.WriteString(f.Text + "\n")
				}
			case "context":
			default:
				t.Errorf("slack: block type %q", b.Type)
			}
			if b.Text != nil {
				chars += runes(b.Text.Text)
				all.WriteString(b.Text.Text + "\n")
			}
			for _, e := range b.Elems {
				chars += runes(e.Text)
				all.WriteString(e.Text + "\n")
			}
		}
		if chars > 12000 {
			t.Errorf("slack: blocks hold %d characters (Slack refuses about 13,200)", chars)
		}
		if raw.Blocks[0].Type != "header" {
			t.Error("slack: the first block is not the header")
		}
		checkMore(t, typ, all.String(), total)
		if !strings.Contains(all.String(), "<"+link+"|Open the report>") {
			t.Error("slack: no link to the report")
		}
		if strings.Contains(all.String(), "<b>") {
			t.Error("slack: a value's < was not escaped")
		}
	case "teams":
		var env struct {
			Type        string `json:"type"`
			Attachments []struct {
				ContentType string `json:"contentType"`
				Content     struct {
					Type    string           `json:"type"`
					Version string           `json:"version"`
					Body    []map[string]any `json:"body"`
					Actions []map[string]any `json:"actions"`
				} `json:"content"`
			} `json:"attachments"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("teams: %v", err)
		}
		if env.Type != "message" || len(env.Attachments) != 1 || env.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" {
			t.Fatalf("teams: envelope %+v", env)
		}
		card := env.Attachments[0].Content
		if card.Type != "AdaptiveCard" || card.Version != "1.4" {
			t.Errorf("teams: card type %q version %q", card.Type, card.Version)
		}
		var texts strings.Builder
		sawFacts := false
		for _, el := range card.Body {
			switch el["type"] {
			case "TextBlock":
				s, _ := el["text"].(string)
				texts.WriteString(s + "\n")
			case "FactSet":
				facts, _ := el["facts"].([]any)
				for _, f := range facts {
					fm, _ := f.(map[string]any)
					if _, ok := fm["title"].(string); !ok {
						t.Errorf("teams: a fact without a title: %v", fm)
					}
					if _, ok := fm["value"].(string); !ok {
						t.Errorf("teams: a fact without a value: %v", fm)
					}
				}
				sawFacts = len(facts) > 0
			default:
				t.Errorf("teams: body element type %v", el["type"])
			}
		}
		if !sawFacts {
			t.Error("teams: no FactSet")
		}
		checkMore(t, typ, texts.String(), total)
		if len(card.Actions) != 1 || card.Actions[0]["type"] != "Action.OpenUrl" || card.Actions[0]["url"] != link {
			t.Errorf("teams: actions %v", card.Actions)
		}
		if len(body) > 28000 {
			t.Errorf("teams: %d bytes", len(body))
		}
	case "mattermost":
		var msg struct {
			Text        string `json:"text"`
			Attachments []struct {
				Fallback, Color, Title, Text string
				TitleLink                    string `json:"title_link"`
				Fields                       []struct {
					Title, Value string
					Short        bool
				}
			} `json:"attachments"`
			Blocks any `json:"blocks"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatalf("mattermost: %v", err)
		}
		if msg.Text == "" || len(msg.Attachments) != 1 || msg.Blocks != nil {
			t.Fatalf("mattermost: want text and one attachment (no blocks): %s", body[:min(len(body), 300)])
		}
		att := msg.Attachments[0]
		if att.Fallback == "" || !strings.HasPrefix(att.Color, "#") || len(att.Fields) == 0 || att.TitleLink != link {
			t.Errorf("mattermost: attachment %+v", att)
		}
		checkMore(t, typ, att.Text, total)
		if runes(string(body)) > 16383 {
			t.Errorf("mattermost: %d characters", runes(string(body)))
		}
	case "discord":
		var msg struct {
			Content string `json:"content"`
			Embeds  []struct {
				Title, Description, URL string
				Fields                  []struct{ Name, Value string }
				Footer                  struct{ Text string }
			} `json:"embeds"`
			AllowedMentions struct {
				Parse []string `json:"parse"`
			} `json:"allowed_mentions"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatalf("discord: %v", err)
		}
		if runes(msg.Content) > 2000 || len(msg.Embeds) == 0 || len(msg.Embeds) > 10 {
			t.Fatalf("discord: content %d characters, %d embeds", runes(msg.Content), len(msg.Embeds))
		}
		totalChars := 0
		for _, e := range msg.Embeds {
			if runes(e.Title) > 256 || runes(e.Description) > 4096 || len(e.Fields) > 25 {
				t.Errorf("discord: embed title %d, description %d, %d fields", runes(e.Title), runes(e.Description), len(e.Fields))
			}
			totalChars += runes(e.Title) + runes(e.Description) + runes(e.Footer.Text)
			for _, f := range e.Fields {
				if runes(f.Name) > 256 || runes(f.Value) > 1024 {
					t.Errorf("discord: field %q: name %d, value %d", f.Name, runes(f.Name), runes(f.Value))
				}
				totalChars += runes(f.Name) + runes(f.Value)
			}
		}
		if totalChars > 6000 {
			t.Errorf("discord: embeds hold %d characters", totalChars)
		}
		if msg.AllowedMentions.Parse == nil || len(msg.AllowedMentions.Parse) != 0 {
			t.Error("discord: mentions are not disabled")
		}
		checkMore(t, typ, msg.Embeds[0].Description, total)
		if msg.Embeds[0].URL != link {
			t.Errorf("discord: embed url %q", msg.Embeds[0].URL)
		}
	case "googlechat":
		if len(body) > 32000 {
			t.Errorf("googlechat: %d bytes", len(body))
		}
		var msg struct {
			CardsV2 []struct {
				CardID string `json:"cardId"`
				Card   struct {
					Header   struct{ Title string }
					Sections []struct {
						Widgets []map[string]any
					}
				}
			} `json:"cardsV2"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatalf("googlechat: %v", err)
		}
		if len(msg.CardsV2) != 1 || msg.CardsV2[0].Card.Header.Title == "" || len(msg.CardsV2[0].Card.Sections) == 0 {
			t.Fatalf("googlechat: %s", body[:min(len(body), 300)])
		}
		checkMore(t, typ, string(body), total)
		if !strings.Contains(string(body), link) {
			t.Error("googlechat: no link to the report")
		}
	case "webhook":
		verifySignature(t, req, testSecret)
		var b notifier.WebhookBody
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatalf("webhook: %v", err)
		}
		if b.Schema != "customs.alert/v1" || b.ID != a.GetId() || b.Digest != a.GetDigest() || len(b.NewItems) != total || b.ReportURL != link {
			t.Errorf("webhook: schema %q id %q digest %q, %d items, report_url %q", b.Schema, b.ID, b.Digest, len(b.NewItems), b.ReportURL)
		}
		if b.Quarantine == nil && a.GetQuarantine() != nil {
			t.Error("webhook: quarantine part lost")
		}
	default:
		t.Fatalf("no check for %s", typ)
	}
}

// verifySignature recomputes the Standard Webhooks signature from the
// secret, independently of the notifier's signer.
func verifySignature(t *testing.T, req request, secret string) {
	t.Helper()
	id, ts, sig := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature")
	if id == "" || ts == "" || sig == "" {
		t.Fatalf("webhook: headers id %q timestamp %q signature %q", id, ts, sig)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		t.Errorf("webhook: timestamp %q is not now in unix seconds", ts)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(req.Body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !slices.Contains(strings.Fields(sig), want) {
		t.Errorf("webhook: signature %q, want %q", sig, want)
	}
}

// An alert's finding shows its rule, path and title, and nothing the
// notifier does not know of: a field results might add later (planted
// here as an unknown protobuf field) is never rendered, and the webhook
// body has exactly the documented keys.
func TestRenderedFieldsOnly(t *testing.T) {
	rs, yaml := allProducts(t)
	h := startNotifier(t, yaml, notifier.Config{})
	a := newAlert("finding-1", "payments/api", &customsv1.AlertItem{
		Kind: "secret", Id: "aws-access-key-id", Severity: "HIGH", Path: "app/.env", Title: "AWS access key",
	})
	data, err := proto.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	const canary = "CANARY-not-a-field-of-v1"
	data = protowire.AppendTag(data, 99, protowire.BytesType)
	data = protowire.AppendString(data, canary)
	h.publishRaw(t, a.GetDigest(), data, a.GetId())
	for typ, r := range rs {
		body := string(r.waitAccepted(t, 1, 20*time.Second)[0].Body)
		for _, want := range []string{"app/.env", "AWS access key", "aws-access-key-id", "payments/api", "1.2.3", "sha256:" + strings.TrimPrefix(a.GetDigest(), "sha256:")[:12], "linux/amd64"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: %q not in the message", typ, want)
			}
		}
		if strings.Contains(body, canary) {
			t.Errorf("%s: renders a field it does not know", typ)
		}
	}
	var b map[string]any
	if err := json.Unmarshal(rs["webhook"].Accepted()[0].Body, &b); err != nil {
		t.Fatal(err)
	}
	allowed := []string{"schema", "id", "kind", "at", "registry", "repository", "digest", "tags", "platform", "verdict",
		"previous_verdict", "verdict_rule", "verdict_reason", "previous_digest", "first_push", "counts", "new_items",
		"quarantine", "report_path", "report_url", "db_version"}
	for k := range b {
		if !slices.Contains(allowed, k) {
			t.Errorf("webhook body has key %q", k)
		}
	}
	its, _ := b["new_items"].([]any)
	if len(its) != 1 {
		t.Fatalf("webhook: new_items %v", b["new_items"])
	}
	item, _ := its[0].(map[string]any)
	want := map[string]any{"kind": "secret", "id": "aws-access-key-id", "severity": "HIGH", "path": "app/.env", "title": "AWS access key"}
	if fmt.Sprint(item) != fmt.Sprint(want) {
		t.Errorf("webhook item %v, want exactly %v", item, want)
	}
}

// A receiver answering 429 with Retry-After: 2 (Slack) or a JSON
// retry_after (Discord) gets the message once, not before it said.
func TestRateLimitedWaitsRetryAfter(t *testing.T) {
	slackR := newReceiver(t, func(n int) answer {
		if n == 0 {
			return answer{Status: http.StatusTooManyRequests, Header: map[string]string{"Retry-After": "2"}, Body: "rate_limited"}
		}
		return answer{Status: http.StatusOK, Body: "ok"}
	})
	discordR := newReceiver(t, func(n int) answer {
		if n == 0 {
			return answer{Status: http.StatusTooManyRequests, Header: map[string]string{"Content-Type": "application/json"},
				Body: `{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}`}
		}
		return answer{Status: http.StatusNoContent}
	})
	h := startNotifier(t, "destinations:\n"+destinationYAML("slack", "slack", slackR.URL())+destinationYAML("discord", "discord", discordR.URL())+
		"routes:\n  - destinations: [slack, discord]\n", notifier.Config{})
	a := newAlert("limited-1", "payments/api", vuln("CVE-2026-2", "CRITICAL", "openssl"))
	h.publish(t, a, a.GetId())
	for _, tc := range []struct {
		r    *receiver
		wait time.Duration
	}{{slackR, 2 * time.Second}, {discordR, 1500 * time.Millisecond}} {
		tc.r.waitAccepted(t, 1, 20*time.Second)
		reqs := tc.r.Requests()
		if len(reqs) != 2 {
			t.Fatalf("%s: %d requests, want the 429 and one retry", tc.r.Path, len(reqs))
		}
		if gap := reqs[1].At.Sub(reqs[0].Done); gap < tc.wait {
			t.Errorf("%s: retried %v after the 429, before the %v it asked for", tc.r.Path, gap, tc.wait)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(slackR.Requests()) + len(discordR.Requests()); n != 4 {
		t.Errorf("%d requests in all, want 4", n)
	}
	if got := h.metric(t, `customs_notifier_messages_total{destination="slack",result="retried"}`); got != "1" {
		t.Errorf("retried metric %q, want 1", got)
	}
}

// A destination that refuses connections, then answers 500, then comes
// back gets the message once it is back, past the retry window (the event
// is redelivered), and the destination that took it at once does not get
// it again.
func TestDownDestinationGetsItWhenBack(t *testing.T) {
	// A port nothing listens on yet: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	down := &receiver{arrived: make(chan struct{}, 1024), Path: "/hooks/" + secretToken(t.Name()), respond: func(int) answer {
		if time.Since(start) < 3*time.Second {
			return answer{Status: http.StatusInternalServerError}
		}
		return answer{Status: http.StatusOK}
	}}
	steady := newReceiver(t, nil)
	h := startNotifier(t, "destinations:\n"+destinationYAML("down", "mattermost", "http://"+addr+down.Path)+
		destinationYAML("steady", "mattermost", steady.URL())+"routes:\n  - destinations: [down, steady]\n",
		notifier.Config{RetryWindow: time.Second})
	a := newAlert("outage-1", "payments/api", vuln("CVE-2026-3", "HIGH", "zlib"))
	h.publish(t, a, a.GetId())
	steady.waitAccepted(t, 1, 10*time.Second)

	// Back after 1.5 s, answering 500 until 3 s.
	time.Sleep(time.Until(start.Add(1500 * time.Millisecond)))
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	down.srv = httptest.NewUnstartedServer(http.HandlerFunc(down.serve))
	down.srv.Listener.Close()
	down.srv.Listener = ln2
	down.srv.Start()
	t.Cleanup(down.srv.Close)

	got := down.waitAccepted(t, 1, 30*time.Second)
	if got[0].At.Sub(start) < 3*time.Second {
		t.Errorf("accepted at %v, while it answered 500", got[0].At.Sub(start))
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(down.Accepted()); n != 1 {
		t.Errorf("down destination got the message %d times", n)
	}
	if n := len(steady.Requests()); n != 1 {
		t.Errorf("steady destination got %d requests, want 1 (the redelivered event must not be sent to it again)", n)
	}
	if !strings.Contains(h.logs.String(), "alert event left for redelivery") {
		t.Error("the event was never left for redelivery: the test did not cross the retry window")
	}
	h.checkNoSecrets(t, down, steady)
}

// A 404 is not retried: one dead letter naming the destination and the
// status (not the URL), and the event is settled.
func TestRefusedDestinationIsDeadLettered(t *testing.T) {
	gone := newReceiver(t, func(int) answer { return answer{Status: http.StatusNotFound, Body: "no_service"} })
	ok := newReceiver(t, nil)
	h := startNotifier(t, "destinations:\n"+destinationYAML("gone", "slack", gone.URL())+destinationYAML("ok", "googlechat", ok.URL())+
		"routes:\n  - destinations: [gone, ok]\n", notifier.Config{RetryWindow: time.Second})
	a := newAlert("refused-1", "payments/api", vuln("CVE-2026-4", "HIGH", "curl"))
	h.publish(t, a, a.GetId())
	dead := queuetest.WaitMsgs(t, h.js, queue.DLQStream, 1)
	if len(dead) != 1 || dead[0].Subject != notifier.DeadAlertSubject {
		t.Fatalf("dead letters %v", dead)
	}
	hd := dead[0].Header
	if hd.Get("Customs-Dead-Destination") != "gone" || hd.Get("Customs-Dead-Status") != "404" ||
		!strings.Contains(hd.Get("Customs-Dead-Reason"), "404") || !strings.HasPrefix(hd.Get("Customs-Dead-Subject"), queue.AlertsSubject) {
		t.Errorf("dead letter headers %v", hd)
	}
	for k, v := range hd {
		if strings.Contains(strings.Join(v, " "), strings.TrimPrefix(gone.Path, "/hooks/")) {
			t.Errorf("dead letter header %s shows the URL", k)
		}
	}
	var got customsv1.Alert
	if err := proto.Unmarshal(dead[0].Data, &got); err != nil || got.GetId() != a.GetId() {
		t.Errorf("dead letter body is not the alert: %v", err)
	}
	ok.waitAccepted(t, 1, 10*time.Second)
	// No retry storm: after a few retry windows, still one request.
	waitSettled(t, h.js)
	time.Sleep(2 * time.Second)
	if n := len(gone.Requests()); n != 1 {
		t.Errorf("the 404 destination got %d requests, want 1", n)
	}
	if got := h.metric(t, `customs_notifier_messages_total{destination="gone",result="failed"}`); got != "1" {
		t.Errorf("failed metric %q", got)
	}
	if n := len(queuetest.WaitMsgs(t, h.js, queue.DLQStream, 1)); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
	h.checkNoSecrets(t, gone, ok)
}

// waitSettled waits until the notifier consumer has nothing pending.
func waitSettled(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := js.Consumer(context.Background(), queue.EventsStream, notifier.Consumer)
		if err == nil {
			info, err := c.Info(context.Background())
			if err == nil && info.NumAckPending == 0 && info.NumPending == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the notifier consumer still has events pending")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A destination that takes 3 s to answer does not hold up another's
// messages: the fast one has both before the slow one answered the first.
func TestSlowDestinationDoesNotDelayOthers(t *testing.T) {
	slow := newReceiver(t, func(int) answer { return answer{Status: http.StatusOK, Delay: 3 * time.Second} })
	fast := newReceiver(t, nil)
	h := startNotifier(t, "destinations:\n"+destinationYAML("slow", "teams", slow.URL())+destinationYAML("fast", "teams", fast.URL())+
		"routes:\n  - destinations: [slow, fast]\n", notifier.Config{})
	for i := range 2 {
		a := newAlert(fmt.Sprintf("slow-%d", i), "payments/api", vuln("CVE-2026-5", "HIGH", "glibc"))
		h.publish(t, a, a.GetId())
	}
	f := fast.waitAccepted(t, 2, 20*time.Second)
	s := slow.waitAccepted(t, 2, 20*time.Second)
	if !f[1].At.Before(s[0].Done) {
		t.Errorf("the fast destination got its second message at %v, after the slow one answered its first at %v",
			f[1].At.Format(time.StampMilli), s[0].Done.Format(time.StampMilli))
	}
}

// Routes: a MEDIUM-only alert is filtered out by min_severity HIGH,
// repository patterns pick destinations.
func TestRoutesPickDestinations(t *testing.T) {
	pay, pub := newReceiver(t, nil), newReceiver(t, nil)
	h := startNotifier(t, "destinations:\n"+destinationYAML("payments", "slack", pay.URL())+destinationYAML("public", "discord", pub.URL())+`routes:
  - repositories: ["payments/*"]
    min_severity: HIGH
    destinations: [payments]
  - repositories: ["public/**"]
    destinations: [public]
`, notifier.Config{})
	medium := newAlert("route-medium", "payments/api", vuln("CVE-2026-6", "MEDIUM", "bash"))
	public := newAlert("route-public", "public/web/site", vuln("CVE-2026-7", "LOW", "bash"))
	high := newAlert("route-high", "payments/api", vuln("CVE-2026-8", "HIGH", "bash"), vuln("CVE-2026-9", "MEDIUM", "bash"))
	for _, a := range []*customsv1.Alert{medium, public, high} {
		h.publish(t, a, a.GetId())
	}
	p := pay.waitAccepted(t, 1, 20*time.Second)
	q := pub.waitAccepted(t, 1, 20*time.Second)
	waitSettled(t, h.js)
	if len(pay.Requests()) != 1 || !strings.Contains(string(p[0].Body), "CVE-2026-8") || strings.Contains(string(p[0].Body), "CVE-2026-9") {
		t.Errorf("payments got %d messages; want only the HIGH one, without its MEDIUM item", len(pay.Requests()))
	}
	if len(pub.Requests()) != 1 || !strings.Contains(string(q[0].Body), "public/web/site") {
		t.Errorf("public got %d messages", len(pub.Requests()))
	}
}

// A notifier stopped while one destination is down and started again
// sends that destination its message, and does not send the other one
// again.
func TestRestartSendsOnlyWhatWasNotSent(t *testing.T) {
	var up = make(chan struct{})
	down := newReceiver(t, func(int) answer {
		select {
		case <-up:
			return answer{Status: http.StatusOK}
		default:
			return answer{Status: http.StatusServiceUnavailable}
		}
	})
	steady := newReceiver(t, nil)
	yaml := "destinations:\n" + destinationYAML("down", "slack", down.URL()) + destinationYAML("steady", "slack", steady.URL()) +
		"routes:\n  - destinations: [down, steady]\n"
	srv := queuetest.Start(t)
	_, js := srv.Connect(t)
	if err := queue.EnsureStreams(context.Background(), js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	cfg := notifier.Config{AckWait: 2 * time.Second}
	stop1 := runNotifierOn(t, js, yaml, cfg)
	a := newAlert("restart-1", "payments/api", vuln("CVE-2026-10", "CRITICAL", "sudo"))
	data, _ := proto.Marshal(a)
	if _, err := js.Publish(context.Background(), queue.AlertsSubject+strings.TrimPrefix(a.GetDigest(), "sha256:"), data, jetstream.WithMsgID(a.GetId())); err != nil {
		t.Fatal(err)
	}
	steady.waitAccepted(t, 1, 10*time.Second)
	for len(down.Requests()) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	stop1()
	close(up)
	stop2 := runNotifierOn(t, js, yaml, cfg)
	defer stop2()
	down.waitAccepted(t, 1, 30*time.Second)
	waitSettled(t, js)
	if n := len(steady.Requests()); n != 1 {
		t.Errorf("steady destination got %d requests across the restart, want 1", n)
	}
	if n := len(down.Accepted()); n != 1 {
		t.Errorf("down destination accepted %d, want 1", n)
	}
}

// runNotifierOn runs a notifier on js until the returned stop is called.
func runNotifierOn(t *testing.T, js jetstream.JetStream, yaml string, cfg notifier.Config) (stop func()) {
	t.Helper()
	file := t.TempDir() + "/alerts.yaml"
	if err := writeFile(file, yaml); err != nil {
		t.Fatal(err)
	}
	cfg.AlertsFile = file
	svc, err := notifier.New(cfg, notifier.Deps{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, ln) }()
	stopped := false
	return func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
	}
}
