package customs_test

// Checks of the container deployment files (deploy/Dockerfile,
// deploy/registry/config.yml, docker-compose.yml) against the code: no Docker
// engine is needed, the files are parsed and compared with the services'
// Config structs, and the registry's own notification sink is pointed at an
// in-process ingest.

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/notifications"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v2"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/svcmain"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
	"github.com/customs-scan/customs/services/gate"
	"github.com/customs-scan/customs/services/harbor"
	"github.com/customs-scan/customs/services/ingest"
	"github.com/customs-scan/customs/services/notifier"
	"github.com/customs-scan/customs/services/results"
	"github.com/customs-scan/customs/services/scanner"
)

const (
	composePath        = "docker-compose.yml"
	dockerfilePath     = "deploy/Dockerfile"
	registryConfigPath = "deploy/registry/config.yml"
	webhookURL         = "http://ingest:8081/v1/webhooks/distribution"
	// registryHost is how the other containers reach the registry service.
	registryHost = "registry:5000"
)

// ownServices are built from deploy/Dockerfile; port is each one's listener.
var ownServices = map[string]struct {
	addrVar string
	port    string
	config  []any // env-tagged structs the service's cmd parses
}{
	"ingest":   {"CUSTOMS_INGEST_ADDR", "8081", []any{ingest.Config{}, natsconn.Config{}, svcmain.LogConfig{}}},
	"scanner":  {"CUSTOMS_SCANNER_ADDR", "8083", []any{scanner.Config{}, natsconn.Config{}, svcmain.LogConfig{}}},
	"results":  {"CUSTOMS_RESULTS_ADDR", "8082", []any{results.Config{}, results.S3Config{}, natsconn.Config{}, svcmain.LogConfig{}}},
	"gate":     {"CUSTOMS_GATE_ADDR", "5080", []any{gate.Config{}, natsconn.Config{}, svcmain.LogConfig{}}},
	"notifier": {"CUSTOMS_NOTIFIER_ADDR", "8085", []any{notifier.Config{}, natsconn.Config{}, svcmain.LogConfig{}}},
}

// repoRoot walks up from the test's directory to the one holding go.work.
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
			t.Fatal("no go.work above the test directory; cannot find the repository root")
		}
		dir = parent
	}
}

func readFile(t *testing.T, root, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return b
}

// ---- registry config ----

func parseRegistryConfig(t *testing.T, root string) *configuration.Configuration {
	t.Helper()
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REGISTRY_") {
			t.Logf("note: %s is set and overrides %s in configuration.Parse", strings.SplitN(kv, "=", 2)[0], registryConfigPath)
		}
	}
	f, err := os.Open(filepath.Join(root, registryConfigPath))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := configuration.Parse(f)
	if err != nil {
		t.Fatalf("configuration.Parse(%s): %v", registryConfigPath, err)
	}
	return cfg
}

// customsEndpoint is the one notification endpoint named "customs".
func customsEndpoint(t *testing.T, cfg *configuration.Configuration) configuration.Endpoint {
	t.Helper()
	var found []configuration.Endpoint
	for _, ep := range cfg.Notifications.Endpoints {
		if ep.Name == "customs" {
			found = append(found, ep)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: want exactly one notification endpoint named customs, have %d (of %d endpoints)",
			registryConfigPath, len(found), len(cfg.Notifications.Endpoints))
	}
	return found[0]
}

func bearerToken(t *testing.T, ep configuration.Endpoint) string {
	t.Helper()
	values := ep.Headers.Values("Authorization")
	if len(values) != 1 {
		t.Fatalf("%s: endpoint customs: want one Authorization header value, have %q", registryConfigPath, values)
	}
	token, ok := strings.CutPrefix(values[0], "Bearer ")
	if !ok || token == "" || strings.TrimSpace(token) != token {
		t.Fatalf("%s: endpoint customs: Authorization %q is not \"Bearer <token>\"", registryConfigPath, values[0])
	}
	return token
}

