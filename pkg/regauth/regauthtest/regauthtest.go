// Package regauthtest has stand-ins for testing registry credentials: an
// ECR API answering GetAuthorizationToken (checked as the AWS SDK sends
// it: JSON 1.1 target, SigV4 signature) and registry wrappers that demand
// exactly one set of Basic credentials.
package regauthtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// AccessKeyID is the static AWS access key SetAWSEnv puts in the
// environment; the stand-in checks requests are signed with it.
const AccessKeyID = "AKIACUSTOMSTEST00001"

// SecretAccessKey goes with AccessKeyID.
const SecretAccessKey = "customs-test-secret-access-key-0123456789"

// SetAWSEnv gives the AWS SDK's default chain static credentials and
// nothing else to find (no shared files, profile or instance metadata).
func SetAWSEnv(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       SecretAccessKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_DEFAULT_PROFILE":         "",
		"AWS_CONFIG_FILE":             dir + "/config",
		"AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials",
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_ECR":        "",
		"HTTP_PROXY":                  "",
		"HTTPS_PROXY":                 "",
		"http_proxy":                  "",
		"https_proxy":                 "",
	} {
		t.Setenv(k, v)
	}
}

// ECR is a stand-in ECR API. Each GetAuthorizationToken issues a new
// random password (token "AWS:<password>") valid for Lifetime; Registry
// wraps a registry so that only the newest password is accepted.
type ECR struct {
	// URL is the endpoint to configure (ecr.endpoint).
	URL string
	t   testing.TB
	// now stamps expiresAt (the test's clock).
	now      func() time.Time
	lifetime time.Duration
	fail     atomic.Bool
	mu       sync.Mutex
	issued   []string
}

// StartECR serves a stand-in until the test ends. now may be nil
// (time.Now); tokens expire lifetime after issue.
func StartECR(t testing.TB, now func() time.Time, lifetime time.Duration) *ECR {
	t.Helper()
	if now == nil {
		now = time.Now
	}
	e := &ECR{t: t, now: now, lifetime: lifetime}
	srv := httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(srv.Close)
	e.URL = srv.URL
	return e
}

// Fail makes GetAuthorizationToken answer 403 AccessDeniedException.
func (e *ECR) Fail(fail bool) { e.fail.Store(fail) }

// Calls is how many tokens were issued.
func (e *ECR) Calls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.issued)
}

// Passwords are the issued passwords, oldest first.
func (e *ECR) Passwords() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string{}, e.issued...)
}

// Password is the newest password ("" before the first call).
func (e *ECR) Password() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.issued) == 0 {
		return ""
	}
	return e.issued[len(e.issued)-1]
}

// DeniedMessage is the message of the stand-in's AccessDeniedException.
const DeniedMessage = "User: arn:aws:iam::123456789012:user/customs is not authorized to perform: ecr:GetAuthorizationToken"

func (e *ECR) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	// What the AWS SDK sends for ECR (awsJson1_1, SigV4 with the static key).
	if got := r.Header.Get("X-Amz-Target"); got != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" {
		e.t.Errorf("ECR stand-in: X-Amz-Target %q", got)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		e.t.Errorf("ECR stand-in: %s %s", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		e.t.Errorf("ECR stand-in: Content-Type %q", ct)
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+AccessKeyID+"/") || !strings.Contains(auth, "/ecr/aws4_request") ||
		!strings.Contains(auth, "Signature=") {
		e.t.Errorf("ECR stand-in: Authorization %q is not a SigV4 signature with %s for ecr", auth, AccessKeyID)
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil || len(in) != 0 {
		e.t.Errorf("ECR stand-in: body %q, want {}", body)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if e.fail.Load() {
		w.Header().Set("X-Amzn-ErrorType", "AccessDeniedException")
		w.WriteHeader(http.StatusForbidden)
		_, _ = fmt.Fprintf(w, `{"__type":"AccessDeniedException","message":%q}`, DeniedMessage)
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	pw := "ecr-" + hex.EncodeToString(b)
	e.mu.Lock()
	e.issued = append(e.issued, pw)
	e.mu.Unlock()
	expires := e.now().Add(e.lifetime)
	_ = json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{{
		"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:" + pw)),
		"expiresAt":          float64(expires.UnixMilli()) / 1000,
		"proxyEndpoint":      "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
	}}})
}

// Registry wraps inner: only Basic AWS:<newest password> gets through.
func (e *ECR) Registry(inner http.Handler) http.Handler {
	return BasicAuthFunc(inner, func(user, password string) bool {
		cur := e.Password()
		return cur != "" && user == "AWS" && password == cur
	})
}

// BasicAuth wraps inner so that every request needs Basic user:password;
// others get 401 with a Basic challenge (UNAUTHORIZED), as Distribution
// with htpasswd answers.
func BasicAuth(inner http.Handler, user, password string) http.Handler {
	return BasicAuthFunc(inner, func(u, p string) bool { return u == user && p == password })
}

// BasicAuthFunc is BasicAuth with a check function.
func BasicAuthFunc(inner http.Handler, ok func(user, password string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, has := r.BasicAuth(); !has || !ok(u, p) {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		inner.ServeHTTP(w, r)
	})
}
