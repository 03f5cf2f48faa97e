package scanner_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // access controller
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory" // storage driver
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/regauth/regauthtest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/scanner"
)

// htpasswdRegistry is a real Distribution registry that requires Basic
// credentials checked against an htpasswd file (bcrypt), as operators run
// registry:2/3 with auth: htpasswd. It uses distribution's application
// handler directly (registry.NewRegistry registers process-global health
// checks and can run once per process).
func htpasswdRegistry(t *testing.T, user, password string) string {
	t.Helper()
	logrus.SetOutput(io.Discard) // distribution logs through logrus' standard logger
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := &configuration.Configuration{
		Version: "0.1",
		Storage: configuration.Storage{"inmemory": configuration.Parameters{}},
		Auth:    configuration.Auth{"htpasswd": configuration.Parameters{"realm": "customs-test", "path": htpasswd}},
	}
	conf.HTTP.Secret = "customs-test-http-secret"
	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, conf)
	srv := httptest.NewServer(app)
	t.Cleanup(func() {
		srv.Close()
		_ = app.Shutdown()
		cancel()
	})
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushWithAuth writes img as host/repo:latest with Basic credentials.
func pushWithAuth(t *testing.T, host, repo, user, password string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repo+":latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: user, Password: password})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

func authFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "registry-auth.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// scannerWithAuth runs a scanner whose credentials come from cfg's
// RegistryAuthFile only (no Docker keychain), logging into logs.
func scannerWithAuth(t *testing.T, cfg scanner.Config, logs *svcmaintest.LogBuffer) jetstream.JetStream {
	t.Helper()
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	if err := queue.EnsureStreams(ctx, js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	logger := zerolog.Nop()
	if logs != nil {
		logger = zerolog.New(logs).Level(zerolog.DebugLevel)
	}
	runScanner(t, ctx, cancel, cfg, scanner.Deps{JetStream: js, Log: logger,
		RemoteOptions: []remote.Option{remote.WithRetryBackoff(remote.Backoff{Steps: 1})}})
	return js
}

// reportOf waits for the n-th report event and decodes it.
func reportOf(t *testing.T, js jetstream.JetStream, n int) (*customsv1.ScanCompleted, *report.Report) {
	t.Helper()
	return decodeReport(t, queuetest.WaitMsgs(t, js, queue.ReportsStream, n)[n-1].Data)
}

const htpasswdPassword = "htpasswd-password-9c2e71"

func TestHtpasswdRegistryWithAuthFile(t *testing.T) {
	host := htpasswdRegistry(t, "customs", htpasswdPassword)
	digest := pushWithAuth(t, host, "team/debian", "customs", htpasswdPassword, debianImage(t))
	for _, tc := range []struct {
		name, password string
		complete       bool
	}{
		{"right password", htpasswdPassword, true},
		{"wrong password", "not-the-password", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "pw"), []byte(tc.password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			file := authFile(t, "registries:\n  "+host+":\n    username: customs\n    password_file: "+filepath.Join(dir, "pw")+"\n")
			js := scannerWithAuth(t, scanner.Config{InsecureRegistries: []string{host}, RegistryAuthFile: file, MaxDeliver: 1}, nil)
			enqueueAt(t, js, host, "team/debian", digest)
			ev, r := reportOf(t, js, 1)
			if tc.complete {
				if ev.GetStatus() != report.StatusComplete || r.OS.ID != "debian" || len(r.Packages) != 3 || r.Artifact.Registry != host {
					t.Fatalf("event %v report error %q os %+v packages %d", ev, r.Error, r.OS, len(r.Packages))
				}
				return
			}
			// Not an empty report: a failed one saying why.
			t.Logf("report error: %s", r.Error)
			if ev.GetStatus() != report.StatusFailed || len(r.Packages) != 0 ||
				!strings.Contains(r.Error, "401") || !strings.Contains(r.Error, "UNAUTHORIZED") {
				t.Fatalf("event status %q error %q, want a failed scan with 401 UNAUTHORIZED", ev.GetStatus(), r.Error)
			}
			var letter customsv1.DeadLetter
			if err := proto.Unmarshal(queuetest.WaitMsgs(t, js, queue.DLQStream, 1)[0].Data, &letter); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(letter.GetReason(), "UNAUTHORIZED") {
				t.Errorf("dead letter reason %q", letter.GetReason())
			}
		})
	}
}

// ecrFront is a real registry that takes only Basic AWS:<the stand-in's
// newest password>; images are pushed past the check.
func ecrFront(t *testing.T, ecr *regauthtest.ECR) (host, direct string) {
	t.Helper()
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	d := httptest.NewServer(inner)
	t.Cleanup(d.Close)
	f := httptest.NewServer(ecr.Registry(inner))
	t.Cleanup(f.Close)
	return strings.TrimPrefix(f.URL, "http://"), strings.TrimPrefix(d.URL, "http://")
}

func ecrAuth(host, endpoint string) string {
	return "registries:\n  " + host + ":\n    kind: ecr\n    ecr:\n      region: eu-west-1\n      endpoint: " + endpoint + "\n"
}

func TestECRRegistryWithAuthFile(t *testing.T) {
	regauthtest.SetAWSEnv(t)
	ecr := regauthtest.StartECR(t, nil, 12*time.Hour)
	host, direct := ecrFront(t, ecr)
	digest := pushTo(t, direct, "team/debian", debianImage(t))
	js := scannerWithAuth(t, scanner.Config{InsecureRegistries: []string{host}, RegistryAuthFile: authFile(t, ecrAuth(host, ecr.URL))}, nil)
	enqueueAt(t, js, host, "team/debian", digest)
	ev, r := reportOf(t, js, 1)
	if ev.GetStatus() != report.StatusComplete || r.OS.ID != "debian" {
		t.Fatalf("event %v error %q", ev, r.Error)
	}
	// One token for the whole scan (HEAD, GET, config, layers).
	if n := ecr.Calls(); n != 1 {
		t.Errorf("%d GetAuthorizationToken calls for one scan, want 1", n)
	}
}

func TestECRAccessDeniedFailsTheScan(t *testing.T) {
	regauthtest.SetAWSEnv(t)
	ecr := regauthtest.StartECR(t, nil, 12*time.Hour)
	ecr.Fail(true)
	host, direct := ecrFront(t, ecr)
	digest := pushTo(t, direct, "team/debian", debianImage(t))
	js := scannerWithAuth(t, scanner.Config{InsecureRegistries: []string{host}, RegistryAuthFile: authFile(t, ecrAuth(host, ecr.URL)), MaxDeliver: 1}, nil)
	enqueueAt(t, js, host, "team/debian", digest)
	ev, r := reportOf(t, js, 1)
	t.Logf("report error: %s", r.Error)
	if ev.GetStatus() != report.StatusFailed || !strings.Contains(r.Error, "AccessDeniedException") ||
		!strings.Contains(r.Error, "ECR authorization token for "+host) {
		t.Fatalf("event status %q error %q, want a failed scan naming AccessDeniedException", ev.GetStatus(), r.Error)
	}
}

// streamDump is every message of every stream: data, subject, headers,
// and the JSON of each report event (gzipped inside the event).
func streamDump(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	names := js.StreamNames(ctx)
	for n := range names.Name() {
		s, err := js.Stream(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				continue // deleted (work queue, KV updates)
			}
			b.WriteString(m.Subject + "\n")
			for k, vs := range m.Header {
				b.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
			}
			b.Write(m.Data)
			b.WriteString("\n")
			if n == queue.ReportsStream && !strings.HasPrefix(m.Subject, queue.ReportsSubjectPrefix+"tags.") {
				_, r := decodeReport(t, m.Data)
				b.WriteString(r.Error + "\n")
				raw, _ := json.Marshal(r)
				b.Write(raw)
			}
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Scans with Basic and ECR credentials, a scan that fails (dead letter,
// failed report) and one refused by ECR: no password or token appears in
// the logs (debug level), any report, any message of any stream.
func TestCredentialsNeverLeak(t *testing.T) {
	regauthtest.SetAWSEnv(t)
	basicHost := htpasswdRegistry(t, "customs", htpasswdPassword)
	digest := pushWithAuth(t, basicHost, "team/debian", "customs", htpasswdPassword, debianImage(t))
	ecr := regauthtest.StartECR(t, nil, 12*time.Hour)
	ecrHost, direct := ecrFront(t, ecr)
	pushTo(t, direct, "team/debian", debianImage(t))
	deniedECR := regauthtest.StartECR(t, nil, 12*time.Hour)
	deniedECR.Fail(true)
	deniedHost, _ := ecrFront(t, deniedECR)
	t.Setenv("CUSTOMS_TEST_REGISTRY_PASSWORD", htpasswdPassword)
	file := authFile(t, "registries:\n  "+basicHost+":\n    username: customs\n    password_env: CUSTOMS_TEST_REGISTRY_PASSWORD\n"+
		strings.TrimPrefix(ecrAuth(ecrHost, ecr.URL), "registries:\n")+strings.TrimPrefix(ecrAuth(deniedHost, deniedECR.URL), "registries:\n"))
	var logs svcmaintest.LogBuffer
	js := scannerWithAuth(t, scanner.Config{InsecureRegistries: []string{basicHost, ecrHost, deniedHost}, RegistryAuthFile: file, MaxDeliver: 1}, &logs)
	enqueueAt(t, js, basicHost, "team/debian", digest)
	enqueueAt(t, js, ecrHost, "team/debian", digest)
	enqueueAt(t, js, basicHost, "team/gone", "sha256:"+strings.Repeat("ab", 32))
	enqueueAt(t, js, deniedHost, "team/debian", digest)
	msgs := queuetest.WaitMsgs(t, js, queue.ReportsStream, 4)
	queuetest.WaitMsgs(t, js, queue.DLQStream, 2)
	waitJobs(t, js)
	statuses := map[string]string{}
	for _, m := range msgs {
		_, r := decodeReport(t, m.Data)
		statuses[r.Artifact.Registry+"/"+r.Artifact.Repository] = r.Status
	}
	if statuses[basicHost+"/team/debian"] != report.StatusComplete || statuses[ecrHost+"/team/debian"] != report.StatusComplete ||
		statuses[basicHost+"/team/gone"] != report.StatusFailed || statuses[deniedHost+"/team/debian"] != report.StatusFailed {
		t.Fatalf("report statuses %v: the control proves nothing", statuses)
	}
	secrets := []string{htpasswdPassword, regauthtest.SecretAccessKey}
	for _, pw := range ecr.Passwords() {
		secrets = append(secrets, pw, base64.StdEncoding.EncodeToString([]byte("AWS:"+pw)))
	}
	secrets = append(secrets, base64.StdEncoding.EncodeToString([]byte("customs:"+htpasswdPassword)))
	if len(ecr.Passwords()) == 0 {
		t.Fatal("no ECR token was issued")
	}
	everything := map[string]string{"logs": logs.String(), "streams": streamDump(t, js)}
	for where, text := range everything {
		// The capture holds the failure reasons and the report bodies.
		if !strings.Contains(text, "AccessDeniedException") || !strings.Contains(text, "team/gone") {
			t.Errorf("%s: the failures are not in what was captured", where)
		}
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s carry a credential (%.12s…)", where, s)
			}
		}
	}
	if !strings.Contains(everything["streams"], `"packages":[{"name":"`) {
		t.Error("the report bodies are not in what was captured")
	}
	if !strings.Contains(logs.String(), "registry credentials loaded") || !strings.Contains(logs.String(), basicHost) {
		t.Error("the scanner did not log which hosts have credentials")
	}
}

// A registry on 127.0.0.1:A whose manifests and blobs are redirected to
// storage on 127.0.0.1:B (an allowed redirect host): the scan completes,
// A gets the auth file's credentials, B never sees an Authorization.
func TestRedirectTargetGetsNoCredentialsFromTheFile(t *testing.T) {
	var reg *standin
	storage := newSink(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reg.inner.ServeHTTP(w, r) }))
	reg = newStandin(t, func(reg *standin) {
		reg.redirectManifests = storage.srv.URL
		reg.redirectBlobs = storage.srv.URL
	})
	digest := reg.push(t, "team/debian", debianImage(t))
	file := authFile(t, "registries:\n  "+reg.host()+":\n    username: "+registryCreds.Username+"\n    password: "+registryCreds.Password+"\n")
	js := scannerWithAuth(t, scanner.Config{InsecureRegistries: []string{reg.host()}, RedirectHosts: []string{storage.host()},
		RegistryAuthFile: file}, nil)
	enqueueAt(t, js, reg.host(), "team/debian", digest)
	ev, r := reportOf(t, js, 1)
	if ev.GetStatus() != report.StatusComplete || r.OS.ID != "debian" {
		t.Fatalf("event %v error %q", ev, r.Error)
	}
	if reg.credentialed.Load() == 0 {
		t.Fatal("the registry never got the file's credentials: the control proves nothing")
	}
	seen := storage.seen()
	if len(seen) == 0 {
		t.Fatal("nothing was redirected: the test proves nothing")
	}
	for _, a := range seen {
		if a != "" {
			t.Errorf("the redirect target got Authorization %q", a)
		}
	}
}