func TestDeployRegistryConfig(t *testing.T) {
	cfg := parseRegistryConfig(t, repoRoot(t))

	if got := cfg.Storage.Type(); got != "filesystem" {
		t.Errorf("storage driver = %q, want filesystem", got)
	}
	if cfg.HTTP.Addr != ":5000" {
		t.Errorf("http.addr = %q, want :5000", cfg.HTTP.Addr)
	}
	if cfg.HTTP.Host != "" || cfg.HTTP.RelativeURLs {
		// http.host would redirect host-side pushes to an in-network name;
		// relativeurls would make target.url relative, which ingest rejects.
		t.Errorf("http.host = %q, http.relativeurls = %v: want neither set", cfg.HTTP.Host, cfg.HTTP.RelativeURLs)
	}

	ep := customsEndpoint(t, cfg)
	if ep.Disabled {
		t.Error("endpoint customs is disabled")
	}
	if ep.URL != webhookURL {
		t.Errorf("endpoint customs url = %q, want %q", ep.URL, webhookURL)
	}
	bearerToken(t, ep)
	if ep.Timeout != 5*time.Second || ep.Threshold != 5 || ep.Backoff != time.Second {
		t.Errorf("endpoint customs timeout/threshold/backoff = %v/%d/%v, want 5s/5/1s", ep.Timeout, ep.Threshold, ep.Backoff)
	}
	if !slices.Equal(ep.IgnoredMediaTypes, []string{"application/octet-stream"}) {
		t.Errorf("endpoint customs ignoredmediatypes = %q, want [application/octet-stream]", ep.IgnoredMediaTypes)
	}
	if len(ep.Ignore.MediaTypes) != 0 || len(ep.Ignore.Actions) != 0 {
		t.Errorf("endpoint customs ignore = %+v: manifest pushes must not be ignored", ep.Ignore)
	}
}

// ---- compose ----

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
	Networks map[string]any            `yaml:"networks"`
}

