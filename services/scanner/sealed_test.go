package scanner_test

import (
	"context"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/scanner"
)

const testJobKey = "scanner-test-job-key-0123456789abcdef0123"

// enqueueSealed publishes a job carrying authorization sealed under key
// (as the Harbor adapter does), valid until expires.
func enqueueSealed(t *testing.T, js jetstream.JetStream, key, registry, repo, digest, authorization string, expires time.Time) {
	t.Helper()
	k, err := wire.NewJobKey(key)
	if err != nil {
		t.Fatal(err)
	}
	job := &customsv1.ScanJob{JobId: registry + "/" + repo + "@" + digest, Source: "harbor", Registry: registry,
		Repository: repo, Digest: digest, Insecure: true, EventId: "harbor-scan:test"}
	if err := k.Seal(job, authorization, expires); err != nil {
		t.Fatal(err)
	}
	data, _ := proto.Marshal(job)
	if _, err := js.Publish(context.Background(), queue.JobsSubjectPrefix+"harbor", data, jetstream.WithMsgID(job.JobId)); err != nil {
		t.Fatal(err)
	}
}

func basicValue(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// A job's sealed Basic credentials reach its registry (the scanner has no
// credentials of its own) and never the storage its blobs redirect to.
func TestSealedCredentialsGoToTheJobsRegistryOnly(t *testing.T) {
	var reg *standin
	storage := newSink(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reg.inner.ServeHTTP(w, r) }))
	reg = newStandin(t, func(reg *standin) {
		reg.redirectManifests = storage.srv.URL
		reg.redirectBlobs = storage.srv.URL
	})
	digest := reg.push(t, "team/debian", debianImage(t))
	js := scannerWithAuth(t, scanner.Config{InsecureRegistries: []string{reg.host()}, RedirectHosts: []string{storage.host()},
		JobKey: testJobKey}, nil)
	enqueueSealed(t, js, testJobKey, reg.host(), "team/debian", digest,
		basicValue(registryCreds.Username, registryCreds.Password), time.Now().Add(time.Hour))
	ev, r := reportOf(t, js, 1)
	if ev.GetStatus() != report.StatusComplete || r.OS.ID != "debian" {
		t.Fatalf("event %v error %q", ev, r.Error)
	}
	if reg.credentialed.Load() == 0 {
		t.Fatal("the registry never got the job's credentials")
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

// A registry token ("Bearer <jwt>", what Harbor sends when the adapter
// asks for Bearer) is sent as it is, never exchanged at a realm.
func TestSealedBearerTokenIsSentAsIs(t *testing.T) {
	const token = "harbor-registry-jwt.eyJzdWIiOiJyb2JvdCJ9.sig"
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	direct := httptest.NewServer(inner)
	t.Cleanup(direct.Close)
	var realmHits, authorized atomic.Int32
	var front *httptest.Server
	front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/service/token" {
			realmHits.Add(1)
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+front.URL+`/service/token",service="harbor-registry"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		authorized.Add(1)
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	host := strings.TrimPrefix(front.URL, "http://")
	digest := pushTo(t, strings.TrimPrefix(direct.URL, "http://"), "library/debian", debianImage(t))
	js := scannerWithAuth(t, scanner.Config{InsecureRegistries: []string{host}, JobKey: testJobKey}, nil)
	enqueueSealed(t, js, testJobKey, host, "library/debian", digest, "Bearer "+token, time.Now().Add(time.Hour))
	ev, r := reportOf(t, js, 1)
	if ev.GetStatus() != report.StatusComplete || r.OS.ID != "debian" {
		t.Fatalf("event %v error %q", ev, r.Error)
	}
	if authorized.Load() == 0 || realmHits.Load() != 0 {
		t.Errorf("%d requests with the token, %d to the realm; want some and none", authorized.Load(), realmHits.Load())
	}
}

// Sealed credentials the scanner cannot use fail the job at once with the
// reason, never an anonymous pull; the dead letter holds no credentials,
// not even sealed, and nothing logged or published holds them in clear.
func TestUnopenableSealedCredentialsFailTheScan(t *testing.T) {
	for _, tc := range []struct {
		name, scannerKey, sealKey string
		expires                   time.Duration
		want                      string
	}{
		{"scanner without a key", "", testJobKey, time.Hour, "no CUSTOMS_JOB_KEY"},
		{"another key", testJobKey, testJobKey + "-rotated", time.Hour, "do not open with this CUSTOMS_JOB_KEY"},
		{"expired", testJobKey, testJobKey, -time.Minute, "have expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newStandin(t, nil)
			digest := reg.push(t, "team/debian", debianImage(t))
			var logs svcmaintest.LogBuffer
			js := scannerWithAuth(t, scanner.Config{InsecureRegistries: []string{reg.host()}, JobKey: tc.scannerKey}, &logs)
			auth := basicValue(registryCreds.Username, registryCreds.Password)
			enqueueSealed(t, js, tc.sealKey, reg.host(), "team/debian", digest, auth, time.Now().Add(tc.expires))
			failedOnce(t, js, tc.want)
			if n := reg.requests.Load(); n != 0 {
				t.Errorf("the registry got %d requests", n)
			}
			var letter customsv1.DeadLetter
			if err := proto.Unmarshal(queuetest.WaitMsgs(t, js, queue.DLQStream, 1)[0].Data, &letter); err != nil {
				t.Fatal(err)
			}
			if letter.GetJob().GetDigest() != digest || len(letter.GetJob().GetSealedAuthorization()) != 0 {
				t.Errorf("dead letter job %v: want the job without its sealed credentials", letter.GetJob())
			}
			everything := logs.String() + streamDump(t, js)
			for _, s := range []string{registryCreds.Password, auth, strings.TrimPrefix(auth, "Basic ")} {
				if strings.Contains(everything, s) {
					t.Errorf("logs or streams carry %q", s)
				}
			}
		})
	}
}