// CUSTOMS_SCANNER_PULL_FROM: a job naming the gate is pulled from its
// upstream with the gate's credentials; the gate is never contacted and
// the report names the gate.
func TestPullFromRedirectsToTheUpstream(t *testing.T) {
	var gateHits atomic.Int32
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		gateHits.Add(1)
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(gate.Close)
	gateHost := strings.TrimPrefix(gate.URL, "http://")
	upstream := newStandin(t, nil)
	digest := upstream.push(t, "team/debian", debianImage(t))
	// Credentials for the gate's name only: they apply to the upstream.
	file := authFile(t, "registries:\n  "+gateHost+":\n    username: "+registryCreds.Username+"\n    password: "+registryCreds.Password+"\n")
	js := scannerWithAuth(t, scanner.Config{InsecureRegistries: []string{gateHost, upstream.host()}, RegistryAuthFile: file,
		PullFrom: []string{gateHost + "=" + upstream.host()}}, nil)
	enqueueAt(t, js, gateHost, "team/debian", digest)
	ev, r := reportOf(t, js, 1)
	if ev.GetStatus() != report.StatusComplete || r.OS.ID != "debian" {
		t.Fatalf("event %v error %q", ev, r.Error)
	}
	if r.Artifact.Registry != gateHost || ev.GetRegistry() != gateHost {
		t.Errorf("report names registry %q (event %q), want the job's %q", r.Artifact.Registry, ev.GetRegistry(), gateHost)
	}
	if n := gateHits.Load(); n != 0 {
		t.Errorf("the gate got %d requests", n)
	}
	if upstream.credentialed.Load() == 0 {
		t.Error("the upstream did not get the gate's credentials")
	}
}

