package notifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"golang.org/x/time/rate"
)

// requestTimeout bounds one POST: Standard Webhooks asks receivers to
// answer within 15–30 s, chat services answer in well under that.
const requestTimeout = 30 * time.Second

// sendResult is the outcome of one POST.
type sendResult struct {
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Retry: worth trying again (429, 408, 5xx, no answer), after at least
	// RetryAfter when the receiver said so.
	Retry      bool
	RetryAfter time.Duration
	// Err describes a failure without the URL (it is the credential).
	Err error
}

func (r sendResult) ok() bool { return r.Err == nil }

// target is a destination ready to send to.
type target struct {
	Destination
	limiter *rate.Limiter
	signer  *standardwebhooks.Webhook
}

func newTarget(d Destination) (*target, error) {
	t := &target{Destination: d}
	r := d.RatePerSecond
	if r <= 0 {
		r = defaultRates[d.Type]
	}
	// A burst of one second's worth: chat services count messages per
	// second, and a larger burst after a quiet hour is what gets a 429.
	t.limiter = rate.NewLimiter(rate.Limit(r), max(1, int(math.Floor(r))))
	if d.Type == TypeWebhook {
		key, err := decodeSecret(d.secret)
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", d.Name, err)
		}
		if t.signer, err = standardwebhooks.NewWebhookRaw(key); err != nil {
			return nil, fmt.Errorf("destination %s: %w", d.Name, err)
		}
	}
	return t, nil
}

// newHTTPClient does not follow redirects: a webhook URL that redirects is
// a configuration error, and the signed body and the URL's credential
// stay with the host the operator named.
func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	return &http.Client{
		Transport: tr,
		Timeout:   requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// post sends body once, signed for a webhook destination (msgID is the
// webhook-id: the same on every attempt, so receivers can drop repeats).
// It does not wait for the rate limiter.
func (t *target) post(ctx context.Context, client *http.Client, body []byte, msgID string) sendResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return sendResult{Err: errors.New("cannot build the request (the URL is invalid)")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "customs-notifier")
	if t.signer != nil {
		now := time.Now()
		sig, err := t.signer.Sign(msgID, now, body)
		if err != nil {
			return sendResult{Err: fmt.Errorf("sign: %w", err)}
		}
		req.Header.Set(standardwebhooks.HeaderWebhookID, msgID)
		req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	}
	resp, err := client.Do(req)
	if err != nil {
		return sendResult{Retry: true, Err: errors.New(describeTransportError(err))}
	}
	defer resp.Body.Close()
	// Read a little (Discord's 429 says retry_after in JSON), drain the
	// rest so the connection is reused. The body is never logged.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	res := sendResult{Status: resp.StatusCode}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return res
	case code == http.StatusTooManyRequests:
		res.Retry = true
		res.RetryAfter = max(retryAfterHeader(resp.Header.Get("Retry-After"), time.Now()), discordRetryAfter(head))
	case code == http.StatusRequestTimeout || code >= 500:
		res.Retry = true
		res.RetryAfter = retryAfterHeader(resp.Header.Get("Retry-After"), time.Now())
	}
	res.Err = fmt.Errorf("answered %s", resp.Status)
	if resp.Status == "" {
		res.Err = fmt.Errorf("answered %d", resp.StatusCode)
	}
	return res
}

// describeTransportError says why no answer came, without the URL that
// *url.Error quotes.
func describeTransportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer in time"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		// "dial tcp 10.0.0.1:443: connect: connection refused": the
		// address, no path or query.
		return oe.Error()
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return "cannot resolve the destination's host"
	}
	return "request failed"
}

// shutdownGrace is how long a POST under way may finish once the service
// is stopping: cut short, a message the destination got would not be
// recorded as sent and would go out again after the restart.
const shutdownGrace = 5 * time.Second

// postGraceful is post, with the request outliving ctx by shutdownGrace.
func (t *target) postGraceful(ctx context.Context, client *http.Client, body []byte, msgID string) sendResult {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(shutdownGrace, cancel) })
	defer stop()
	return t.post(rctx, client, body, msgID)
}

// retryAfterHeader reads Retry-After: seconds or an HTTP date.
func retryAfterHeader(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// discordRetryAfter reads Discord's {"retry_after": 1.5} (seconds).
func discordRetryAfter(body []byte) time.Duration {
	var b struct {
		RetryAfter float64 `json:"retry_after"`
	}
	if json.Unmarshal(body, &b) != nil || b.RetryAfter <= 0 {
		return 0
	}
	return time.Duration(b.RetryAfter * float64(time.Second))
}

// retryBackoff is the wait before attempt n+1 (n ≥ 1) of one delivery:
// exponential from 500 ms, capped at 30 s, with jitter.
func retryBackoff(n int) time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	d = min(d, 30*time.Second)
	return d + rand.N(d/4+1)
}

// hooks let the delivery loop count attempts and time them.
type hooks struct {
	attempt func(took time.Duration)
	retry   func(res sendResult, wait time.Duration)
}

// deliver sends body until it is accepted, refused for good, or the next
// wait would pass deadline: then the result says Retry with the wait left,
// and the caller leaves it for a later redelivery of the event.
func (t *target) deliver(ctx context.Context, client *http.Client, body []byte, msgID string, deadline time.Time, h hooks) sendResult {
	for n := 1; ; n++ {
		if err := t.limiter.Wait(ctx); err != nil {
			return sendResult{Retry: true, Err: errors.New("cancelled")}
		}
		start := time.Now()
		res := t.postGraceful(ctx, client, body, msgID)
		if h.attempt != nil {
			h.attempt(time.Since(start))
		}
		if res.ok() || !res.Retry || ctx.Err() != nil {
			return res
		}
		// The receiver's Retry-After when it gave one: no earlier, and
		// no later either (it is what the limit is).
		wait := res.RetryAfter
		if wait <= 0 {
			wait = retryBackoff(n)
		}
		if time.Now().Add(wait).After(deadline) {
			res.RetryAfter = wait
			return res
		}
		if h.retry != nil {
			h.retry(res, wait)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return sendResult{Retry: true, Err: errors.New("cancelled")}
		case <-timer.C:
		}
	}
}
