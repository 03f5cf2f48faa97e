package results_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/services/results"
)

func writeTokens(t *testing.T) string {
	t.Helper()
	body := "tokens:\n" +
		"  - name: team-a-ci\n    sha256: " + apiauth.Hash("team-a-token") + "\n    role: read\n    repositories: [\"team-a/*\"]\n" +
		"  - name: reader\n    sha256: " + apiauth.Hash("reader-token") + "\n    role: read\n"
	p := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The report API needs a token; a token scoped to team-a/* sees team-a's
// reports, inventories and listings, and gets 404 for everyone else's,
// exactly as for a report that does not exist.
func TestAPIAuthAndRepositoryScope(t *testing.T) {
	e := startWith(t, results.Config{Workers: 2, AckWait: 5 * time.Second, APITokensFile: writeTokens(t), AdminToken: testToken})
	base := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	e.publish(t, newReport("team-a/app", 1, base))
	e.publish(t, newReport("team-b/app", 2, base))
	e.waitReport(t, digest(1))
	e.waitReport(t, digest(2))

	type call struct {
		token, path string
		code        int
	}
	for _, c := range []call{
		// No token or a wrong one: 401, whatever the route.
		{"", "/v1/reports/" + digest(1), 401},
		{"", "/v1/reports?repository=team-a/app", 401},
		{"", "/v1/reports/" + digest(1) + "/inventory", 401},
		{"", "/v1/vulnerability-db", 401},
		{"wrong", "/v1/reports/" + digest(1), 401},
		// Probes and metrics stay open.
		{"", "/healthz", 200},
		{"", "/readyz", 200},
		{"", "/metrics", 200},
		// Unscoped tokens see everything.
		{"reader-token", "/v1/reports/" + digest(2), 200},
		{"reader-token", "/v1/reports?repository=team-b/app", 200},
		{testToken, "/v1/reports/" + digest(2) + "/inventory", 200},
		// The scoped token: its own team...
		{"team-a-token", "/v1/reports/" + digest(1), 200},
		{"team-a-token", "/v1/reports/" + digest(1) + "/inventory", 200},
		{"team-a-token", "/v1/reports?repository=team-a/app", 200},
		{"team-a-token", "/v1/reports?repository=team-a/never-pushed", 200},
		{"team-a-token", "/v1/vulnerability-db", 200},
		// ...and 404 for another team's, existing or not.
		{"team-a-token", "/v1/reports/" + digest(2), 404},
		{"team-a-token", "/v1/reports/" + digest(2) + "/inventory", 404},
		{"team-a-token", "/v1/reports/" + digest(3), 404},
		{"team-a-token", "/v1/reports?repository=team-b/app", 404},
		{"team-a-token", "/v1/reports?repository=team-b/never-pushed", 404},
		{"team-a-token", "/v1/reports?repository=team-a/..", 404},
		{"team-a-token", "/v1/reports?repository=team-a/sub/app", 404},
	} {
		code, body := e.getAs(t, c.token, c.path)
		if code != c.code {
			t.Errorf("GET %s with token %q: %d %s, want %d", c.path, c.token, code, body, c.code)
		}
	}

	// The 404 for another team's report is word for word the one for a
	// report that does not exist.
	_, other := e.getAs(t, "team-a-token", "/v1/reports/"+digest(2))
	_, missing := e.getAs(t, testToken, "/v1/reports/"+digest(3))
	if strings.ReplaceAll(string(other), digest(2), "D") != strings.ReplaceAll(string(missing), digest(3), "D") {
		t.Errorf("404 bodies differ: %s vs %s", other, missing)
	}

	req, _ := http.NewRequest(http.MethodGet, e.api.URL+"/v1/reports/"+digest(1), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
		t.Errorf("401 WWW-Authenticate = %q", got)
	}
}

// Without tokens the service refuses to start (New runs the same check as
// Validate, which cmd/results calls before dialling NATS) unless
// authentication is turned off explicitly; off serves everything.
func TestAPIWithoutTokens(t *testing.T) {
	for _, c := range []struct {
		cfg  results.Config
		want string
	}{
		{results.Config{}, "CUSTOMS_API_TOKENS"},
		{results.Config{APIAuth: "on"}, "CUSTOMS_API_AUTH=off"},
		{results.Config{APIAuth: "yes"}, `CUSTOMS_API_AUTH="yes"`},
		{results.Config{APIAuth: "off", AdminToken: "x"}, "both set"},
		{results.Config{APITokensFile: filepath.Join(t.TempDir(), "absent.yaml")}, "absent.yaml"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error mentioning %q", c.cfg, err, c.want)
		}
	}
	e := startWith(t, results.Config{Workers: 1, AckWait: 5 * time.Second, APIAuth: "off"})
	e.publish(t, newReport("team-a/app", 1, time.Now().UTC()))
	e.waitReport(t, digest(1))
	if code, body := e.getAs(t, "", "/v1/reports?repository=team-a/app"); code != 200 {
		t.Errorf("auth off, no token: %d %s", code, body)
	}
}

// `customs up` on loopback: reads without a token.
func TestAPIAnonymousReads(t *testing.T) {
	e := startWith(t, results.Config{Workers: 1, AckWait: 5 * time.Second, AnonymousReads: true})
	e.publish(t, newReport("team-a/app", 1, time.Now().UTC()))
	e.waitReport(t, digest(1))
	if code, body := e.getAs(t, "", "/v1/reports/"+digest(1)); code != 200 {
		t.Errorf("anonymous read: %d %s", code, body)
	}
}