func TestScannerRefusesBadAuthConfig(t *testing.T) {
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	bad := authFile(t, "registries:\n  a.example.com:\n    username: u\n    pasword: p\n")
	for _, tc := range []struct {
		cfg  scanner.Config
		want string
	}{
		{scanner.Config{RegistryAuthFile: bad}, "CUSTOMS_REGISTRY_AUTH: registry auth " + bad + ": line 4: unknown key \"pasword\""},
		{scanner.Config{RegistryAuthFile: filepath.Join(t.TempDir(), "missing")}, "no such file"},
		{scanner.Config{Registries: []string{"gate.example.com"}, PullFrom: []string{"gate.example.com=registry:5000"}},
			"registry:5000 (for gate.example.com) is not an allowlisted registry"},
		{scanner.Config{Registries: []string{"registry:5000"}, PullFrom: []string{"gate.example.com=registry:5000"}},
			"gate.example.com is not an allowlisted registry"},
		{scanner.Config{Registries: []string{"a", "b"}, PullFrom: []string{"a"}}, "want name=host[:port]"},
	} {
		tc.cfg.Signing.Key = testSigningKey
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate: %v, want %q", err, tc.want)
		}
		if _, err := scanner.New(tc.cfg, scanner.Deps{JetStream: js, Log: zerolog.Nop()}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New: %v, want %q", err, tc.want)
		}
	}
}

