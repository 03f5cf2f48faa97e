package results_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/services/results"
)

func quarantineReport(repo string, n int, finished time.Time, findings ...report.Finding) *report.Report {
	r := newReport(repo, n, finished)
	if len(findings) == 0 {
		findings = []report.Finding{{Kind: "malware", Rule: "eicar", Severity: "CRITICAL", Title: "EICAR test file", Path: "eicar.com"}}
	}
	r.Findings = findings
	r.Verdict, r.VerdictRule, r.VerdictReason = report.VerdictQuarantine, "default:malware", "malware: EICAR test file"
	return r
}

func (e *env) send(t *testing.T, method, token, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.api.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type recordList struct {
	Mode    string                  `json:"mode"`
	Records []quarantine.RecordJSON `json:"records"`
}

// waitRecord polls the API until the digest's record satisfies ok.
func (e *env) waitRecord(t *testing.T, d string, ok func(quarantine.RecordJSON) bool) quarantine.RecordJSON {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := e.get(t, "/v1/quarantine/"+d)
		if code == http.StatusOK {
			var doc recordList
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Records) == 1 && ok(doc.Records[0]) {
				return doc.Records[0]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("quarantine record of %s: %d %s", d, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) audit(t *testing.T, d string) []quarantine.AuditJSON {
	t.Helper()
	code, body := e.get(t, "/v1/quarantine/"+d)
	if code != http.StatusOK {
		t.Fatalf("GET quarantine %s: %d %s", d, code, body)
	}
	var doc struct {
		Audit []quarantine.AuditJSON `json:"audit"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Audit
}

// drained waits until results has handled every report event (so their
// ReportStored events are published) and the quarantine consumer every
// ReportStored event: what it would do with the events sent so far is done.
func (e *env) drained(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	idle := func(stream, consumer string) bool {
		c, err := e.js.Consumer(ctx, stream, consumer)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}
	deadline := time.Now().Add(30 * time.Second)
	for !idle(queue.ReportsStream, queue.ResultsConsumer) || !idle(queue.EventsStream, queue.QuarantineConsumer) {
		if time.Now().After(deadline) {
			t.Fatal("quarantine consumer did not drain")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestQuarantineVerdictMakesOneRecordAndReleaseIsAudited(t *testing.T) {
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken, Quarantine: "enforce"})
	now := time.Now().UTC().Truncate(time.Millisecond)
	bad := quarantineReport("team/app", 1, now)
	// The same scan event five times (a redelivering scanner, a retried
	// webhook past the scanner's dedup): one record, one audit entry.
	for range 5 {
		e.publish(t, bad)
	}
	e.publish(t, newReport("team/app", 2, now)) // a clean image
	failed := newReport("team/app", 3, now)
	failed.Status, failed.Verdict, failed.Error = report.StatusFailed, "", "pull: connection refused"
	e.publish(t, failed)
	e.waitReport(t, digest(2))
	e.waitReport(t, digest(3))

	rec := e.waitRecord(t, digest(1), func(r quarantine.RecordJSON) bool { return r.State == quarantine.StateQuarantined })
	if rec.Mode != "enforce" || rec.Rule != "default:malware" || rec.Reason != "malware: EICAR test file" || rec.QuarantinedBy != "customs" ||
		rec.Generation != 1 || rec.Kind != "distribution" || rec.Ref != "registry.test:5000/team/app@"+digest(1) {
		t.Errorf("record = %+v", rec)
	}
	if len(rec.Evidence) != 1 || rec.Evidence[0] != "finding:malware:eicar:eicar.com" {
		t.Errorf("evidence = %v", rec.Evidence)
	}
	e.drained(t)
	if a := e.audit(t, digest(1)); len(a) != 1 || a[0].Change != "quarantined" {
		t.Fatalf("audit after 5 deliveries = %+v, want one quarantined entry", a)
	}
	// A clean image and a failed scan make no record: a failed scan is not a verdict.
	for _, n := range []int{2, 3} {
		if code, body := e.get(t, "/v1/quarantine/"+digest(n)); code != http.StatusNotFound {
			t.Errorf("digest %d: %d %s, want 404", n, code, body)
		}
	}
	// The report carries its quarantine state.
	_, raw := e.get(t, "/v1/reports/"+digest(1))
	var withState struct {
		Verdict    string                 `json:"verdict"`
		Quarantine quarantine.ReportState `json:"quarantine"`
	}
	if err := json.Unmarshal(raw, &withState); err != nil {
		t.Fatalf("report with state: %v\n%s", err, raw)
	}
	if withState.Quarantine.State != "quarantined" || withState.Quarantine.Reason != rec.Reason || withState.Verdict != "quarantine" {
		t.Errorf("report quarantine = %+v", withState.Quarantine)
	}

	// Release: admin only, a reason required.
	path := "/v1/quarantine/" + digest(1) + "/release"
	if code, _ := e.send(t, http.MethodPost, "", path, `{"reason":"x"}`); code != http.StatusUnauthorized {
		t.Errorf("release without a token: %d, want 401", code)
	}
	if code, _ := e.send(t, http.MethodPost, "wrong", path, `{"reason":"x"}`); code != http.StatusUnauthorized {
		t.Errorf("release with a wrong token: %d, want 401", code)
	}
	if code, body := e.send(t, http.MethodPost, testToken, path, `{}`); code != http.StatusBadRequest || !bytes.Contains(body, []byte("reason")) {
		t.Errorf("release without a reason: %d %s", code, body)
	}
	code, body := e.send(t, http.MethodPost, testToken, path, `{"reason":"EICAR is a test file, expected in this image"}`)
	if code != http.StatusOK {
		t.Fatalf("release: %d %s", code, body)
	}
	rec = e.waitRecord(t, digest(1), func(r quarantine.RecordJSON) bool { return r.State == quarantine.StateReleased })
	if rec.ReleasedBy != "admin-token" || rec.ReleaseReason != "EICAR is a test file, expected in this image" || rec.ReleasedAt == nil {
		t.Errorf("released record = %+v", rec)
	}

	// The same findings again (a rescan) do not quarantine it again...
	e.publish(t, quarantineReport("team/app", 1, now.Add(time.Minute)))
	e.drained(t)
	if rec = e.waitRecord(t, digest(1), func(quarantine.RecordJSON) bool { return true }); rec.State != quarantine.StateReleased {
		t.Fatalf("same findings re-quarantined a released image: %+v", rec)
	}
	// ...new ones do, with a new generation.
	e.publish(t, quarantineReport("team/app", 1, now.Add(2*time.Minute),
		report.Finding{Kind: "malware", Rule: "eicar", Path: "eicar.com"},
		report.Finding{Kind: "malware", Rule: "xmrig", Path: "usr/bin/xmrig"}))
	rec = e.waitRecord(t, digest(1), func(r quarantine.RecordJSON) bool { return r.State == quarantine.StateQuarantined })
	if rec.Generation != 2 {
		t.Errorf("new findings: generation %d, want 2", rec.Generation)
	}
	e.drained(t)
	var changes []string
	for _, a := range e.audit(t, digest(1)) {
		changes = append(changes, a.Change+"/"+a.By)
	}
	if strings.Join(changes, ",") != "quarantined/customs,released/admin-token,quarantined/customs" {
		t.Errorf("audit = %v", changes)
	}
	// The audit stream refuses deletes: it is kept, never edited.
	s, err := e.js.Stream(context.Background(), queue.QuarantineAuditStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(context.Background(), 1); err == nil {
		t.Error("deleting an audit entry succeeded")
	}
	if err := s.Purge(context.Background()); err == nil {
		t.Error("purging the audit stream succeeded")
	}
}

func TestManualQuarantineAndListing(t *testing.T) {
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken, Quarantine: "enforce"})
	ref := "registry.test:5000/team/app@" + digest(7)
	if code, body := e.send(t, http.MethodPost, testToken, "/v1/quarantine", `{"ref":"team/app@`+digest(7)+`","reason":"x"}`); code != http.StatusBadRequest {
		t.Errorf("ref without registry: %d %s", code, body)
	}
	code, body := e.send(t, http.MethodPost, testToken, "/v1/quarantine", `{"ref":"`+ref+`","reason":"reported by a user"}`)
	if code != http.StatusOK {
		t.Fatalf("manual quarantine: %d %s", code, body)
	}
	// Twice: the same record.
	if code, _ := e.send(t, http.MethodPost, testToken, "/v1/quarantine", `{"ref":"`+ref+`","reason":"reported by a user"}`); code != http.StatusOK {
		t.Fatalf("manual quarantine again: %d", code)
	}
	code, body = e.get(t, "/v1/quarantine?repository=team/app")
	var list recordList
	if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK {
		t.Fatalf("list: %d %s", code, body)
	}
	if list.Mode != "enforce" || len(list.Records) != 1 || list.Records[0].Rule != "manual" || list.Records[0].QuarantinedBy != "admin-token" {
		t.Errorf("list = %+v", list)
	}
	_, body = e.get(t, "/v1/quarantine?repository=other")
	if err := json.Unmarshal(body, &list); err != nil || len(list.Records) != 0 {
		t.Errorf("other repository: %s", body)
	}
	if a := e.audit(t, digest(7)); len(a) != 1 {
		t.Errorf("audit = %+v, want one entry", a)
	}
}

func TestQuarantineDryRunRecordsWithoutBlocking(t *testing.T) {
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken}) // unset: dry-run
	e.publish(t, quarantineReport("team/app", 1, time.Now().UTC()))
	rec := e.waitRecord(t, digest(1), func(r quarantine.RecordJSON) bool { return r.State == quarantine.StateQuarantined })
	if rec.Mode != "dry-run" {
		t.Errorf("mode = %q, want dry-run", rec.Mode)
	}
	ctx := context.Background()
	kv, err := e.js.KeyValue(ctx, quarantine.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := quarantine.Get(ctx, kv, quarantine.Key("registry.test:5000", "team/app", digest(1)))
	if err != nil {
		t.Fatal(err)
	}
	if quarantine.Blocking(r) {
		t.Error("a dry-run record blocks pulls")
	}
}

func TestQuarantineOffMakesNoRecords(t *testing.T) {
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken, Quarantine: "off"})
	e.publish(t, quarantineReport("team/app", 1, time.Now().UTC()))
	e.waitReport(t, digest(1))
	if _, err := e.js.KeyValue(context.Background(), quarantine.Bucket); err != jetstream.ErrBucketNotFound {
		t.Errorf("records bucket with quarantine off: %v", err)
	}
	if code, body := e.send(t, http.MethodPost, testToken, "/v1/quarantine", `{"ref":"registry.test:5000/team/app@`+digest(1)+`","reason":"x"}`); code != http.StatusConflict {
		t.Errorf("manual quarantine with quarantine off: %d %s", code, body)
	}
}

// A re-match that turns a verdict into quarantine (new vulnerability
// data) quarantines the image like a scan would.
func TestRematchThatQuarantinesMakesARecord(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("rules:\n  - name: no-lodash-prototype-pollution\n    when: 'vulnerabilities.exists(v, v.id == \"GHSA-p6mc-m468-83gw\")'\n    verdict: quarantine\n    reason: lodash prototype pollution\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken, Quarantine: "enforce", PolicyFile: policy})
	ctx := context.Background()
	a := withPackages(newReport("team/web", 1, time.Now().UTC().Truncate(time.Second)), lodash)
	e.publish(t, a)
	e.waitReport(t, a.Artifact.Digest)
	e.drained(t)
	if code, _ := e.get(t, "/v1/quarantine/"+digest(1)); code != http.StatusNotFound {
		t.Fatalf("quarantined before the vulnerability was known: %d", code)
	}
	v1 := vulndbtest.Build(t, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "osv/other/GHSA-p6mc-m468-83gw.json")
	if _, _, err := vulndist.Publish(ctx, e.js, v1); err != nil {
		t.Fatal(err)
	}
	rec := e.waitRecord(t, digest(1), func(r quarantine.RecordJSON) bool { return r.State == quarantine.StateQuarantined })
	if rec.Rule != "no-lodash-prototype-pollution" || len(rec.Evidence) != 1 || !strings.HasPrefix(rec.Evidence[0], "vuln:GHSA-p6mc-m468-83gw:") {
		t.Errorf("record = %+v", rec)
	}
}
