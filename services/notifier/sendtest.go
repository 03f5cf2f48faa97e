package notifier

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// TestResult is what one destination answered to the sample alert.
type TestResult struct {
	Destination string
	Type        string
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Err is nil when the destination took the message; it never holds
	// the URL.
	Err error
}

// SampleAlert is the alert `customs alerts test` sends: a push of
// customs/sample that brings a critical vulnerability and a secret
// finding (rule and path only, as every alert).
func SampleAlert() *customsv1.Alert {
	digest := "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	return &customsv1.Alert{
		Id: "customs-test-alert", Kind: AlertPush,
		Registry: "registry.example.com", Repository: "customs/sample", Digest: digest,
		Tags: []string{"test"}, Platform: "linux/amd64",
		Verdict: "warn", PreviousVerdict: "pass", VerdictRule: "default:severity", VerdictReason: "a CRITICAL vulnerability (this is a test message from customs alerts test)",
		NewItems: []*customsv1.AlertItem{
			{Kind: KindVulnerability, Id: "CVE-2024-0001", Aliases: []string{"GHSA-xxxx-xxxx-xxxx"}, Severity: "CRITICAL",
				Package: "libexample", InstalledVersion: "1.0.0", FixedVersion: "1.0.1"},
			{Kind: KindSecret, Id: "aws-access-key-id", Severity: "HIGH", Path: "app/.env", Title: "AWS access key"},
		},
		At:         timestamppb.New(time.Now()),
		ReportPath: "/v1/reports/" + digest,
	}
}

// SendTest sends SampleAlert to every destination of cfg, or only to the
// one named only, once each (no retries: the answer is the result), and
// says how each answered. Routes are not applied: every destination gets
// the whole sample. client nil: the notifier's own.
func SendTest(ctx context.Context, cfg *AlertsConfig, only string, client *http.Client) ([]TestResult, error) {
	if client == nil {
		client = newHTTPClient()
	}
	var dests []Destination
	for _, d := range cfg.Destinations {
		if only == "" || d.Name == only {
			dests = append(dests, d)
		}
	}
	if len(dests) == 0 {
		return nil, fmt.Errorf("no destination named %q in the alerts file", only)
	}
	a := SampleAlert()
	var out []TestResult
	for _, d := range dests {
		r := TestResult{Destination: d.Name, Type: d.Type}
		t, err := newTarget(d)
		if err == nil {
			var body []byte
			if body, err = render(d.Type, a, cfg.PublicURL); err == nil {
				res := t.post(ctx, client, body, a.GetId())
				r.Status, err = res.Status, res.Err
			}
		}
		r.Err = err
		out = append(out, r)
	}
	return out, nil
}