type composeService struct {
	Image       string                      `yaml:"image"`
	Build       *composeBuild               `yaml:"build"`
	Command     []string                    `yaml:"command"`
	Environment envMap                      `yaml:"environment"`
	Ports       []string                    `yaml:"ports"`
	Volumes     []string                    `yaml:"volumes"`
	DependsOn   map[string]composeDependsOn `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
	Args       envMap `yaml:"args"`
}

type composeDependsOn struct {
	Condition string `yaml:"condition"`
}

// envMap accepts both compose spellings, a mapping and a list of KEY=VALUE.
type envMap map[string]string

func (e *envMap) UnmarshalYAML(unmarshal func(any) error) error {
	out := envMap{}
	var m map[string]any
	if err := unmarshal(&m); err == nil {
		for k, v := range m {
			if v == nil {
				out[k] = ""
			} else {
				out[k] = fmt.Sprint(v)
			}
		}
		*e = out
		return nil
	}
	var list []string
	if err := unmarshal(&list); err != nil {
		return fmt.Errorf("environment/args must be a mapping or a list of KEY=VALUE: %w", err)
	}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	*e = out
	return nil
}

func loadCompose(t *testing.T, root string) composeFile {
	t.Helper()
	raw := readFile(t, root, composePath)
	// Strict decoding into a generic value rejects duplicate keys, as
	// compose does; the structs below are partial, so they decode leniently.
	var generic any
	if err := yaml.UnmarshalStrict(raw, &generic); err != nil {
		t.Fatalf("parse %s: %v", composePath, err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("parse %s: %v", composePath, err)
	}
	return c
}

// envTags collects the env tags of the structs a service's cmd parses, the
// way caarlos0/env/v11 sees them: nested structs without envPrefix flatten.
func envTags(t *testing.T, configs []any) map[string]bool {
	t.Helper()
	tags := map[string]bool{}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, path string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			where := path + "." + f.Name
			if p, ok := f.Tag.Lookup("envPrefix"); ok {
				t.Fatalf("%s has envPrefix %q; this test assumes nested configs are not prefixed", where, p)
			}
			if tag, ok := f.Tag.Lookup("env"); ok {
				name, _, _ := strings.Cut(tag, ",")
				if name != "" {
					tags[name] = true
					continue
				}
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && f.IsExported() && ft.PkgPath() != "time" {
				walk(ft, where)
			}
		}
	}
	for _, c := range configs {
		typ := reflect.TypeOf(c)
		walk(typ, typ.String())
	}
	if len(tags) == 0 {
		t.Fatal("no env tags found")
	}
	return tags
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// publishedPorts maps container port to the host binding for "IP:HOST:CONTAINER".
func publishedPorts(t *testing.T, svc string, ports []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range ports {
		parts := strings.Split(p, ":")
		if len(parts) != 3 {
			t.Errorf("service %s: port %q is not IP:HOST:CONTAINER", svc, p)
			continue
		}
		out[parts[2]] = parts[0] + ":" + parts[1]
	}
	return out
}

func TestDeployCompose(t *testing.T) {
	root := repoRoot(t)
	c := loadCompose(t, root)

	for _, name := range []string{"nats", "minio", "registry", "ingest", "scanner", "results", "gate", "notifier"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("%s: service %s is missing", composePath, name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Dependencies name real services with a valid condition.
	for name, svc := range c.Services {
		for dep, d := range svc.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on unknown service %s", name, dep)
			}
			switch d.Condition {
			case "service_started", "service_completed_successfully":
			case "service_healthy":
				if c.Services[dep].Healthcheck == nil {
					t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			default:
				t.Errorf("service %s: depends_on %s has condition %q", name, dep, d.Condition)
			}
		}
		// Bind mounts point at files in the repository; named volumes are declared.
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("service %s uses volume %s, which is not declared under volumes", name, src)
			}
		}
	}

	// Our services: built from deploy/Dockerfile with the right args,
	// configured only with variables their Config structs read.
	for name, want := range ownServices {
		svc := c.Services[name]
		if svc.Build == nil {
			t.Errorf("service %s has no build section", name)
			continue
		}
		if svc.Build.Context != "." || svc.Build.Dockerfile != dockerfilePath {
			t.Errorf("service %s: build context %q dockerfile %q, want . and %s", name, svc.Build.Context, svc.Build.Dockerfile, dockerfilePath)
		}
		if got := svc.Build.Args["SERVICE"]; got != name {
			t.Errorf("service %s: build arg SERVICE = %q", name, got)
		}
		if got := svc.Build.Args["PORT"]; got != want.port {
			t.Errorf("service %s: build arg PORT = %q, want %s", name, got, want.port)
		}

		tags := envTags(t, want.config)
		var unknown []string
		for k := range svc.Environment {
			if strings.HasPrefix(k, "CUSTOMS_") && !tags[k] {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		if len(unknown) > 0 {
			t.Errorf("service %s sets %v, which %s's config does not read", name, unknown, name)
		}

		if got, wantAddr := svc.Environment[want.addrVar], "0.0.0.0:"+want.port; got != wantAddr {
			t.Errorf("service %s: %s = %q, want %q", name, want.addrVar, got, wantAddr)
		}
		if got := svc.Environment["CUSTOMS_NATS_URL"]; got != "nats://nats:4222" {
			t.Errorf("service %s: CUSTOMS_NATS_URL = %q, want nats://nats:4222", name, got)
		}
		pub := publishedPorts(t, name, svc.Ports)
		if len(pub) == 0 {
			t.Errorf("service %s publishes no port", name)
		}
		for container, host := range pub {
			if container != want.port {
				t.Errorf("service %s publishes container port %s, but listens on %s", name, container, want.port)
			}
			if !strings.HasPrefix(host, "127.0.0.1:") {
				t.Errorf("service %s publishes %s on %s, want 127.0.0.1 only", name, container, host)
			}
		}
		if svc.Healthcheck != nil {
			t.Errorf("service %s has a healthcheck, but its distroless image has no shell or curl to run one", name)
		}
	}

	// The registry serves the config this test parses, on the port the others use.
	reg := c.Services["registry"]
	if !slices.Contains(reg.Volumes, "./"+registryConfigPath+":/etc/docker/registry/config.yml:ro") {
		t.Errorf("registry does not mount ./%s at /etc/docker/registry/config.yml: volumes %q", registryConfigPath, reg.Volumes)
	}
	if !slices.Equal(reg.Command, []string{"serve", "/etc/docker/registry/config.yml"}) {
		t.Errorf("registry command = %q, want [serve /etc/docker/registry/config.yml]", reg.Command)
	}
	regCfg := parseRegistryConfig(t, root)
	if _, port, _ := net.SplitHostPort(regCfg.HTTP.Addr); "registry:"+port != registryHost {
		t.Errorf("registry listens on %s, but the services are configured for %s", regCfg.HTTP.Addr, registryHost)
	}
	for container, host := range publishedPorts(t, "registry", reg.Ports) {
		if container != "5000" || !strings.HasPrefix(host, "127.0.0.1:") {
			t.Errorf("registry publishes %s on %s, want 5000 on 127.0.0.1", container, host)
		}
	}

	// The webhook reaches ingest with the token ingest expects.
	ep := customsEndpoint(t, regCfg)
	u, err := url.Parse(ep.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Services[u.Hostname()]; u.Hostname() != "ingest" || !ok {
		t.Errorf("webhook host %q is not the ingest service", u.Hostname())
	}
	if u.Port() != ownServices["ingest"].port {
		t.Errorf("webhook port %q is not ingest's %s", u.Port(), ownServices["ingest"].port)
	}
	ing := c.Services["ingest"]
	if got, want := ing.Environment["CUSTOMS_WEBHOOK_TOKEN"], bearerToken(t, ep); got != want {
		t.Errorf("ingest CUSTOMS_WEBHOOK_TOKEN = %q, but the registry sends Bearer %q", got, want)
	}

	// Ingest and scanner allow the same registries, including the in-network one.
	scn := c.Services["scanner"]
	for _, v := range []string{"CUSTOMS_REGISTRIES", "CUSTOMS_INSECURE_REGISTRIES"} {
		if a, b := ing.Environment[v], scn.Environment[v]; a != b {
			t.Errorf("%s differs: ingest %q, scanner %q", v, a, b)
		}
	}
	if !slices.Contains(splitList(ing.Environment["CUSTOMS_INSECURE_REGISTRIES"]), registryHost) {
		t.Errorf("ingest CUSTOMS_INSECURE_REGISTRIES = %q does not allow %s", ing.Environment["CUSTOMS_INSECURE_REGISTRIES"], registryHost)
	}

	// Results talks to the minio service with its root credentials.
	res, mio := c.Services["results"], c.Services["minio"]
	if got := res.Environment["CUSTOMS_S3_ENDPOINT"]; got != "http://minio:9000" {
		t.Errorf("results CUSTOMS_S3_ENDPOINT = %q, want http://minio:9000", got)
	}
	if res.Environment["CUSTOMS_S3_ACCESS_KEY_ID"] != mio.Environment["MINIO_ROOT_USER"] ||
		res.Environment["CUSTOMS_S3_SECRET_ACCESS_KEY"] != mio.Environment["MINIO_ROOT_PASSWORD"] {
		t.Error("results S3 credentials are not minio's MINIO_ROOT_USER / MINIO_ROOT_PASSWORD")
	}
	if res.Environment["CUSTOMS_S3_CREATE_BUCKET"] != "true" || res.Environment["CUSTOMS_S3_PATH_STYLE"] != "true" {
		t.Error("results must set CUSTOMS_S3_CREATE_BUCKET=true and CUSTOMS_S3_PATH_STYLE=true for MinIO")
	}
	if res.DependsOn["minio"].Condition != "service_healthy" {
		t.Error("results must wait for minio to be healthy (it creates the bucket at start-up)")
	}

	// The gate fronts the registry service. Pushes through it reach the
	// registry with Host registry:5000, so their events (and the records)
	// name registryHost; the gate must look records up under it.
	gt := c.Services["gate"]
	if got := gt.Environment["CUSTOMS_GATE_UPSTREAM"]; got != "http://"+registryHost {
		t.Errorf("gate CUSTOMS_GATE_UPSTREAM = %q, want http://%s", got, registryHost)
	}
	if names := gt.Environment["CUSTOMS_GATE_REGISTRY_NAMES"]; names != "" && !slices.Contains(splitList(names), registryHost) {
		t.Errorf("gate CUSTOMS_GATE_REGISTRY_NAMES = %q does not name %s", names, registryHost)
	}

	// The services start with the compose settings, parsed as their commands
	// parse them: nothing is open by default, and what Validate refuses
	// (no webhook token, no API tokens, no signing key) is set.
	if res.Environment["CUSTOMS_API_TOKENS"] != "" {
		t.Error("results CUSTOMS_API_TOKENS names a path inside the container, which this test cannot check; extend it")
	}
	for name, c := range map[string]struct {
		env envMap
		cfg interface{ Validate() error }
	}{"ingest": {ing.Environment, &ingest.Config{}}, "scanner": {scn.Environment, &scanner.Config{}}, "results": {res.Environment, &results.Config{}},
		"gate": {gt.Environment, &gate.Config{}}} {
		if err := env.ParseWithOptions(c.cfg, env.Options{Environment: c.env}); err != nil {
			t.Errorf("%s environment: %v", name, err)
			continue
		}
		if err := c.cfg.Validate(); err != nil {
			t.Errorf("%s would refuse to start: %v", name, err)
		}
	}
}

// ---- Dockerfile ----

func TestDeployDockerfile(t *testing.T) {
	root := repoRoot(t)
	df := string(readFile(t, root, dockerfilePath))

	// Instructions, with line continuations joined and comments dropped.
	var instr []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(df))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		instr = append(instr, cur.String())
		cur.Reset()
	}

	build := regexp.MustCompile(`go build .*-o /out/app \./services/\$\{SERVICE\}/cmd/\$\{SERVICE\}$`)
	var froms []string
	var sawBuild, sawArgService, sawEntrypoint, sawUser, sawExpose bool
	var copied []string
	for _, in := range instr {
		op, rest, _ := strings.Cut(in, " ")
		switch strings.ToUpper(op) {
		case "FROM":
			froms = append(froms, rest)
		case "ARG":
			if rest == "SERVICE" {
				sawArgService = true
			}
		case "RUN":
			if build.MatchString(rest) {
				sawBuild = true
				if !strings.Contains(rest, "CGO_ENABLED=0") || !strings.Contains(rest, "-trimpath") {
					t.Errorf("go build must run with CGO_ENABLED=0 and -trimpath: %s", rest)
				}
			}
		case "COPY":
			if !strings.HasPrefix(rest, "--from=") {
				f := strings.Fields(rest)
				copied = append(copied, f[:len(f)-1]...)
			}
		case "USER":
			sawUser = rest != "root" && rest != "0" && !strings.HasPrefix(rest, "0:")
		case "EXPOSE":
			sawExpose = rest == "${PORT}"
		case "ENTRYPOINT":
			sawEntrypoint = rest == `["/app"]`
		}
	}
	if len(froms) != 2 || !strings.HasPrefix(froms[0], "golang:") ||
		froms[1] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("stages = %q, want a golang builder and gcr.io/distroless/static-debian12:nonroot", froms)
	}
	if !sawArgService || !sawBuild {
		t.Errorf("want ARG SERVICE and go build ./services/${SERVICE}/cmd/${SERVICE} (ARG: %v, build: %v)", sawArgService, sawBuild)
	}
	if !sawUser || !sawExpose || !sawEntrypoint {
		t.Errorf("runtime stage: non-root USER %v, EXPOSE ${PORT} %v, ENTRYPOINT [\"/app\"] %v", sawUser, sawExpose, sawEntrypoint)
	}

	// Every COPY source exists, and every module go.work uses is inside one,
	// or the workspace build fails in the image.
	for _, src := range copied {
		if _, err := os.Stat(filepath.Join(root, src)); err != nil {
			t.Errorf("Dockerfile copies %s: %v", src, err)
		}
	}
	for _, use := range workspaceModules(t, root) {
		inside := slices.ContainsFunc(copied, func(src string) bool {
			src = strings.TrimSuffix(filepath.Clean(src), "/")
			return use == src || strings.HasPrefix(use, src+"/")
		})
		if !inside {
			t.Errorf("go.work uses %s, which the Dockerfile does not copy", use)
		}
	}

	// Each SERVICE value builds a main package that exists.
	for name := range ownServices {
		dir := filepath.Join(root, "services", name, "cmd", name)
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		hasMain := false
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err == nil && regexp.MustCompile(`(?m)^package main$`).Match(b) {
				hasMain = true
			}
		}
		if !hasMain {
			t.Errorf("SERVICE=%s: ./services/%s/cmd/%s has no package main", name, name, name)
		}
		// The build stage's SERVICE:PORT guard accepts exactly our pairs.
		if pair := name + ":" + ownServices[name].port; !strings.Contains(df, pair) {
			t.Errorf("Dockerfile does not accept SERVICE:PORT %s", pair)
		}
	}
}

// workspaceModules lists go.work's use directories, slash-separated and clean.
func workspaceModules(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	inUse := false
	for _, line := range strings.Split(string(readFile(t, root, "go.work")), "\n") {
		line = strings.TrimSpace(line)
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "use (":
			inUse = true
		case inUse && line == ")":
			inUse = false
		case inUse && line != "":
			out = append(out, filepath.ToSlash(filepath.Clean(line)))
		case strings.HasPrefix(line, "use "):
			out = append(out, filepath.ToSlash(filepath.Clean(strings.TrimSpace(strings.TrimPrefix(line, "use ")))))
		}
	}
	if len(out) == 0 {
		t.Fatal("go.work uses no modules")
	}
	return out
}

// ---- registry → ingest, end to end in-process ----

// recordingPublisher stands in for JetStream: it keeps what ingest publishes.
type recordingPublisher struct {
	jetstream.Publisher // unimplemented methods panic
	mu                  sync.Mutex
	jobs                []*customsv1.ScanJob
}

func (p *recordingPublisher) Publish(_ context.Context, _ string, data []byte, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	job := &customsv1.ScanJob{}
	if err := proto.Unmarshal(data, job); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.jobs = append(p.jobs, job)
	return &jetstream.PubAck{Stream: "test", Sequence: uint64(len(p.jobs))}, nil
}

func (p *recordingPublisher) published() []*customsv1.ScanJob {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.jobs)
}

// TestDeployWebhookDelivery sends a blob push and a manifest push through
// Distribution's own notification endpoint, configured from
// deploy/registry/config.yml, to an ingest configured from docker-compose.yml:
// the blob event must be dropped by the registry, the manifest event must
// become one scan job for registry:5000.
func TestDeployWebhookDelivery(t *testing.T) {
	root := repoRoot(t)
	c := loadCompose(t, root)
	env := c.Services["ingest"].Environment
	pub := &recordingPublisher{}
	svc, err := ingest.New(ingest.Config{
		WebhookToken:       env["CUSTOMS_WEBHOOK_TOKEN"],
		Registries:         splitList(env["CUSTOMS_REGISTRIES"]),
		InsecureRegistries: splitList(env["CUSTOMS_INSECURE_REGISTRIES"]),
		MaxBodyBytes:       1 << 20,
	}, ingest.Deps{JetStream: pub, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	requests := map[string]int{} // path → count
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests[r.Method+" "+r.URL.Path]++
		mu.Unlock()
		svc.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()

	// The endpoint keeps its configured URL (http://ingest:8081/...); only
	// the dial is redirected to the test server, as compose DNS would.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	ep := customsEndpoint(t, parseRegistryConfig(t, root))
	endpoint := notifications.NewEndpoint(ep.Name, ep.URL, notifications.EndpointConfig{
		Headers: ep.Headers, Timeout: ep.Timeout, Threshold: ep.Threshold, Backoff: ep.Backoff,
		IgnoredMediaTypes: ep.IgnoredMediaTypes, Ignore: ep.Ignore, Transport: tr,
	})

	manifest := digest.FromString("manifest")
	blob := notifications.Event{ID: "blob-1", Timestamp: time.Now().UTC(), Action: notifications.EventActionPush}
	blob.Target.Descriptor = v1.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromString("layer"), Size: 5}
	blob.Target.Repository = "demo/alpine"
	blob.Target.URL = "http://" + registryHost + "/v2/demo/alpine/blobs/" + blob.Target.Digest.String()
	push := notifications.Event{ID: "manifest-1", Timestamp: time.Now().UTC(), Action: notifications.EventActionPush}
	push.Target.Descriptor = v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: manifest, Size: 8}
	push.Target.Repository = "demo/alpine"
	push.Target.Tag = "3.20"
	push.Target.URL = "http://" + registryHost + "/v2/demo/alpine/manifests/" + manifest.String()
	push.Request = notifications.RequestRecord{ID: "req-1", Host: registryHost, Method: http.MethodPut}
	for _, ev := range []notifications.Event{blob, push} {
		if err := endpoint.Write(ev); err != nil {
			t.Fatalf("endpoint write: %v", err)
		}
	}

	deadline := time.Now().Add(10 * time.Second)
	var m notifications.EndpointMetrics
	for {
		endpoint.ReadMetrics(&m)
		if m.Successes > 0 || m.Failures > 0 || m.Errors > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m.Failures > 0 || m.Errors > 0 || m.Successes != 1 {
		// The endpoint retries failures forever; don't Close (it would wait).
		t.Fatalf("registry endpoint: %d successes, %d failures, %d errors, statuses %v; want exactly one accepted post",
			m.Successes, m.Failures, m.Errors, m.Statuses)
	}
	if err := endpoint.Close(); err != nil {
		t.Errorf("endpoint close: %v", err)
	}
	if m.Events != 1 {
		t.Errorf("registry endpoint queued %d events, want 1 (the blob push should be ignored by media type)", m.Events)
	}
	mu.Lock()
	if want := map[string]int{"POST /v1/webhooks/distribution": 1}; !maps.Equal(requests, want) {
		t.Errorf("ingest saw requests %v, want %v", requests, want)
	}
	mu.Unlock()

	jobs := pub.published()
	if len(jobs) != 1 {
		t.Fatalf("ingest published %d jobs, want 1", len(jobs))
	}
	job := jobs[0]
	if job.GetRegistry() != registryHost || job.GetRepository() != "demo/alpine" ||
		job.GetDigest() != manifest.String() || !job.GetInsecure() {
		t.Errorf("job = registry %q repository %q digest %q insecure %v; want %s demo/alpine %s insecure",
			job.GetRegistry(), job.GetRepository(), job.GetDigest(), job.GetInsecure(), registryHost, manifest)
	}
}

// The README's variable table is the operator's reference: every variable
// a service's config reads is in it, and every variable in it is read.
func TestReadmeVariableTableMatchesTheConfigs(t *testing.T) {
	root := repoRoot(t)
	readme := string(readFile(t, root, "README.md"))
	_, table, ok := strings.Cut(readme, "| variable | service | default | meaning |")
	if !ok {
		t.Fatal("README has no variable table")
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(table, "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break // the table ends at the first line that is not a row
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, f := range strings.Split(first, "`") {
			if strings.HasPrefix(f, "CUSTOMS_") {
				listed[f] = true
			}
		}
	}
	read := map[string]bool{}
	for _, svc := range ownServices {
		for k := range envTags(t, svc.config) {
			read[k] = true
		}
	}
	// Services the table documents that have no compose entry.
	for _, configs := range [][]any{{harbor.Config{}, harbor.S3Config{}}} {
		for k := range envTags(t, configs) {
			read[k] = true
		}
	}
	var missing, unread []string
	for k := range read {
		if !listed[k] {
			missing = append(missing, k)
		}
	}
	for k := range listed {
		if !read[k] {
			unread = append(unread, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(unread)
	if len(missing) > 0 {
		t.Errorf("read by a service but not in README's variable table: %v", missing)
	}
	if len(unread) > 0 {
		t.Errorf("in README's variable table but read by no service config: %v", unread)
	}
}
