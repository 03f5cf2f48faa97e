package deploytest

// The operations files (deploy/prometheus/customs-rules.yaml,
// deploy/grafana/customs.json) are checked against a running `customs up`:
// the rules parse with Prometheus' own rule parser, and every metric the
// rules and the dashboard query is one the services serve.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/scan/analyzer/malware"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/vulndb/vulndbtest"
	"github.com/customs-scan/customs/pkg/vulndist"
	"github.com/customs-scan/customs/services/customs"
)

const (
	rulesPath     = "deploy/prometheus/customs-rules.yaml"
	dashboardPath = "deploy/grafana/customs.json"
	runbookPath   = "deploy/operations.md"
)

// repoRoot is the directory holding go.work.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.work above the test directory")
		}
		dir = parent
	}
}

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// servedMetrics runs `customs up` with every service (gate, Harbor adapter,
// notifier), makes each counter move once (a push that is quarantined and
// alerted on, a pull through the gate, two Harbor requests) and returns
// the sample names all of them serve on /metrics (a histogram's _bucket,
// _sum and _count, as PromQL sees them), each with its last value.
func servedMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	chat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(chat.Close)
	alerts := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(alerts, []byte("destinations:\n  - name: ops\n    type: slack\n    url: "+chat.URL+"/services/T0/B0/X\nroutes:\n  - destinations: [ops]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := vulndbtest.Build(t, time.Now().Add(-26*time.Hour), "osv/other/GHSA-p6mc-m468-83gw.json")
	dbPath := filepath.Join(t.TempDir(), "vulndb.gob.gz")
	if err := db.WriteFile(dbPath); err != nil {
		t.Fatal(err)
	}

	cfg := customs.DefaultUpConfig()
	cfg.DataDir = t.TempDir()
	for _, a := range []*string{&cfg.IngestAddr, &cfg.ResultsAddr, &cfg.NATSAddr, &cfg.S3Addr, &cfg.HarborAddr, &cfg.RegistryAddr} {
		*a = "127.0.0.1:0"
	}
	// The stack does not say where these two listen: pick the ports here.
	cfg.ScannerAddr, cfg.NotifierAddr = freeAddr(t), freeAddr(t)
	cfg.AlertsFile, cfg.DBPath = alerts, dbPath
	cfg.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	st, err := customs.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})

	// A push with EICAR: scanned, stored, quarantined, alerted on.
	img := scantest.Image(t, scantest.Layer(t, scantest.AlpineRootfs(t)...),
		scantest.Layer(t, scantest.Reg("opt/app/eicar.com", string(malware.EICAR()))))
	ref, err := name.ParseReference(st.RegistryAddr+"/ops/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	// The gate refuses the pull once the quarantine is recorded.
	waitFor(t, "the gate to refuse the quarantined image", func() bool {
		req, _ := http.NewRequest(http.MethodHead, st.GateURL+"/v2/ops/app/manifests/1", nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusForbidden
	})
	// Two Harbor requests: a refused scan request, an unknown report.
	for _, r := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/scan", "{}"},
		{http.MethodGet, "/api/v1/scan/unknown/report", ""},
	} {
		req, _ := http.NewRequest(r.method, st.HarborURL+r.path, strings.NewReader(r.body))
		req.Header.Set("Authorization", "Bearer "+st.HarborToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	// A newer database: results re-matches the stored report.
	nc, err := nats.Connect(st.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	newer := vulndbtest.Build(t, time.Now().Add(-25*time.Hour), "osv/other/GHSA-p6mc-m468-83gw.json", "osv/other/GHSA-35jh-r3h4-6jhm.json")
	if _, _, err := vulndist.Publish(context.Background(), js, newer); err != nil {
		t.Fatal(err)
	}

	urls := []string{st.IngestURL, st.ResultsURL, "http://" + cfg.ScannerAddr, st.GateURL, st.HarborURL, "http://" + cfg.NotifierAddr}
	served := map[string]float64{}
	// The last counters appear once the alert went out and the re-match ran.
	waitFor(t, "the alert and the re-match", func() bool {
		clear(served)
		for _, u := range urls {
			maps.Copy(served, scrape(t, u+"/metrics"))
		}
		for _, n := range []string{"customs_notifier_messages_total", "customs_quarantine_total", "customs_results_rematched_total"} {
			if _, ok := served[n]; !ok {
				return false
			}
		}
		return true
	})
	return served
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// scrape reads the sample names of one /metrics page (text format).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = line[:i]
			rest = line[strings.LastIndexByte(line, '}')+2:]
		}
		v, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		out[name] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// promqlParser parses like Prometheus itself.
var promqlParser = parser.NewParser(parser.Options{})

// metricNames are the metric names an expression selects.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := promqlParser.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	var names []string
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		n := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				n = m.Value
			}
		}
		if n == "" {
			t.Errorf("%q selects series without naming a metric", expr)
		}
		names = append(names, n)
		return nil
	})
	return names
}

