// Package harbor is the quarantine enforcer for Harbor (API v2.0): it
// marks a quarantined artifact with the global label customs:quarantined
// and asks Harbor to rescan an artifact when its verdict changes.
//
// A label does not stop pulls. In Harbor the block comes from the
// project's "prevent vulnerable images" setting with Customs as the
// project's scanner: Harbor refuses (412) artifacts whose Customs report
// has a finding at or above the project's severity. The label is the
// visible mark, which Status checks, and Rescan makes Harbor fetch the
// new report, so the block follows the verdict.
//
// Every call is idempotent: the label is created when missing, adding
// it twice is Harbor's 409 "already added" (success), removing it when
// it is gone is Harbor's 404 (success).
//
// The robot account needs label:create (system level, once),
// artifact:read, artifact-label:create|delete and scan:create.
package harbor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/customs-scan/customs/pkg/quarantine"
)

// DefaultLabel is the label put on quarantined artifacts.
const DefaultLabel = "customs:quarantined"

// maxBody bounds what is read of one Harbor answer.
const maxBody = 1 << 20

// ErrScanInProgress is wrapped by Rescan's error when Harbor answers 409:
// a scan of the artifact is already running. Retry later: the running
// scan may have fetched the report before the verdict changed.
var ErrScanInProgress = errors.New("harbor: a scan of the artifact is already running")

// Config says which Harbor to call and as whom.
type Config struct {
	// URL is Harbor's base URL ("https://harbor.example.com"), without
	// credentials; /api/v2.0 is appended.
	URL string
	// Username and Password are a robot account's ("robot$customs") name
	// and secret, sent as basic auth.
	Username string
	Password string
	// HTTPClient defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// Label defaults to DefaultLabel; Color to a red.
	Label string
	Color string
}

// Enforcer labels artifacts in one Harbor. It is safe for concurrent use.
type Enforcer struct {
	base   string // scheme://host[/path], no trailing slash
	user   string
	pass   string
	client *http.Client
	label  string
	color  string

	mu      sync.Mutex
	labelID int64 // 0: not resolved yet
}

var _ quarantine.Enforcer = (*Enforcer)(nil)

// New checks cfg.
func New(cfg Config) (*Enforcer, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("harbor: URL %q: want http(s)://host", cfg.URL)
	}
	if u.User != nil {
		// Credentials in the URL would end up in error messages.
		return nil, errors.New("harbor: URL must not carry credentials; use Username and Password")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("harbor: URL %q: no query or fragment", cfg.URL)
	}
	if cfg.Username == "" || cfg.Password == "" {
		return nil, errors.New("harbor: Username and Password (a robot account) are required")
	}
	e := &Enforcer{
		base:   strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"),
		user:   cfg.Username,
		pass:   cfg.Password,
		client: cfg.HTTPClient,
		label:  cfg.Label,
		color:  cfg.Color,
	}
	if e.client == nil {
		e.client = &http.Client{Timeout: 30 * time.Second}
	}
	if e.label == "" {
		e.label = DefaultLabel
	}
	if e.color == "" {
		e.color = "#C92100"
	}
	return e, nil
}

// Name implements quarantine.Enforcer.
func (e *Enforcer) Name() string { return "harbor-label" }

// Quarantine adds the label to the artifact, creating the label first
// when Harbor has none by that name.
func (e *Enforcer) Quarantine(ctx context.Context, ref quarantine.Ref, reason string) (string, error) {
	art, err := artifactPath(ref)
	if err != nil {
		return "", err
	}
	id, err := e.labelIDFor(ctx, true)
	if err != nil {
		return "", err
	}
	status, err := e.addLabel(ctx, art, id)
	if isStatus(err, http.StatusNotFound) {
		// The label may have been deleted in Harbor since it was cached
		// (or the artifact is gone): look it up again, retry once if it
		// changed.
		e.forgetLabel(id)
		nid, lerr := e.labelIDFor(ctx, true)
		if lerr != nil {
			return "", lerr
		}
		if nid != id {
			status, err = e.addLabel(ctx, art, nid)
		}
	}
	if err != nil {
		return "", err
	}
	if status == http.StatusConflict {
		return fmt.Sprintf("label %s already on the artifact", e.label), nil
	}
	return fmt.Sprintf("label %s added", e.label), nil
}

