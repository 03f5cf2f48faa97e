package results_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/regauth/regauthtest"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/results"
)

// standIn records the requests a registry API stand-in received, as
// "METHOD path" or "ECR <Action> <body>".
type standIn struct {
	mu   sync.Mutex
	reqs []string
}

func (s *standIn) add(r string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
}

func (s *standIn) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.reqs...)
}

func (s *standIn) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(s.list()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("stand-in got %d requests, want %d: %v", len(s.list()), n, s.list())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s.list()
}

// A Harbor registry named in the auth file: a quarantine labels the
// artifact through Harbor's API with the robot account, a release removes
// the label, a changed verdict asks Harbor to rescan.
func TestHarborRegistryIsLabelledThroughItsAPI(t *testing.T) {
	var got standIn
	harborAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		if user != "robot$customs" || pass != "robot-secret-123" {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"unauthorized"}]}`, http.StatusUnauthorized)
			return
		}
		got.add(r.Method + " " + r.URL.EscapedPath())
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v2.0/labels":
			_, _ = io.WriteString(w, `[]`)
		case r.Method == http.MethodPost && r.URL.Path == "/api/v2.0/labels":
			w.Header().Set("Location", "/api/v2.0/labels/7")
			w.WriteHeader(http.StatusCreated)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/labels"):
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/scan"):
			w.WriteHeader(http.StatusAccepted)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(harborAPI.Close)
	auth := filepath.Join(t.TempDir(), "registries.yaml")
	if err := os.WriteFile(auth, []byte("registries:\n  harbor.test:\n    username: robot$customs\n    password: robot-secret-123\n    harbor:\n      url: "+harborAPI.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken, Quarantine: "enforce", RegistryAuthFile: auth})
	bad := quarantineReport("library/app", 1, time.Now().UTC().Truncate(time.Millisecond))
	bad.Artifact.Registry = "harbor.test"
	e.publish(t, bad)
	reqs := got.wait(t, 3)
	want := []string{"GET /api/v2.0/labels", "POST /api/v2.0/labels", "POST /api/v2.0/projects/library/repositories/app/artifacts/" + digest(1) + "/labels"}
	if strings.Join(reqs[:3], "\n") != strings.Join(want, "\n") {
		t.Fatalf("harbor requests:\n%s\nwant\n%s", strings.Join(reqs, "\n"), strings.Join(want, "\n"))
	}
	rec := e.waitRecord(t, digest(1), func(r quarantine.RecordJSON) bool { return len(r.Enforcement) == 1 })
	if rec.Kind != "harbor" || rec.Enforcement[0].Enforcer != "harbor-label" || rec.Enforcement[0].Outcome != "done" {
		t.Errorf("record = %+v", rec)
	}
	if code, body := e.send(t, http.MethodPost, testToken, "/v1/quarantine/"+digest(1)+"/release", `{"reason":"false positive"}`); code != http.StatusOK {
		t.Fatalf("release: %d %s", code, body)
	}
	reqs = got.wait(t, 4)
	if reqs[3] != "DELETE /api/v2.0/projects/library/repositories/app/artifacts/"+digest(1)+"/labels/7" {
		t.Errorf("release request = %s", reqs[3])
	}
	// A rescan turns the verdict to pass: Harbor is asked to fetch it again.
	clean := newReport("library/app", 1, time.Now().UTC().Add(time.Minute))
	clean.Artifact.Registry = "harbor.test"
	e.publish(t, clean)
	reqs = got.wait(t, 5)
	if reqs[4] != "POST /api/v2.0/projects/library/repositories/app/artifacts/"+digest(1)+"/scan" {
		t.Errorf("rescan request = %s", reqs[4])
	}
}

// An ECR registry: the quarantine archives the image with the SDK's signed
// UpdateImageStorageClass; a push of the same digest (ECR restores an
// archived image that is pushed again) archives it again; the release
// restores it to STANDARD.
func TestECRImageIsArchivedAndArchivedAgainAfterARepush(t *testing.T) {
	regauthtest.SetAWSEnv(t)
	var got standIn
	ecrAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=") {
			http.Error(w, "unsigned", http.StatusForbidden)
			return
		}
		action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonEC2ContainerRegistry_V20150921.")
		body, _ := io.ReadAll(r.Body)
		var in map[string]any
		_ = json.Unmarshal(body, &in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		switch action {
		case "UpdateImageStorageClass":
			got.add("ECR " + action + " " + in["repositoryName"].(string) + " " + in["targetStorageClass"].(string) + " " + in["registryId"].(string))
			status := "ARCHIVED"
			if in["targetStorageClass"] == "STANDARD" {
				status = "ACTIVATING"
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"registryId": in["registryId"], "repositoryName": in["repositoryName"], "imageId": in["imageId"], "imageStatus": status})
		default:
			got.add("ECR " + action)
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"__type":"InvalidParameterException","message":"unexpected"}`)
		}
	}))
	t.Cleanup(ecrAPI.Close)
	const host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
	auth := filepath.Join(t.TempDir(), "registries.yaml")
	if err := os.WriteFile(auth, []byte("registries:\n  "+host+":\n    ecr:\n      region: eu-west-1\n      endpoint: "+ecrAPI.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken, Quarantine: "enforce", RegistryAuthFile: auth})
	bad := quarantineReport("team/app", 1, time.Now().UTC().Truncate(time.Millisecond))
	bad.Artifact.Registry = host
	e.publish(t, bad)
	archive := "ECR UpdateImageStorageClass team/app ARCHIVE 123456789012"
	if reqs := got.wait(t, 1); reqs[0] != archive {
		t.Fatalf("ECR requests = %v", reqs)
	}
	e.waitRecord(t, digest(1), func(r quarantine.RecordJSON) bool {
		return len(r.Enforcement) == 1 && r.Enforcement[0].Outcome == "done" && r.Enforcement[0].Enforcer == "ecr-archive"
	})
	// The same digest pushed again under a new tag.
	p := &wire.Publisher{JS: e.js, Signer: testSigner(t)}
	if err := p.PublishTags(context.Background(), &customsv1.TagsAdded{Registry: host, Repository: "team/app", Digest: digest(1),
		Tags: []string{"v2"}, RequestedAt: timestamppb.Now()}); err != nil {
		t.Fatal(err)
	}
	if reqs := got.wait(t, 2); reqs[1] != archive {
		t.Fatalf("after a re-push: %v", reqs)
	}
	if code, body := e.send(t, http.MethodPost, testToken, "/v1/quarantine/"+digest(1)+"/release", `{"reason":"fixed upstream"}`); code != http.StatusOK {
		t.Fatalf("release: %d %s", code, body)
	}
	if reqs := got.wait(t, 3); reqs[2] != "ECR UpdateImageStorageClass team/app STANDARD 123456789012" {
		t.Fatalf("release requests = %v", reqs)
	}
	rec := e.waitRecord(t, digest(1), func(r quarantine.RecordJSON) bool { return r.State == "released" })
	if !strings.Contains(rec.Enforcement[0].Detail, "20 minutes") {
		t.Errorf("release detail = %q", rec.Enforcement[0].Detail)
	}
}