// headingAnchors are the GitHub anchors of a Markdown file's headings.
func headingAnchors(md string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		out[strings.ReplaceAll(drop.ReplaceAllString(h, ""), " ", "-")] = true
	}
	return out
}

func TestOperationsFilesUseServedMetrics(t *testing.T) {
	served := servedMetrics(t)
	missing := func(where string, names []string) {
		t.Helper()
		for _, n := range names {
			if _, ok := served[n]; !ok {
				t.Errorf("%s uses %s, which no service serves on /metrics", where, n)
			}
		}
	}

	t.Run("rules", func(t *testing.T) {
		groups, errs := rulefmt.Parse(readFile(t, rulesPath), false, model.LegacyValidation, promqlParser, slog.New(slog.DiscardHandler))
		for _, err := range errs {
			t.Errorf("%s: %v", rulesPath, err)
		}
		if t.Failed() {
			t.FailNow()
		}
		anchors := headingAnchors(string(readFile(t, runbookPath)))
		var alerts []string
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				missing(rulesPath+" "+r.Alert, metricNames(t, r.Expr))
				if r.Alert == "" {
					continue
				}
				alerts = append(alerts, r.Alert)
				if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
					t.Errorf("%s: %s needs a severity label and a summary", rulesPath, r.Alert)
				}
				_, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "#")
				if !strings.Contains(r.Annotations["runbook_url"], runbookPath) || !anchors[anchor] {
					t.Errorf("%s: %s: runbook_url %q names no section of %s", rulesPath, r.Alert, r.Annotations["runbook_url"], runbookPath)
				}
			}
		}
		// What issue 16 asks alerts for, by the metric each must watch.
		for _, want := range []string{"customs_scanner_jobs_pending", "customs_dead_letters", "customs_scanner_scan_seconds_count",
			"customs_vulndb_age_seconds", "customs_quarantine_total", "customs_notifier_messages_total"} {
			if !strings.Contains(string(readFile(t, rulesPath)), want) {
				t.Errorf("%s: no rule on %s", rulesPath, want)
			}
		}
		sort.Strings(alerts)
		t.Logf("%d alerts parse and use served metrics: %s", len(alerts), strings.Join(alerts, ", "))
	})

	t.Run("dashboard", func(t *testing.T) {
		var dash struct {
			UID, Title    string
			SchemaVersion int
			Templating    struct{ List []struct{ Name, Type string } }
			Panels        []dashPanel
		}
		if err := json.Unmarshal(readFile(t, dashboardPath), &dash); err != nil {
			t.Fatalf("%s: %v", dashboardPath, err)
		}
		if dash.UID == "" || dash.Title == "" || dash.SchemaVersion == 0 {
			t.Errorf("%s: uid %q, title %q, schemaVersion %d: all needed for import", dashboardPath, dash.UID, dash.Title, dash.SchemaVersion)
		}
		if len(dash.Templating.List) == 0 || dash.Templating.List[0].Type != "datasource" {
			t.Errorf("%s: the first variable must be the Prometheus datasource", dashboardPath)
		}
		ids := map[int]bool{}
		queries := 0
		var walk func([]dashPanel)
		walk = func(ps []dashPanel) {
			for _, p := range ps {
				where := fmt.Sprintf("%s panel %d %q", dashboardPath, p.ID, p.Title)
				if ids[p.ID] {
					t.Errorf("%s: id used twice", where)
				}
				ids[p.ID] = true
				if p.GridPos.W == 0 || p.GridPos.H == 0 {
					t.Errorf("%s: no gridPos", where)
				}
				walk(p.Panels)
				if p.Type == "row" {
					continue
				}
				if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
					t.Errorf("%s: datasource %q with %d queries", where, p.Datasource.UID, len(p.Targets))
				}
				for _, q := range p.Targets {
					queries++
					// Grafana's interval variables, as Grafana substitutes them.
					expr := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h").Replace(q.Expr)
					missing(where, metricNames(t, expr))
				}
			}
		}
		walk(dash.Panels)
		t.Logf("%d panels and rows, %d queries parse and use served metrics", len(ids), queries)
	})

	// The database published last was built 25 hours ago.
	if age := served["customs_vulndb_age_seconds"]; age < 25*3600 || age > 48*3600 {
		t.Errorf("customs_vulndb_age_seconds = %v, want about 26 h", age)
	}
}

type dashPanel struct {
	ID         int
	Type       string
	Title      string
	GridPos    struct{ H, W, X, Y int }
	Datasource struct{ Type, UID string }
	Targets    []struct{ RefID, Expr string }
	Panels     []dashPanel
}
