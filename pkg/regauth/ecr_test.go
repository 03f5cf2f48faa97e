package regauth_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/customs-scan/customs/pkg/regauth"
	"github.com/customs-scan/customs/pkg/regauth/regauthtest"
)

// clock is a settable time for token expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// ecrRegistry is a real registry behind the stand-in's Basic check; the
// image is pushed past the check.
type ecrRegistry struct {
	host     string // behind the check
	direct   string
	requests atomic.Int32
}

func startECRRegistry(t *testing.T, ecr *regauthtest.ECR) *ecrRegistry {
	t.Helper()
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r := &ecrRegistry{}
	direct := httptest.NewServer(inner)
	t.Cleanup(direct.Close)
	checked := ecr.Registry(inner)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		checked.ServeHTTP(w, req)
	}))
	t.Cleanup(front.Close)
	r.host, r.direct = strings.TrimPrefix(front.URL, "http://"), strings.TrimPrefix(direct.URL, "http://")
	return r
}

func ecrAuthFile(t *testing.T, host, endpoint string) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "auth.yaml", `registries:
  `+host+`:
    kind: ecr
    ecr:
      region: eu-west-1
      endpoint: `+endpoint+`
`)
}

// pull reads the whole image (manifest, config, every layer) through kc.
func pull(t *testing.T, ref name.Reference, opts ...remote.Option) error {
	t.Helper()
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return err
	}
	if _, err := img.ConfigFile(); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		_ = rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func TestECRTokenIsFetchedCachedAndRefreshed(t *testing.T) {
	regauthtest.SetAWSEnv(t)
	clk := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	ecr := regauthtest.StartECR(t, clk.Now, time.Hour)
	reg := startECRRegistry(t, ecr)
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := name.ParseReference(reg.direct+"/team/app:latest", name.Insecure)
	if err := remote.Write(dst, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	ref, _ := name.NewDigest(reg.host+"/team/app@"+d.String(), name.Insecure)

	f, err := regauth.Load(ecrAuthFile(t, reg.host, ecr.URL), regauth.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	kc := remote.WithAuthFromKeychain(f.Keychain())
	if err := pull(t, ref, kc); err != nil {
		t.Fatalf("first pull: %v", err)
	}
	if n := ecr.Calls(); n != 1 {
		t.Fatalf("%d GetAuthorizationToken calls for the first pull, want 1", n)
	}
	// Within the token's first half: cached.
	clk.Add(20 * time.Minute)
	if err := pull(t, ref, kc); err != nil {
		t.Fatalf("second pull: %v", err)
	}
	if n := ecr.Calls(); n != 1 {
		t.Fatalf("%d GetAuthorizationToken calls after a pull 20 min in, want 1 (cached)", n)
	}
	// Past half its lifetime (and under 30 min left): a new token, and the
	// registry now takes only the new one.
	clk.Add(15 * time.Minute)
	if err := pull(t, ref, kc); err != nil {
		t.Fatalf("pull after refresh: %v", err)
	}
	if n := ecr.Calls(); n != 2 {
		t.Fatalf("%d GetAuthorizationToken calls after 35 min, want 2 (refreshed)", n)
	}
	old := ecr.Passwords()[0]
	req, _ := http.NewRequest(http.MethodGet, "http://"+reg.host+"/v2/", nil)
	req.SetBasicAuth("AWS", old)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the registry still takes the old token: %s", resp.Status)
	}
}

func TestECRRefreshBeforeIsConfigurable(t *testing.T) {
	regauthtest.SetAWSEnv(t)
	clk := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	ecr := regauthtest.StartECR(t, clk.Now, 12*time.Hour)
	f, err := regauth.Load(ecrAuthFile(t, "127.0.0.1:1", ecr.URL), regauth.WithClock(clk.Now), regauth.WithRefreshBefore(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := name.NewRepository("127.0.0.1:1/x")
	for _, step := range []struct {
		advance time.Duration
		calls   int
	}{{0, 1}, {10 * time.Hour, 1}, {59 * time.Minute, 1}, {2 * time.Minute, 2}} {
		clk.Add(step.advance)
		auth, err := f.Keychain().Resolve(repo)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := auth.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != "AWS" || cfg.Password != ecr.Password() {
			t.Fatalf("credentials %q / current password mismatch", cfg.Username)
		}
		if n := ecr.Calls(); n != step.calls {
			t.Fatalf("after %v: %d calls, want %d", step.advance, n, step.calls)
		}
	}
}

// A keychain error fails the pull before any registry request: never an
// anonymous pull. The reason is AWS's.
func TestECRFailureFailsThePull(t *testing.T) {
	regauthtest.SetAWSEnv(t)
	ecr := regauthtest.StartECR(t, nil, time.Hour)
	ecr.Fail(true)
	reg := startECRRegistry(t, ecr)
	f, err := regauth.Load(ecrAuthFile(t, reg.host, ecr.URL))
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewDigest(reg.host+"/team/app@sha256:"+strings.Repeat("a", 64), name.Insecure)
	err = pull(t, ref, remote.WithAuthFromKeychain(f.Keychain()))
	if err == nil || !strings.Contains(err.Error(), "AccessDeniedException") || !strings.Contains(err.Error(), "not authorized") ||
		!strings.Contains(err.Error(), "ECR authorization token for "+reg.host) {
		t.Fatalf("pull error %v, want the AccessDeniedException", err)
	}
	t.Logf("pull error: %v", err)
	if n := reg.requests.Load(); n != 0 {
		t.Errorf("the registry got %d requests: the pull went on without credentials", n)
	}
}