// A registry that refuses the enforcement: the record says so at once
// (the gate-less registry stays pullable meanwhile), the event is retried
// with a backoff until the registry accepts, and the audit keeps each step.
func TestRefusedEnforcementIsRetriedAndAudited(t *testing.T) {
	var got standIn
	var adds atomic.Int32
	harborAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.add(r.Method + " " + r.URL.EscapedPath())
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v2.0/labels":
			_, _ = io.WriteString(w, `[{"id":3,"name":"customs:quarantined","scope":"g"}]`)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/labels"):
			if adds.Add(1) <= 1 {
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, `{"errors":[{"code":"INTERNAL_SERVER_ERROR","message":"database is down"}]}`)
				return
			}
			w.WriteHeader(http.StatusOK)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(harborAPI.Close)
	auth := filepath.Join(t.TempDir(), "registries.yaml")
	if err := os.WriteFile(auth, []byte("registries:\n  harbor.test:\n    kind: harbor\n    username: robot$customs\n    password: robot-secret-123\n    harbor:\n      url: "+harborAPI.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, AdminToken: testToken, Quarantine: "enforce", RegistryAuthFile: auth})
	bad := quarantineReport("library/app", 1, time.Now().UTC())
	bad.Artifact.Registry = "harbor.test"
	e.publish(t, bad)
	rec := e.waitRecord(t, digest(1), func(r quarantine.RecordJSON) bool { return len(r.Enforcement) == 1 })
	if en := rec.Enforcement[0]; en.Outcome != "failed" || !strings.Contains(en.Error, "database is down") || en.Attempts != 1 {
		t.Fatalf("first enforcement = %+v", en)
	}
	rec = e.waitRecord(t, digest(1), func(r quarantine.RecordJSON) bool {
		return len(r.Enforcement) == 1 && r.Enforcement[0].Outcome == "done"
	})
	if rec.Enforcement[0].Attempts != 2 {
		t.Errorf("attempts = %d, want 2", rec.Enforcement[0].Attempts)
	}
	var changes []string
	for _, a := range e.audit(t, digest(1)) {
		changes = append(changes, a.Change)
	}
	if strings.Join(changes, ",") != "quarantined,enforced" {
		t.Errorf("audit = %v", changes)
	}
	for _, r := range got.list() {
		if strings.Contains(r, "robot-secret") {
			t.Errorf("secret in a request line: %s", r)
		}
	}
}
