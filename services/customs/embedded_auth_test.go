package customs_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/nats-io/nats.go"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/services/customs"
)

func s3Do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signed builds a SigV4-signed request the way aws-sdk-go-v2 does, with
// payloadHash as the signed hash of the body.
func signed(t *testing.T, method, u, body, payloadHash string, creds aws.Credentials) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err := signer.SignHTTP(context.Background(), creds, req, payloadHash, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// The embedded S3 and NATS of `customs up` accept only the credentials
// generated at start; the services inside it use them.
func TestEmbeddedServersRefuseAnonymousClients(t *testing.T) {
	st := startStack(t, testConfig(t))
	obj := st.S3URL + "/customs-reports/reports/sha256/" + strings.Repeat("a", 64) + ".json"
	good := aws.Credentials{AccessKeyID: st.S3AccessKeyID, SecretAccessKey: st.S3SecretAccessKey}

	// Anonymous PUT and GET: 403, and nothing is stored.
	req, _ := http.NewRequest(http.MethodPut, obj, strings.NewReader(`{"forged":true}`))
	if code, body := s3Do(t, req); code != http.StatusForbidden || !strings.Contains(body, "AccessDenied") {
		t.Errorf("anonymous PUT: %d %s, want 403 AccessDenied", code, body)
	}
	req, _ = http.NewRequest(http.MethodGet, st.S3URL+"/customs-reports?list-type=2", nil)
	if code, _ := s3Do(t, req); code != http.StatusForbidden {
		t.Errorf("anonymous list: %d, want 403", code)
	}
	// An Authorization header that merely names the key, or is signed with
	// another secret, or by another key: 403.
	req, _ = http.NewRequest(http.MethodGet, obj, nil)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+st.S3AccessKeyID+"/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
	req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
	req.Header.Set("X-Amz-Content-Sha256", sha(""))
	if code, _ := s3Do(t, req); code != http.StatusForbidden {
		t.Errorf("GET with a made-up signature: %d, want 403", code)
	}
	for name, c := range map[string]aws.Credentials{
		"wrong secret": {AccessKeyID: st.S3AccessKeyID, SecretAccessKey: "guess"},
		"wrong key":    {AccessKeyID: "customs", SecretAccessKey: "customs"},
	} {
		if code, _ := s3Do(t, signed(t, http.MethodPut, obj, "x", sha("x"), c)); code != http.StatusForbidden {
			t.Errorf("PUT signed with %s: %d, want 403", name, code)
		}
	}
	// A body other than the one whose hash was signed is not stored.
	code, _ := s3Do(t, signed(t, http.MethodPut, obj, "tampered", sha("original"), good))
	if code/100 == 2 {
		t.Errorf("PUT with a body that does not match its signed hash: %d", code)
	}
	if code, body := s3Do(t, signed(t, http.MethodGet, obj, "", sha(""), good)); code != http.StatusNotFound {
		t.Errorf("after the refused PUTs, GET: %d %q, want 404", code, body)
	}
	// A request signed with the generated pair is served.
	if code, body := s3Do(t, signed(t, http.MethodPut, obj, "original", sha("original"), good)); code != http.StatusOK {
		t.Fatalf("signed PUT: %d %s", code, body)
	}
	if code, body := s3Do(t, signed(t, http.MethodGet, obj, "", sha(""), good)); code != http.StatusOK || body != "original" {
		t.Errorf("signed GET: %d %q", code, body)
	}
	bucket, err := store.NewS3(context.Background(), store.S3Config{Bucket: "customs-reports", Endpoint: st.S3URL, PathStyle: true,
		AccessKeyID: st.S3AccessKeyID, SecretAccessKey: st.S3SecretAccessKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := bucket.List(context.Background(), "reports/", 0); err != nil || len(keys) != 1 {
		t.Errorf("list with the SDK: %v %v", keys, err)
	}

	// NATS: the URL the stack gives carries the credentials; without them,
	// or with a wrong password, no connection.
	u, err := url.Parse(st.NATSURL)
	if err != nil || u.User == nil || u.User.Username() != "customs" {
		t.Fatalf("NATSURL %q carries no credentials", st.NATSURL)
	}
	plain := *u
	plain.User = nil
	wrong := *u
	wrong.User = url.UserPassword("customs", "guess")
	for _, bad := range []string{plain.String(), wrong.String()} {
		if nc, err := nats.Connect(bad, nats.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Errorf("connect to %s succeeded", wrong.Redacted())
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("connect without the right credentials: %v (want an authorization error)", err)
		}
	}
	nc, err := nats.Connect(st.NATSURL)
	if err != nil {
		t.Fatalf("connect with the generated credentials: %v", err)
	}
	nc.Close()
}

// customs up on loopback serves reads without a token; a tokens file
// closes the API; the embedded servers never leave loopback.
func TestUpAPIAuth(t *testing.T) {
	st := startStack(t, testConfig(t))
	if !st.OpenReads {
		t.Error("no tokens on loopback: reads should be open")
	}
	resp, err := http.Get(st.ResultsURL + "/v1/reports?repository=demo/app")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("open reads: %d", resp.StatusCode)
	}

	cfg := testConfig(t)
	cfg.APITokensFile = filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(cfg.APITokensFile, []byte("tokens:\n  - {name: me, role: read, sha256: "+apiauth.Hash("my-token")+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st = startStack(t, cfg)
	for token, want := range map[string]int{"": 401, "nope": 401, "my-token": 200} {
		req, _ := http.NewRequest(http.MethodGet, st.ResultsURL+"/v1/reports?repository=demo/app", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("closed API, token %q: %d, want %d", token, resp.StatusCode, want)
		}
	}

	for _, mod := range []func(*customs.UpConfig){
		func(c *customs.UpConfig) { c.S3Addr = "0.0.0.0:0" },
		func(c *customs.UpConfig) { c.NATSAddr = "0.0.0.0:0" },
		func(c *customs.UpConfig) { c.ResultsAddr = "0.0.0.0:0" }, // open reads beyond loopback
	} {
		cfg := testConfig(t)
		mod(&cfg)
		if st, err := customs.Start(context.Background(), cfg); err == nil {
			_ = st.Stop()
			t.Errorf("Start with a non-loopback address succeeded (nats %s, s3 %s, results %s)", cfg.NATSAddr, cfg.S3Addr, cfg.ResultsAddr)
		}
	}
}
