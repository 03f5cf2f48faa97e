package harbor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/quarantine/harbor"
)

const (
	robotUser = "robot$customs"
	robotPass = "s3cr3t-robot-token"
	digest    = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// fakeHarbor implements the few Harbor v2.0 API paths the enforcer uses
// (api/v2.0/swagger.yaml: ListLabels, CreateLabel, getArtifact, addLabel,
// removeLabel, scanArtifact) with Harbor's answers, checks each request's
// auth, method, path encoding and body, and records the requests.
type fakeHarbor struct {
	t *testing.T

	mu        sync.Mutex
	requests  []string
	labels    map[int64]string // id -> name (global labels)
	nextID    int64
	artifacts map[string]map[int64]bool // "project/repo@digest" -> label ids
	scanBusy  bool
	scans     int
}

func newFakeHarbor(t *testing.T) (*fakeHarbor, *httptest.Server) {
	f := &fakeHarbor{
		t:         t,
		labels:    map[int64]string{3: "customs:quarantined-old"}, // a decoy for the substring filter
		nextID:    7,
		artifacts: map[string]map[int64]bool{},
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeHarbor) addArtifact(project, repo, dgst string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.artifacts[project+"/"+repo+"@"+dgst] = map[int64]bool{}
}

func (f *fakeHarbor) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.requests
	f.requests = nil
	return r
}

func harborError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func (f *fakeHarbor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	rec := r.Method + " " + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		rec += "?" + r.URL.RawQuery
	}
	if len(body) > 0 {
		rec += " " + strings.TrimSpace(string(body))
	}
	f.requests = append(f.requests, rec)

	if u, p, ok := r.BasicAuth(); !ok || u != robotUser || p != robotPass {
		harborError(w, http.StatusUnauthorized, "UNAUTHORIZED", "unauthorized")
		return
	}
	if len(body) > 0 && r.Header.Get("Content-Type") != "application/json" {
		harborError(w, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "want application/json")
		return
	}
	p, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v2.0/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	seg := strings.Split(p, "/")
	switch {
	case p == "labels" && r.Method == http.MethodGet:
		q := r.URL.Query()
		if q.Get("scope") != "g" || q.Get("page_size") != "100" {
			harborError(w, http.StatusBadRequest, "BAD_REQUEST", "invalid scope: "+q.Get("scope"))
			return
		}
		out := []map[string]any{}
		for id, name := range f.labels {
			if strings.Contains(name, q.Get("name")) { // Harbor: fuzzy match
				out = append(out, map[string]any{"id": id, "name": name, "scope": "g", "project_id": 0})
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	case p == "labels" && r.Method == http.MethodPost:
		var l struct {
			ID          int64  `json:"id"`
			Name        string `json:"name"`
			Description string `json:"description"`
			Color       string `json:"color"`
			Scope       string `json:"scope"`
		}
		if err := json.Unmarshal(body, &l); err != nil || l.Name == "" || l.Scope != "g" || l.ID != 0 || l.Color == "" || l.Description == "" {
			harborError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("bad label %s", body))
			return
		}
		for _, name := range f.labels {
			if name == l.Name {
				harborError(w, http.StatusConflict, "CONFLICT", "label "+l.Name+" already exists")
				return
			}
		}
		id := f.nextID
		f.nextID++
		f.labels[id] = l.Name
		w.Header().Set("Location", "/api/v2.0/labels/"+strconv.FormatInt(id, 10))
		w.WriteHeader(http.StatusCreated)
	case len(seg) >= 5 && seg[0] == "projects" && seg[2] == "repositories" && seg[4] == "artifacts":
		f.artifact(w, r, seg, body)
	default:
		harborError(w, http.StatusNotFound, "NOT_FOUND", "no route "+r.Method+" "+p)
	}
}

func (f *fakeHarbor) artifact(w http.ResponseWriter, r *http.Request, seg []string, body []byte) {
	// Harbor's router decodes the path once: a repository name with a
	// slash must arrive encoded twice, or it is another path.
	once, err := url.PathUnescape(seg[3])
	if err != nil || strings.Contains(once, "/") {
		harborError(w, http.StatusNotFound, "NOT_FOUND", "no route")
		return
	}
	repo, err := url.PathUnescape(once)
	if err != nil || len(seg) < 6 {
		harborError(w, http.StatusNotFound, "NOT_FOUND", "no route")
		return
	}
	key := seg[1] + "/" + repo + "@" + seg[5]
	labels, ok := f.artifacts[key]
	if !ok {
		harborError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("artifact %s not found", key))
		return
	}
	rest := seg[6:]
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		if r.URL.Query().Get("with_label") != "true" {
			harborError(w, http.StatusBadRequest, "BAD_REQUEST", "the test wants with_label=true")
			return
		}
		out := map[string]any{"digest": seg[5], "labels": []map[string]any{}}
		var ls []map[string]any
		for id := range labels {
			ls = append(ls, map[string]any{"id": id, "name": f.labels[id], "scope": "g"})
		}
		if ls != nil {
			out["labels"] = ls
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	case len(rest) == 1 && rest[0] == "labels" && r.Method == http.MethodPost:
		var l struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(body, &l); err != nil || l.ID == 0 {
			harborError(w, http.StatusBadRequest, "BAD_REQUEST", "bad label body")
			return
		}
		if _, ok := f.labels[l.ID]; !ok {
			harborError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("label %d not found", l.ID))
			return
		}
		if labels[l.ID] {
			harborError(w, http.StatusConflict, "CONFLICT", fmt.Sprintf("label %d is already added to the artifact 1", l.ID))
			return
		}
		labels[l.ID] = true
		w.WriteHeader(http.StatusOK)
	case len(rest) == 2 && rest[0] == "labels" && r.Method == http.MethodDelete:
		id, _ := strconv.ParseInt(rest[1], 10, 64)
		if !labels[id] {
			harborError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("reference with label %d and artifact 1 not found", id))
			return
		}
		delete(labels, id)
		w.WriteHeader(http.StatusOK)
	case len(rest) == 1 && rest[0] == "scan" && r.Method == http.MethodPost:
		var st struct {
			ScanType string `json:"scan_type"`
		}
		if len(body) > 0 && (json.Unmarshal(body, &st) != nil || st.ScanType != "vulnerability") {
			harborError(w, http.StatusBadRequest, "BAD_REQUEST", "bad scan type")
			return
		}
		if f.scanBusy {
			harborError(w, http.StatusConflict, "CONFLICT", "a previous scan process is running")
			return
		}
		f.scans++
		w.WriteHeader(http.StatusAccepted)
	default:
		harborError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "no route")
	}
}