// addLabel answers the status of a success: 200, or 409 (already added).
func (e *Enforcer) addLabel(ctx context.Context, art string, id int64) (int, error) {
	resp, err := e.do(ctx, http.MethodPost, art+"/labels", map[string]int64{"id": id}, http.StatusOK, http.StatusConflict)
	if err != nil {
		return 0, err
	}
	return resp.status, nil
}

// Release removes the label from the artifact.
func (e *Enforcer) Release(ctx context.Context, ref quarantine.Ref) (string, error) {
	art, err := artifactPath(ref)
	if err != nil {
		return "", err
	}
	id, err := e.labelIDFor(ctx, false)
	if err != nil {
		return "", err
	}
	if id == 0 {
		return fmt.Sprintf("label %s does not exist in Harbor: nothing to remove", e.label), nil
	}
	resp, err := e.do(ctx, http.MethodDelete, art+"/labels/"+strconv.FormatInt(id, 10), nil, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return "", err
	}
	if resp.status == http.StatusNotFound {
		return fmt.Sprintf("label %s not on the artifact (%s)", e.label, resp.message()), nil
	}
	return fmt.Sprintf("label %s removed", e.label), nil
}

// Status reports whether the artifact carries the label. An artifact
// Harbor does not know counts as blocked (it cannot be pulled).
func (e *Enforcer) Status(ctx context.Context, ref quarantine.Ref) (quarantine.Status, error) {
	art, err := artifactPath(ref)
	if err != nil {
		return quarantine.Status{}, err
	}
	resp, err := e.do(ctx, http.MethodGet, art+"?with_label=true", nil, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return quarantine.Status{}, err
	}
	if resp.status == http.StatusNotFound {
		return quarantine.Status{Blocked: true, Detail: "artifact not found in Harbor: " + resp.message()}, nil
	}
	var a struct {
		Labels []label `json:"labels"`
	}
	if err := json.Unmarshal(resp.body, &a); err != nil {
		return quarantine.Status{}, fmt.Errorf("harbor: GET %s: decode artifact: %w", art, err)
	}
	for _, l := range a.Labels {
		if l.Name == e.label {
			return quarantine.Status{Blocked: true, Detail: fmt.Sprintf("labelled %s", e.label)}, nil
		}
	}
	return quarantine.Status{Detail: fmt.Sprintf("not labelled %s", e.label)}, nil
}

// Rescan asks Harbor to scan the artifact again (202), so that it fetches
// Customs' new report after a verdict changed. A scan already running is
// an error wrapping ErrScanInProgress.
func (e *Enforcer) Rescan(ctx context.Context, ref quarantine.Ref) (string, error) {
	art, err := artifactPath(ref)
	if err != nil {
		return "", err
	}
	resp, err := e.do(ctx, http.MethodPost, art+"/scan", map[string]string{"scan_type": "vulnerability"}, http.StatusAccepted, http.StatusConflict)
	if err != nil {
		return "", err
	}
	if resp.status == http.StatusConflict {
		return "", fmt.Errorf("%w: %s", ErrScanInProgress, resp.message())
	}
	return "rescan requested", nil
}

