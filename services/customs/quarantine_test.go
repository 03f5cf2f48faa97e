package customs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer/malware"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/services/customs"
)

// pullManifest fetches ref's manifest through the registry address the
// way `crane pull` starts: nil when served.
func pullManifest(t *testing.T, ref string) error {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Get(r)
	return err
}

// denied checks err is the registry error a quarantined pull gets.
func denied(t *testing.T, what string, err error, wantMessage string) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) {
		t.Fatalf("%s: %v, want 403 DENIED", what, err)
	}
	if te.StatusCode != http.StatusForbidden || len(te.Errors) != 1 || te.Errors[0].Code != "DENIED" ||
		!strings.Contains(te.Errors[0].Message, wantMessage) {
		t.Fatalf("%s: %d %+v, want 403 DENIED %q", what, te.StatusCode, te.Errors, wantMessage)
	}
}

func apiGet(t *testing.T, st *customs.Stack, path string, out any) int {
	t.Helper()
	resp, err := http.Get(st.ResultsURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	return resp.StatusCode
}

type quarantineDoc struct {
	Records []quarantine.RecordJSON `json:"records"`
	Audit   []quarantine.AuditJSON  `json:"audit"`
}

func waitRecordState(t *testing.T, st *customs.Stack, digest, state string) quarantineDoc {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var doc quarantineDoc
		if apiGet(t, st, "/v1/quarantine/"+digest, &doc) == http.StatusOK && len(doc.Records) > 0 && doc.Records[0].State == state {
			return doc
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s record for %s: %+v", state, digest, doc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPull polls until pulling ref gives the wanted result (the gate
// follows the records through a KV watch: eventually, within moments).
func waitPull(t *testing.T, ref string, wantOK bool) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := pullManifest(t, ref)
		if (err == nil) == wantOK || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func release(t *testing.T, st *customs.Stack, digest, registry, repository, reason string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"registry": registry, "repository": repository, "reason": reason})
	req, _ := http.NewRequest(http.MethodPost, st.ResultsURL+"/v1/quarantine/"+digest+"/release", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+st.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("release: %d %s", resp.StatusCode, b)
	}
}

// postPushEvent delivers a Distribution push notification for digest, as
// the registry would when it retries.
func postPushEvent(t *testing.T, st *customs.Stack, repo, tag, digest, eventID string) {
	t.Helper()
	env := fmt.Sprintf(`{"events":[{"id":%q,"timestamp":%q,"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"repository":%q,"url":"http://%s/v2/%s/manifests/%s","tag":%q},"request":{"host":%q,"method":"PUT"}}]}`,
		eventID, time.Now().UTC().Format(time.RFC3339Nano), digest, repo, st.RegistryAddr, repo, digest, tag, st.RegistryAddr)
	req, _ := http.NewRequest(http.MethodPost, st.IngestURL+"/v1/webhooks/distribution", strings.NewReader(env))
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v2+json")
	req.Header.Set("Authorization", "Bearer "+st.WebhookToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
}

func eicarImage(t *testing.T) v1.Image {
	return scantest.Image(t, scantest.Layer(t, scantest.AlpineRootfs(t)...),
		scantest.Layer(t, scantest.Reg("opt/app/eicar.com", string(malware.EICAR()))))
}

// The acting half end to end on `customs up`: a push with EICAR through
// the gate is refused by tag and by digest within moments, a clean image
// pulls, a release lets it through, the same webhook five times makes one
// record, and a broken image (failed scan) quarantines nothing.
func TestQuarantinedPushIsRefusedUntilReleased(t *testing.T) {
	st := startStack(t, testConfig(t))
	bad := eicarImage(t)
	pushed := time.Now()
	badDigest := push(t, st, "public/bad:1.0", bad)
	good := scantest.Image(t, scantest.Layer(t, scantest.AlpineRootfs(t)...))
	goodDigest := push(t, st, "public/good:1.0", good)

	byTag, byDigest := st.RegistryAddr+"/public/bad:1.0", st.RegistryAddr+"/public/bad@"+badDigest
	err := waitPull(t, byTag, false)
	t.Logf("push → pull refused: %.1fs", time.Since(pushed).Seconds())
	denied(t, "pull by tag", err, "quarantined by Customs")
	denied(t, "pull by digest", pullManifest(t, byDigest), "quarantined by Customs")
	if r := waitReport(t, st.ResultsURL, goodDigest); r.Verdict != report.VerdictPass && r.Verdict != report.VerdictWarn {
		t.Fatalf("clean image verdict %q", r.Verdict)
	}
	if err := pullManifest(t, st.RegistryAddr+"/public/good:1.0"); err != nil {
		t.Fatalf("clean image: %v", err)
	}
	// Blobs are never blocked: layers are shared between images.
	l, _ := bad.Layers()
	ld, _ := l[1].Digest()
	lref, _ := name.NewDigest(st.RegistryAddr+"/public/bad@"+ld.String(), name.Insecure)
	if _, err := remote.Layer(lref); err != nil {
		t.Errorf("blob of a quarantined image: %v", err)
	}

	// The registry's webhook delivered again four times (a retrying
	// registry): still one record and one audit entry.
	for range 4 {
		postPushEvent(t, st, "public/bad", "1.0", badDigest, "retried-event-1")
	}
	doc := waitRecordState(t, st, badDigest, quarantine.StateQuarantined)
	rec := doc.Records[0]
	if len(doc.Records) != 1 || rec.Rule != "default:malware" || rec.Mode != "enforce" || rec.Repository != "public/bad" {
		t.Errorf("records = %+v", doc.Records)
	}
	r := waitReport(t, st.ResultsURL, badDigest)
	var withState struct {
		Quarantine quarantine.ReportState `json:"quarantine"`
	}
	apiGet(t, st, "/v1/reports/"+badDigest, &withState)
	if withState.Quarantine.State != "quarantined" || r.Verdict != report.VerdictQuarantine {
		t.Errorf("report quarantine = %+v verdict %q", withState.Quarantine, r.Verdict)
	}

	release(t, st, badDigest, rec.Registry, rec.Repository, "EICAR is the AV test string; expected here")
	if err := waitPull(t, byTag, true); err != nil {
		t.Fatalf("pull after release: %v", err)
	}
	if err := pullManifest(t, byDigest); err != nil {
		t.Fatalf("pull by digest after release: %v", err)
	}
	doc = waitRecordState(t, st, badDigest, quarantine.StateReleased)
	var changes []string
	for _, a := range doc.Audit {
		changes = append(changes, a.Change)
	}
	if got := strings.Join(changes, ","); !strings.HasPrefix(got, "quarantined,") || strings.Count(got, "quarantined") != 1 || !strings.Contains(got, "released") {
		t.Errorf("audit = %s", got)
	}

	// A scan that fails (a layer that is not the gzip it claims to be) is
	// no verdict: nothing is quarantined, whatever the failed report says.
	broken, err := mutate.AppendLayers(empty.Image, static.NewLayer([]byte("this is not gzip"), types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	brokenDigest := push(t, st, "public/broken:1", broken)
	if fr := waitReport(t, st.ResultsURL, brokenDigest); fr.Status != report.StatusFailed {
		t.Fatalf("broken image report: status %q error %q", fr.Status, fr.Error)
	}
	waitDrained(t, st, brokenDigest)
	if code := apiGet(t, st, "/v1/quarantine/"+brokenDigest, nil); code != http.StatusNotFound {
		t.Errorf("failed scan quarantined: %d", code)
	}
	if err := pullManifest(t, st.RegistryAddr+"/public/broken:1"); err != nil {
		t.Errorf("broken image pull: %v", err)
	}
}

// A multi-platform image with one malicious platform: that platform and
// the index are refused, the clean platform pulls.
func TestQuarantinedPlatformOfAnIndex(t *testing.T) {
	st := startStack(t, testConfig(t))
	clean := withPlatform(t, scantest.Image(t, scantest.Layer(t, scantest.AlpineRootfs(t)...)), "amd64", "")
	evil := withPlatform(t, eicarImage(t), "arm64", "v8")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: clean, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: evil, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	idxDigest := pushIndex(t, st, "public/multi:1", idx)
	cd, _ := clean.Digest()
	ed, _ := evil.Digest()
	if r := waitReport(t, st.ResultsURL, idxDigest); r.Verdict != report.VerdictQuarantine {
		t.Fatalf("index verdict %q", r.Verdict)
	}
	denied(t, "evil platform", waitPull(t, st.RegistryAddr+"/public/multi@"+ed.String(), false), "quarantined by Customs")
	denied(t, "index by tag", waitPull(t, st.RegistryAddr+"/public/multi:1", false), "quarantined by Customs")
	if err := pullManifest(t, st.RegistryAddr+"/public/multi@"+cd.String()); err != nil {
		t.Errorf("clean platform: %v", err)
	}
}

// CUSTOMS_GATE_UNSCANNED=deny: nothing is served before Customs has a
// verdict; a pass is served at once after.
func TestUnscannedImagesAreRefusedWhenDenied(t *testing.T) {
	cfg := testConfig(t)
	cfg.GateUnscanned = "deny"
	hold := &blockBlob{arrived: make(chan struct{}), release: make(chan struct{})}
	cfg.RegistryMiddleware = hold.wrap
	st := startStack(t, cfg)
	layer := scantest.Layer(t, scantest.AlpineRootfs(t)...)
	hold.digest.Store(layerDigest(t, layer))
	img := scantest.Image(t, layer)
	d := push(t, st, "public/new:1", img)
	<-hold.arrived // the scanner is reading the layer: no report yet
	err := pullManifest(t, st.RegistryAddr+"/public/new:1")
	denied(t, "unscanned pull", err, "not yet scanned")
	close(hold.release)
	waitReport(t, st.ResultsURL, d)
	if err := waitPull(t, st.RegistryAddr+"/public/new@"+d, true); err != nil {
		t.Fatalf("after a pass: %v", err)
	}
}

// waitDrained waits until digest's stored-report event is published and
// the quarantine consumer has handled every event: what it would do, it
// has done.
func waitDrained(t *testing.T, st *customs.Stack, digest string) {
	t.Helper()
	js := stackJetStream(t, st)
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := js.Consumer(ctx, queue.EventsStream, queue.QuarantineConsumer)
		if err == nil {
			ci, err1 := c.Info(ctx)
			s, err2 := js.Stream(ctx, queue.EventsStream)
			if err1 == nil && err2 == nil {
				subject := queue.ReportStoredSubject + strings.TrimPrefix(digest, "sha256:")
				si, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
				if err == nil && si.State.Subjects[subject] > 0 && ci.NumPending == 0 && ci.NumAckPending == 0 {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("quarantine consumer did not drain")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The operators' commands against a running customs up: add, list,
// release, with the admin token customs up keeps in its data directory.
func TestQuarantineCommands(t *testing.T) {
	bin := customsBin(t)
	cfg := testConfig(t)
	st := startStack(t, cfg)
	img := scantest.Image(t, scantest.Layer(t, scantest.Reg("etc/motd", "hello\n")))
	d := push(t, st, "ops/app:1", img)
	waitReport(t, st.ResultsURL, d)
	ref := st.RegistryAddr + "/ops/app@" + d
	run := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"quarantine"}, append(args, "--server", st.ResultsURL, "--data", cfg.DataDir)...)...)
		cmd.Env = append(os.Environ(), "CUSTOMS_TOKEN=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("add", ref); err == nil || !strings.Contains(out, "--reason is required") {
		t.Errorf("add without a reason: %v %s", err, out)
	}
	out, err := run("add", ref, "--reason", "reported by a user")
	if err != nil || !strings.Contains(out, ref+" quarantined (enforce, generation 1)") {
		t.Fatalf("add: %v\n%s", err, out)
	}
	denied(t, "pull after a manual quarantine", waitPull(t, st.RegistryAddr+"/ops/app:1", false), "reported by a user")
	out, err = run("list", "--repository", "ops/app")
	if err != nil || !strings.Contains(out, "quarantined") || !strings.Contains(out, ref) || !strings.Contains(out, "manual") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = run("release", ref, "--reason", "checked: harmless")
	if err != nil || !strings.Contains(out, "released") {
		t.Fatalf("release: %v\n%s", err, out)
	}
	if err := waitPull(t, st.RegistryAddr+"/ops/app:1", true); err != nil {
		t.Fatalf("pull after release: %v", err)
	}
	// A wrong token is refused with the API's reason.
	cmd := exec.Command(bin, "quarantine", "release", ref, "--reason", "x", "--server", st.ResultsURL)
	cmd.Env = append(os.Environ(), "CUSTOMS_TOKEN=not-a-token")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Errorf("wrong token: %v %s", err, out)
	}
}

// stackJetStream connects to customs up's NATS with the credentials it
// generated, as an operator's tool would; closed when the test ends.
func stackJetStream(t *testing.T, st *customs.Stack) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(st.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