func newEnforcer(t *testing.T, srv *httptest.Server) *harbor.Enforcer {
	t.Helper()
	e, err := harbor.New(harbor.Config{URL: srv.URL, Username: robotUser, Password: robotPass, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const (
	art     = "/api/v2.0/projects/library/repositories/team%252Fapp/artifacts/" + digest
	listReq = "GET /api/v2.0/labels?name=customs%3Aquarantined&page_size=100&scope=g"
)

func TestQuarantineReleaseStatus(t *testing.T) {
	ctx := context.Background()
	f, srv := newFakeHarbor(t)
	f.addArtifact("library", "team/app", digest)
	e := newEnforcer(t, srv)
	ref := quarantine.Ref{Registry: "harbor.example.com", Repository: "library/team/app", Digest: digest}

	st, err := e.Status(ctx, ref)
	if err != nil || st.Blocked {
		t.Fatalf("status before: %+v, %v", st, err)
	}
	detail, err := e.Quarantine(ctx, ref, "malware")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(detail)
	detail, err = e.Quarantine(ctx, ref, "malware")
	if err != nil {
		t.Fatalf("second quarantine: %v", err)
	}
	if !strings.Contains(detail, "already") {
		t.Errorf("second quarantine detail = %q", detail)
	}
	st, err = e.Status(ctx, ref)
	if err != nil || !st.Blocked {
		t.Fatalf("status after quarantine: %+v, %v", st, err)
	}
	if _, err := e.Release(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Release(ctx, ref); err != nil {
		t.Fatalf("second release: %v", err)
	}
	st, err = e.Status(ctx, ref)
	if err != nil || st.Blocked {
		t.Fatalf("status after release: %+v, %v", st, err)
	}

	want := []string{
		"GET " + art + "?with_label=true",
		listReq,
		`POST /api/v2.0/labels {"name":"customs:quarantined","description":"Quarantined by Customs: do not use. Set and removed by Customs; see its quarantine record.","color":"#C92100","scope":"g"}`,
		"POST " + art + `/labels {"id":7}`,
		"POST " + art + `/labels {"id":7}`, // 409 already added: success
		"GET " + art + "?with_label=true",
		"DELETE " + art + "/labels/7",
		"DELETE " + art + "/labels/7", // 404: already gone
		"GET " + art + "?with_label=true",
	}
	if diff := cmp.Diff(want, f.take()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}

	// A second enforcer (a restarted controller) finds the label.
	e2 := newEnforcer(t, srv)
	if _, err := e2.Quarantine(ctx, ref, "malware"); err != nil {
		t.Fatal(err)
	}
	want = []string{listReq, "POST " + art + `/labels {"id":7}`}
	if diff := cmp.Diff(want, f.take()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestReleaseWithoutLabel(t *testing.T) {
	f, srv := newFakeHarbor(t)
	f.addArtifact("library", "team/app", digest)
	e := newEnforcer(t, srv)
	ref := quarantine.Ref{Repository: "library/team/app", Digest: digest}
	detail, err := e.Release(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(detail, "does not exist") {
		t.Errorf("detail = %q", detail)
	}
	// Release never creates the label.
	if diff := cmp.Diff([]string{listReq}, f.take()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestLabelDeletedInHarbor(t *testing.T) {
	ctx := context.Background()
	f, srv := newFakeHarbor(t)
	f.addArtifact("library", "team/app", digest)
	e := newEnforcer(t, srv)
	ref := quarantine.Ref{Repository: "library/team/app", Digest: digest}
	if _, err := e.Quarantine(ctx, ref, ""); err != nil {
		t.Fatal(err)
	}
	// An administrator deletes the label (Harbor drops its references).
	f.mu.Lock()
	delete(f.labels, 7)
	f.artifacts["library/team/app@"+digest] = map[int64]bool{}
	f.mu.Unlock()
	f.take()

	if _, err := e.Quarantine(ctx, ref, ""); err != nil {
		t.Fatal(err)
	}
	got := f.take()
	want := []string{
		"POST " + art + `/labels {"id":7}`, // 404 label not found
		listReq,
		got[2], // POST /labels again
		"POST " + art + `/labels {"id":8}`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	_, srv := newFakeHarbor(t)
	e := newEnforcer(t, srv)
	ref := quarantine.Ref{Repository: "library/app", Digest: digest}

	_, err := e.Quarantine(ctx, ref, "")
	var ae *harbor.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound {
		t.Fatalf("err = %v, want a 404 APIError", err)
	}
	for _, s := range []string{"NOT_FOUND", "artifact library/app@" + digest + " not found", "404"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("err %q does not say %q", err, s)
		}
	}

	bad, err := harbor.New(harbor.Config{URL: srv.URL, Username: robotUser, Password: "wrong-password", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Quarantine(ctx, ref, "")
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("err = %v, want 401 UNAUTHORIZED", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("err %q carries the password", err)
	}

	if _, err := e.Quarantine(ctx, quarantine.Ref{Repository: "app", Digest: digest}, ""); err == nil {
		t.Error("a repository without a project was accepted")
	}
	if _, err := harbor.New(harbor.Config{URL: "https://robot:pw@harbor.example.com", Username: "u", Password: "p"}); err == nil {
		t.Error("a URL with credentials was accepted")
	}
	if _, err := harbor.New(harbor.Config{URL: "https://harbor.example.com"}); err == nil {
		t.Error("no credentials was accepted")
	}
}

func TestStatusArtifactGone(t *testing.T) {
	_, srv := newFakeHarbor(t)
	e := newEnforcer(t, srv)
	st, err := e.Status(context.Background(), quarantine.Ref{Repository: "library/app", Digest: digest})
	if err != nil || !st.Blocked || !strings.Contains(st.Detail, "not found") {
		t.Fatalf("status = %+v, %v", st, err)
	}
}

func TestRescan(t *testing.T) {
	ctx := context.Background()
	f, srv := newFakeHarbor(t)
	f.addArtifact("library", "team/app", digest)
	e := newEnforcer(t, srv)
	ref := quarantine.Ref{Repository: "library/team/app", Digest: digest}
	if _, err := e.Rescan(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"POST " + art + `/scan {"scan_type":"vulnerability"}`}, f.take()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	f.mu.Lock()
	f.scanBusy = true
	f.mu.Unlock()
	_, err := e.Rescan(ctx, ref)
	if !errors.Is(err, harbor.ErrScanInProgress) || !strings.Contains(err.Error(), "a previous scan process is running") {
		t.Fatalf("err = %v, want ErrScanInProgress with Harbor's message", err)
	}
	if f.scans != 1 {
		t.Errorf("scans = %d", f.scans)
	}
}
