package notifier

import (
	"encoding/json"
	"time"

	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// WebhookSchema names the generic webhook's body format; a change that is
// not an addition gets a new version.
const WebhookSchema = "customs.alert/v1"

// WebhookBody is the generic webhook's JSON body (README, "Chat alerts"):
// the alert with every new item the routes let through, not shortened.
type WebhookBody struct {
	Schema          string             `json:"schema"`
	ID              string             `json:"id"`
	Kind            string             `json:"kind"`
	At              string             `json:"at,omitempty"`
	Registry        string             `json:"registry"`
	Repository      string             `json:"repository"`
	Digest          string             `json:"digest"`
	Tags            []string           `json:"tags"`
	Platform        string             `json:"platform,omitempty"`
	Verdict         string             `json:"verdict"`
	PreviousVerdict string             `json:"previous_verdict,omitempty"`
	VerdictRule     string             `json:"verdict_rule,omitempty"`
	VerdictReason   string             `json:"verdict_reason,omitempty"`
	PreviousDigest  string             `json:"previous_digest,omitempty"`
	FirstPush       bool               `json:"first_push"`
	Counts          map[string]int     `json:"counts"`
	NewItems        []WebhookItem      `json:"new_items"`
	Quarantine      *WebhookQuarantine `json:"quarantine,omitempty"`
	ReportPath      string             `json:"report_path,omitempty"`
	ReportURL       string             `json:"report_url,omitempty"`
	DBVersion       string             `json:"db_version,omitempty"`
}

// WebhookItem is one new vulnerability or finding.
type WebhookItem struct {
	Kind             string   `json:"kind"`
	ID               string   `json:"id"`
	Aliases          []string `json:"aliases,omitempty"`
	Severity         string   `json:"severity"`
	Package          string   `json:"package,omitempty"`
	InstalledVersion string   `json:"installed_version,omitempty"`
	FixedVersion     string   `json:"fixed_version,omitempty"`
	Path             string   `json:"path,omitempty"`
	Title            string   `json:"title,omitempty"`
}

// WebhookQuarantine is the quarantine part.
type WebhookQuarantine struct {
	State  string `json:"state"`
	Mode   string `json:"mode,omitempty"`
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

func renderWebhook(a *customsv1.Alert, publicURL string) ([]byte, error) {
	b := WebhookBody{
		Schema: WebhookSchema, ID: a.GetId(), Kind: a.GetKind(),
		Registry: a.GetRegistry(), Repository: a.GetRepository(), Digest: a.GetDigest(),
		Tags: append([]string{}, a.GetTags()...), Platform: a.GetPlatform(),
		Verdict: a.GetVerdict(), PreviousVerdict: a.GetPreviousVerdict(),
		VerdictRule: a.GetVerdictRule(), VerdictReason: a.GetVerdictReason(),
		PreviousDigest: a.GetPreviousDigest(), FirstPush: a.GetFirstPush(),
		Counts: map[string]int{}, NewItems: []WebhookItem{},
		ReportPath: a.GetReportPath(), ReportURL: reportURL(publicURL, a.GetReportPath()),
		DBVersion: a.GetDbVersion(),
	}
	if a.GetAt() != nil {
		b.At = a.GetAt().AsTime().UTC().Format(time.RFC3339Nano)
	}
	for _, it := range a.GetNewItems() {
		b.NewItems = append(b.NewItems, WebhookItem{
			Kind: it.GetKind(), ID: it.GetId(), Aliases: it.GetAliases(), Severity: it.GetSeverity(),
			Package: it.GetPackage(), InstalledVersion: it.GetInstalledVersion(), FixedVersion: it.GetFixedVersion(),
			Path: it.GetPath(), Title: it.GetTitle(),
		})
		b.Counts[normSeverity(it.GetSeverity())]++
	}
	if q := a.GetQuarantine(); q != nil {
		b.Quarantine = &WebhookQuarantine{State: q.GetState(), Mode: q.GetMode(), Reason: q.GetReason(), By: q.GetBy()}
	}
	return json.Marshal(b)
}

// render is the body sent to a destination of type typ about a.
func render(typ string, a *customsv1.Alert, publicURL string) ([]byte, error) {
	if typ == TypeWebhook {
		return renderWebhook(a, publicURL)
	}
	return renderChat(typ, newView(a, publicURL))
}