// A token realm on another host (localhost:<port>: go-containerregistry
// refuses private IP literals as realms), listed as a redirect host but
// not as a token host, is asked without the file's credentials.
func TestRealmOnAnotherHostGetsNoCredentialsFromTheFile(t *testing.T) {
	realm := newSink(t, nil)
	reg := newStandin(t, func(reg *standin) { reg.realm = "http://" + realm.byName() + "/token" })
	digest := reg.push(t, "team/debian", debianImage(t))
	file := authFile(t, "registries:\n  "+reg.host()+":\n    username: "+registryCreds.Username+"\n    password: "+registryCreds.Password+"\n")
	js := scannerWithAuth(t, scanner.Config{InsecureRegistries: []string{reg.host()}, RedirectHosts: []string{realm.byName()},
		RegistryAuthFile: file, MaxDeliver: 1}, nil)
	enqueueAt(t, js, reg.host(), "team/debian", digest)
	if ev, _ := reportOf(t, js, 1); ev.GetStatus() != report.StatusFailed {
		t.Fatalf("event %v: the realm hands out no token, the scan cannot succeed", ev)
	}
	seen := realm.seen()
	if len(seen) == 0 {
		t.Fatal("the realm was never asked: the test proves nothing")
	}
	for _, a := range seen {
		if a != "" {
			t.Errorf("the realm on another host got Authorization %q", a)
		}
	}
}