// label is Harbor's Label model (the fields used here).
type label struct {
	ID          int64  `json:"id,omitempty"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	Color       string `json:"color,omitempty"`
	Scope       string `json:"scope,omitempty"`
}

// labelIDFor answers the global label's id, looking it up (and, when
// create is set, creating it) the first time. 0 without create means
// Harbor has no such label.
func (e *Enforcer) labelIDFor(ctx context.Context, create bool) (int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.labelID != 0 {
		return e.labelID, nil
	}
	id, err := e.findLabel(ctx)
	if err != nil || id != 0 || !create {
		e.labelID = id
		return id, err
	}
	body := label{
		Name:        e.label,
		Description: "Quarantined by Customs: do not use. Set and removed by Customs; see its quarantine record.",
		Color:       e.color,
		Scope:       "g",
	}
	resp, err := e.do(ctx, http.MethodPost, "/labels", body, http.StatusCreated, http.StatusConflict)
	if err != nil {
		return 0, err
	}
	// Harbor answers 201 with Location: /api/v2.0/labels/<id>; a 409 means
	// another Customs created it meanwhile: look it up again.
	if resp.status == http.StatusCreated {
		if id, err := strconv.ParseInt(path.Base(resp.location), 10, 64); err == nil && id > 0 {
			e.labelID = id
			return id, nil
		}
	}
	id, err = e.findLabel(ctx)
	if err != nil {
		return 0, err
	}
	if id == 0 {
		return 0, fmt.Errorf("harbor: label %s was created but cannot be found", e.label)
	}
	e.labelID = id
	return id, nil
}

// forgetLabel drops the cached id if it still is id.
func (e *Enforcer) forgetLabel(id int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.labelID == id {
		e.labelID = 0
	}
}

// findLabel lists global labels by name. Harbor's name filter is a
// substring match, so the exact name is picked from the answer.
func (e *Enforcer) findLabel(ctx context.Context) (int64, error) {
	q := url.Values{"scope": {"g"}, "name": {e.label}, "page_size": {"100"}}
	resp, err := e.do(ctx, http.MethodGet, "/labels?"+q.Encode(), nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	var ls []label
	if err := json.Unmarshal(resp.body, &ls); err != nil {
		return 0, fmt.Errorf("harbor: GET /labels: decode: %w", err)
	}
	for _, l := range ls {
		if l.Name == e.label && l.ID > 0 {
			return l.ID, nil
		}
	}
	return 0, nil
}

// artifactPath is /projects/{project}/repositories/{repository}/artifacts/{digest}.
// Harbor wants the repository name URL-encoded twice when it contains a
// slash (a/b -> a%252Fb): once would be decoded by its router.
func artifactPath(ref quarantine.Ref) (string, error) {
	project, repo, ok := strings.Cut(ref.Repository, "/")
	if !ok || project == "" || repo == "" {
		return "", fmt.Errorf("harbor: repository %q: want <project>/<repository>", ref.Repository)
	}
	if !strings.HasPrefix(ref.Digest, "sha256:") || strings.ContainsAny(ref.Digest, "/?#%") {
		return "", fmt.Errorf("harbor: %s: want a sha256 digest", ref)
	}
	return "/projects/" + url.PathEscape(project) +
		"/repositories/" + url.PathEscape(url.PathEscape(repo)) +
		"/artifacts/" + ref.Digest, nil
}

// answer is a response whose status was one of the expected ones.
type answer struct {
	status   int
	body     []byte
	location string
}

// message is Harbor's error text in the body, if any.
func (a answer) message() string { return errorText(a.body) }

// ErrorItem is one entry of Harbor's error body.
type ErrorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type errorBody struct {
	Errors []ErrorItem `json:"errors"`
}

// APIError is an unexpected Harbor answer, with Harbor's error list.
type APIError struct {
	Method     string
	Path       string // under /api/v2.0, no credentials
	StatusCode int
	// Errors are Harbor's {"errors":[{"code","message"}]}.
	Errors []ErrorItem
	// Body is the raw answer (truncated) when it was not Harbor's format.
	Body string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "harbor: %s %s: %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	for _, x := range e.Errors {
		fmt.Fprintf(&b, ": %s: %s", x.Code, x.Message)
	}
	if len(e.Errors) == 0 && e.Body != "" {
		fmt.Fprintf(&b, ": %q", e.Body)
	}
	return b.String()
}

func isStatus(err error, code int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == code
}

// do sends one request to /api/v2.0+p with JSON body in (nil: none) and
// returns the answer when its status is one of ok.
func (e *Enforcer) do(ctx context.Context, method, p string, in any, ok ...int) (answer, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return answer{}, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.base+"/api/v2.0"+p, body)
	if err != nil {
		return answer{}, fmt.Errorf("harbor: %s %s: %w", method, p, err)
	}
	req.SetBasicAuth(e.user, e.pass)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		// *url.Error names the URL, which carries no credentials (New
		// refuses them in the URL; basic auth is a header).
		return answer{}, fmt.Errorf("harbor: %s %s: %w", method, p, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return answer{}, fmt.Errorf("harbor: %s %s: read answer: %w", method, p, err)
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			return answer{status: s, body: b, location: resp.Header.Get("Location")}, nil
		}
	}
	ae := &APIError{Method: method, Path: p, StatusCode: resp.StatusCode}
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil {
		ae.Errors = eb.Errors
	}
	if len(ae.Errors) == 0 {
		ae.Body = truncate(strings.TrimSpace(string(b)), 512)
	}
	return answer{}, ae
}

// errorText is the messages of Harbor's error body, or the body itself.
func errorText(b []byte) string {
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil && len(eb.Errors) > 0 {
		var parts []string
		for _, x := range eb.Errors {
			parts = append(parts, x.Code+": "+x.Message)
		}
		return strings.Join(parts, "; ")
	}
	return truncate(strings.TrimSpace(string(b)), 512)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
