package secrets_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/crypto/ssh"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/secrets"
)

var (
	shared     *secrets.Analyzer
	sharedErr  error
	sharedOnce sync.Once
)

// newAnalyzer returns one analyzer for the whole test binary, as a
// process would.
func newAnalyzer(t testing.TB) *secrets.Analyzer {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = secrets.New() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// fixtures are real credentials in the formats their issuers use, made
// for this test (random, fixed seed: the same on every run).
type fixtures struct {
	rsaPEM, ecPEM, ed25519PEM          string
	awsKeyID, awsSecret                string
	githubPAT, gitlabPAT, npmToken     string
	slackBot, stripeLive, genericValue string
	azureKey                           string
}

func (fx fixtures) all() []string {
	return []string{fx.rsaPEM, fx.ecPEM, fx.ed25519PEM, fx.awsKeyID, fx.awsSecret, fx.githubPAT,
		fx.gitlabPAT, fx.npmToken, fx.slackBot, fx.stripeLive, fx.genericValue, fx.azureKey}
}

var (
	fxOnce sync.Once
	fx     fixtures
)

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	base32      = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	alnum       = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	lowerDigits = "abcdefghijklmnopqrstuvwxyz0123456789"
	digits      = "0123456789"
)

func randString(rng *mrand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// keyPEM encodes a key, again and again until the text holds none of the
// words that would make the generic rule look at its base64 lines: the
// keys are random, the expected findings are not.
func keyPEM(t testing.TB, gen func() *pem.Block) string {
	for range 50 {
		s := string(pem.EncodeToMemory(gen()))
		l := strings.ToLower(s)
		if containsAnyWord(l, "key", "api", "auth", "token", "secret", "access", "passw", "cred") {
			continue
		}
		return s
	}
	t.Fatal("could not generate a key without keywords")
	return ""
}

func containsAnyWord(body string, words ...string) bool {
	// Only the base64 lines matter: the armour says PRIVATE KEY anyway.
	lines := strings.Split(body, "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "-----") {
			continue
		}
		for _, w := range words {
			if strings.Contains(l, w) {
				return true
			}
		}
	}
	return false
}

func getFixtures(t testing.TB) fixtures {
	t.Helper()
	fxOnce.Do(func() {
		rng := mrand.New(mrand.NewPCG(2024, 7))
		fx.rsaPEM = keyPEM(t, func() *pem.Block {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			return &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
		})
		fx.ecPEM = keyPEM(t, func() *pem.Block {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			return &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
		})
		fx.ed25519PEM = keyPEM(t, func() *pem.Block {
			_, k, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ssh.MarshalPrivateKey(k, "deploy@build")
			if err != nil {
				t.Fatal(err)
			}
			return b
		})
		fx.awsKeyID = "AKIA" + randString(rng, base32, 16)
		fx.awsSecret = randString(rng, alnum, 40)
		fx.githubPAT = "ghp_" + randString(rng, alnum, 36)
		fx.gitlabPAT = "glpat-" + randString(rng, alnum, 20)
		fx.npmToken = "npm_" + randString(rng, alnum, 36)
		fx.slackBot = "xoxb-" + randString(rng, digits, 12) + "-" + randString(rng, digits, 13) + "-" + randString(rng, alnum, 24)
		fx.stripeLive = "sk_live_" + randString(rng, alnum, 24)
		fx.genericValue = randString(rng, lowerDigits, 32)
		fx.azureKey = randString(rng, alnum+"+/", 86) + "=="
	})
	return fx
}

type file struct{ path, data string }

// scanFiles runs Match, Sniff and Analyze over files as the walker does.
func scanFiles(t *testing.T, a *secrets.Analyzer, files []file) []report.Finding {
	t.Helper()
	var out []report.Finding
	for _, f := range files {
		data := []byte(f.data)
		if !a.Match(f.path, 0o644, int64(len(data))) {
			continue
		}
		if !a.Sniff(f.path, data[:min(len(data), analyzer.SniffLen)]) {
			continue
		}
		res, err := a.Analyze(context.Background(), &analyzer.File{Path: f.path, Mode: 0o644, Size: int64(len(data)), Data: data})
		if err != nil {
			t.Fatalf("Analyze(%s): %v", f.path, err)
		}
		analyzer.Normalize(a, f.path, res)
		out = append(out, res.Findings...)
	}
	return out
}

func key(f report.Finding) string {
	return fmt.Sprintf("%s %s:%d %s", f.Rule, f.Path, f.Line, f.Severity)
}

func keys(fs []report.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, key(f))
	}
	slices.Sort(out)
	return out
}

// assertRedacted fails when any fixture secret appears in v's JSON.
func assertRedacted(t *testing.T, v any, secrets []string) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(b), s) {
			t.Errorf("a full secret (%.8s…) appears in the findings: %s", s, b)
		}
		// Multi-line keys: no line of their body either.
		for _, l := range strings.Split(s, "\n") {
			if len(l) > 16 && !strings.HasPrefix(l, "-----") && strings.Contains(string(b), l) {
				t.Errorf("a line of a key appears in the findings: %q", l)
			}
		}
	}
}

func TestFiles(t *testing.T) {
	a := newAnalyzer(t)
	fx := getFixtures(t)
	files := []file{
		{"root/.ssh/id_rsa", fx.rsaPEM},
		{"etc/ssl/private/server.key", fx.ecPEM},
		{"home/deploy/.ssh/id_ed25519", fx.ed25519PEM},
		{"root/.aws/credentials", "[default]\naws_access_key_id = " + fx.awsKeyID + "\naws_secret_access_key = " + fx.awsSecret + "\nregion = eu-west-1\n"},
		{"app/config/settings.yml", "server:\n  port: 8080\ngithub:\n  org: example\n  token: " + fx.githubPAT + "\n"},
		{"app/.env", "# production settings\nAPP_ENV=production\nDATABASE_URL=postgres://app@db:5432/app\nSLACK_BOT_TOKEN=" + fx.slackBot +
			"\nSTRIPE_SECRET_KEY=" + fx.stripeLive + "\nSESSION_SECRET=" + fx.genericValue + "\n"},
		{"root/.npmrc", "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=" + fx.npmToken + "\n"},
		{"app/appsettings.json", "{\n  \"Logging\": {\"LogLevel\": {\"Default\": \"Information\"}},\n  \"Storage\": \"DefaultEndpointsProtocol=https;AccountName=appstore;AccountKey=" + fx.azureKey + ";EndpointSuffix=core.windows.net\"\n}\n"},
		{"app/deploy.sh", "#!/bin/sh\nexport GH=" + fx.githubPAT + " GL=" + fx.gitlabPAT + " # both on one line\n"},
		{"root/.bash_history", "ls -la\ngit clone https://oauth2:" + fx.gitlabPAT + "@gitlab.example.com/team/app.git\ncd app\n"},
	}
	got := scanFiles(t, a, files)
	want := []string{
		"generic-api-key app/.env:6 MEDIUM",
		"aws-secret-access-key root/.aws/credentials:3 CRITICAL",
		"azure-storage-account-key app/appsettings.json:3 CRITICAL",
		"github-pat app/config/settings.yml:5 CRITICAL",
		"github-pat app/deploy.sh:2 CRITICAL",
		"gitlab-pat app/deploy.sh:2 CRITICAL",
		"gitlab-pat root/.bash_history:2 CRITICAL",
		"npm-access-token root/.npmrc:2 HIGH",
		"private-key etc/ssl/private/server.key:1 CRITICAL",
		"private-key home/deploy/.ssh/id_ed25519:1 CRITICAL",
		"private-key root/.ssh/id_rsa:1 CRITICAL",
		"slack-bot-token app/.env:4 HIGH",
		"stripe-access-token app/.env:5 HIGH",
		"aws-access-token root/.aws/credentials:2 CRITICAL",
	}
	slices.Sort(want)
	if g := keys(got); !slices.Equal(g, want) {
		t.Errorf("findings:\n got %q\nwant %q", g, want)
	}
	for _, f := range got {
		if f.Kind != report.KindSecret || f.Engine != secrets.Engine || f.Title == "" {
			t.Errorf("malformed finding %+v", f)
		}
		if f.Rule != "pkcs12-file" && !strings.Contains(f.Excerpt, "…") {
			t.Errorf("%s: excerpt %q is not redacted", key(f), f.Excerpt)
		}
	}
	// The excerpt keeps the context and at most 4+2 characters of each
	// secret in it.
	gh, gl := "ghp_…"+fx.githubPAT[len(fx.githubPAT)-2:], "glpa…"+fx.gitlabPAT[len(fx.gitlabPAT)-2:]
	wantExcerpts := map[string]string{
		"github-pat app/config/settings.yml:5 CRITICAL": "token: " + gh,
		"github-pat app/deploy.sh:2 CRITICAL":           "export GH=" + gh + " GL=" + gl + " # both on…",
		"gitlab-pat app/deploy.sh:2 CRITICAL":           "export GH=" + gh + " GL=" + gl + " # both on one line",
		"private-key root/.ssh/id_rsa:1 CRITICAL":       "----…--",
	}
	for _, f := range got {
		if want, ok := wantExcerpts[key(f)]; ok && f.Excerpt != want {
			t.Errorf("%s: excerpt %q, want %q", key(f), f.Excerpt, want)
		}
	}
	assertRedacted(t, got, fx.all())
}

// TestCleanFiles: ordinary files of an image, with the words secret
// scanners look for but no secret, give nothing.
func TestCleanFiles(t *testing.T) {
	a := newAnalyzer(t)
	files := []file{
		{"app/main.go", "package main\n\nimport \"os\"\n\nfunc main() {\n\tapiKey := os.Getenv(\"API_KEY\")\n\ttoken := r.Header.Get(\"Authorization\")\n\tpassword := flag.String(\"password\", \"\", \"the password\")\n\t_ = apiKey + token + *password\n}\n"},
		{"app/config.yaml", "database:\n  host: db\n  user: app\n  password: ${DB_PASSWORD}\nauth:\n  issuer: https://auth.example.com\n  secret_name: app-jwt\n"},
		{"etc/nginx/conf.d/default.conf", "server {\n  listen 80;\n  location / { proxy_pass http://app:8080; proxy_set_header Authorization $http_authorization; }\n}\n"},
		{"etc/passwd", "root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\n"},
		{"app/README.md", "Set `GITHUB_TOKEN` to a personal access token, e.g. `export GITHUB_TOKEN=<your token>`.\n"},
		{"app/.env.example", "API_KEY=changeme\nSECRET_KEY=your-secret-key-here\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"},
		{"usr/share/doc/app/example.key", "-----BEGIN RSA PRIVATE KEY-----\nnot scanned: documentation\n-----END RSA PRIVATE KEY-----\n"},
		{"app/node_modules/lib/config.js", "module.exports = { apiKey: 'ghp_0123456789abcdefghijklmnopqrstuvwxyz' }\n"},
		{"usr/lib/libfoo.so.1", "\x7fELF\x00\x00 binary"},
		{"app/blob.bin", "\x00\x01\x02 token=abcdefghijklmnop"},
	}
	if got := scanFiles(t, a, files); len(got) != 0 {
		t.Errorf("findings in clean files: %q", keys(got))
	}
}

func TestConfig(t *testing.T) {
	a := newAnalyzer(t)
	fx := getFixtures(t)
	layers := []report.Layer{{Digest: "sha256:l1"}, {Digest: "sha256:l2"}, {Digest: "sha256:l3"}, {Digest: "sha256:l4"}}
	cfg := &v1.ConfigFile{
		Config: v1.Config{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GITHUB_TOKEN=" + fx.githubPAT, "LANG=C.UTF-8"},
			Labels: map[string]string{
				"org.opencontainers.image.source": "https://github.com/example/app",
				"deploy.gitlab-token":             fx.gitlabPAT,
			},
		},
		History: []v1.History{
			{CreatedBy: "/bin/sh -c #(nop) ADD file:8b1e79f91081eb527a2d6ad4a56ab0ea2da35cd0e0ac3de7b2a2e3ba3f3c6f0a in / "},
			{CreatedBy: "ARG NPM_TOKEN=" + fx.npmToken, Comment: "buildkit.dockerfile.v0", EmptyLayer: true},
			{CreatedBy: "ENV GITHUB_TOKEN=" + fx.githubPAT, Comment: "buildkit.dockerfile.v0", EmptyLayer: true},
			{CreatedBy: "RUN |1 NPM_TOKEN=" + fx.npmToken + " /bin/sh -c npm ci # buildkit", Comment: "buildkit.dockerfile.v0"},
			{CreatedBy: "RUN --mount=type=secret,id=token,env=TOKEN /bin/sh -c curl -H \"Authorization: Bearer $TOKEN\" https://api.example.com/x # buildkit", Comment: "buildkit.dockerfile.v0"},
			{CreatedBy: "RUN |1 AWS_ACCESS_KEY_ID=" + fx.awsKeyID + " /bin/sh -c aws s3 cp s3://bucket/x /x # buildkit"},
			{CreatedBy: "CMD [\"node\" \"server.js\"]", EmptyLayer: true},
		},
	}
	res, err := a.AnalyzeConfig(context.Background(), &analyzer.Image{Layers: layers}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range res.Findings {
		if f.Path != secrets.ConfigPath || f.Line != 0 || f.Kind != report.KindSecret {
			t.Errorf("malformed %+v", f)
		}
		where := f.Title[strings.LastIndex(f.Title, "(")+1 : len(f.Title)-1]
		got = append(got, fmt.Sprintf("%s %s %q layer=%s", f.Rule, f.Severity, where, f.Layer))
	}
	slices.Sort(got)
	want := []string{
		`aws-access-token CRITICAL "history step 6" layer=sha256:l4`,
		`github-pat CRITICAL "env GITHUB_TOKEN" layer=sha256:l2`,
		`gitlab-pat CRITICAL "label deploy.gitlab-token" layer=`,
		`npm-access-token HIGH "history step 2" layer=sha256:l2`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n got %q\nwant %q", got, want)
	}
	for _, f := range res.Findings {
		if f.Rule == "github-pat" && f.Excerpt != "GITHUB_TOKEN=ghp_…"+fx.githubPAT[len(fx.githubPAT)-2:] {
			t.Errorf("env excerpt %q", f.Excerpt)
		}
	}
	assertRedacted(t, res.Findings, fx.all())

	empty, err := a.AnalyzeConfig(context.Background(), nil, &v1.ConfigFile{Config: v1.Config{Env: []string{"PATH=/bin", "HOME=/root"}}})
	if err != nil || !empty.Empty() {
		t.Errorf("clean config: %+v, %v", empty, err)
	}
}

func TestMatch(t *testing.T) {
	a := newAnalyzer(t)
	for p, want := range map[string]bool{
		"app/.env":                  true,
		"root/.ssh/id_rsa":          true,
		"etc/ssl/private/tls.key":   true,
		"app/server.pem":            true,
		"root/.npmrc":               true,
		"root/.pypirc":              true,
		"root/.git-credentials":     true,
		"root/.docker/config.json":  true,
		"infra/prod.tfvars":         true,
		"root/.bash_history":        true,
		"app/src/Main.java":         true,
		"etc/app/config.yaml":       true,
		"usr/src/app/.env":          true,
		"var/log/app.log":           true,
		"var/cache/app/tokens.json": true,
		"app/static/main.js.map":    true,
		"app/data/x.dat":            true,
		// Binary content is told by Sniff, whatever the name.
		"usr/lib/x86_64-linux-gnu/libc.so":  true,
		"app/static/logo.PNG":               true,
		"usr/share/doc/bash/README":         false,
		"usr/share/man/man1/ls.1.gz":        false,
		"var/lib/dpkg/status":               false,
		"var/cache/debconf/templates.dat":   false,
		"var/log/dpkg.log":                  false,
		"app/node_modules/x/index.js":       false,
		"etc/ssl/certs/ca-certificates.crt": false,
	} {
		if got := a.Match(p, 0o644, 100); got != want {
			t.Errorf("Match(%q) = %v, want %v", p, got, want)
		}
	}
	if a.Match("app/big.json", 0o644, secrets.DefaultMaxFileSize+1) || a.Match("app/empty", 0o644, 0) {
		t.Error("size cap not applied")
	}
	small, err := secrets.New(secrets.WithMaxFileSize(1024))
	if err != nil {
		t.Fatal(err)
	}
	if small.Match("app/a.json", 0o644, 2048) || !small.Match("app/a.json", 0o644, 1024) {
		t.Error("WithMaxFileSize not applied")
	}
	allocs := testing.AllocsPerRun(100, func() {
		a.Match("usr/lib/python3.12/site-packages/requests/ADAPTERS.PY", 0o644, 100)
		a.Match("usr/share/doc/x", 0o644, 100)
		a.Match("app/x.tar.GZ", 0o644, 100)
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times", allocs)
	}
}

// TestConcurrent shares one analyzer between goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	a := newAnalyzer(t)
	fx := getFixtures(t)
	data := []byte("token: " + fx.githubPAT + "\naws_access_key_id=" + fx.awsKeyID + "\n")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				res, err := a.Analyze(context.Background(), &analyzer.File{Path: "app/x.yml", Size: int64(len(data)), Data: data})
				if err != nil || len(res.Findings) != 2 {
					t.Errorf("got %+v, %v", res, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestPKCS12Path(t *testing.T) {
	a := newAnalyzer(t)
	p12 := "0\x82\x04\x00\x02\x01\x030\x82 binary pkcs12"
	got := scanFiles(t, a, []file{{"app/certs/client.p12", p12}})
	if k := keys(got); !slices.Equal(k, []string{"pkcs12-file app/certs/client.p12:0 HIGH"}) {
		t.Errorf("got %q", k)
	}
}

// TestConfigLiteralSecrets: ENV variables, build arguments recorded in
// history and labels whose names say they hold a password, token, secret
// or API key, set to a literal value (not a placeholder, a reference or a
// file path), are secrets, attributed to the layer of the step that set
// them; gitleaks' rules keep what they find.
func TestConfigLiteralSecrets(t *testing.T) {
	a := newAnalyzer(t)
	fx := getFixtures(t)
	layers := []report.Layer{{Digest: "sha256:l1"}, {Digest: "sha256:l2"}, {Digest: "sha256:l3"}, {Digest: "sha256:l4"}}
	cfg := &v1.ConfigFile{
		Config: v1.Config{
			Env: []string{
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"DB_PASSWORD=Sup3r-s3cret-pw",
				"MYSQL_ROOT_PASSWORD=root",
				"SMTP_PASS=m41l-p4ss!",
				"GITHUB_TOKEN=" + fx.githubPAT,
				// Not secrets: flags, placeholders, references, paths,
				// public values.
				"MYSQL_ALLOW_EMPTY_PASSWORD=yes",
				"MYSQL_RANDOM_ROOT_PASSWORD=1",
				"POSTGRES_PASSWORD=changeme",
				"REDIS_PASSWORD=${REDIS_PASSWORD}",
				"API_KEY_FILE=/run/secrets/api_key",
				"ADMIN_PASSWORD=/run/secrets/admin",
				"APP_SECRET=<set me>",
				"JWT_SECRET=xxxxxxxx",
				"SESSION_SECRET=",
				"STRIPE_API_KEY=your-api-key-here",
				"VAULT_TOKEN=vault:secret/data/app#token",
				"PASSWORD_MIN_LENGTH=12",
				"AUTH_TOKEN_URL=https://auth.example.com/token",
				"AWS_ACCESS_KEY_ID_NAME=deploy",
				"NO_PASSWORD=true",
			},
			Labels: map[string]string{
				"org.opencontainers.image.source": "https://github.com/example/app",
				"com.example.db.password":         "hunter2hunter",
				"com.example.api-token":           "${TOKEN}",
			},
		},
		History: []v1.History{
			{CreatedBy: "/bin/sh -c #(nop) ADD file:8b1e79f91081eb527a2d6ad4a56ab0ea2da35cd0e0ac3de7b2a2e3ba3f3c6f0a in / "},
			{CreatedBy: "ENV DB_PASSWORD=Sup3r-s3cret-pw", Comment: "buildkit.dockerfile.v0", EmptyLayer: true},
			{CreatedBy: "ARG DEPLOY_TOKEN=letmein-2024", Comment: "buildkit.dockerfile.v0", EmptyLayer: true},
			{CreatedBy: "RUN |2 DEPLOY_TOKEN=letmein-2024 BUILD_PASSWORD=changeme /bin/sh -c ./build.sh # buildkit", Comment: "buildkit.dockerfile.v0"},
			{CreatedBy: "/bin/sh -c #(nop)  LABEL com.example.db.password=hunter2hunter", EmptyLayer: true},
			{CreatedBy: "RUN |2 DEPLOY_TOKEN=letmein-2024 BUILD_PASSWORD=changeme /bin/sh -c make install # buildkit", Comment: "buildkit.dockerfile.v0"},
			{CreatedBy: "COPY . /app # buildkit", Comment: "buildkit.dockerfile.v0"},
			{CreatedBy: "ENV MYSQL_ROOT_PASSWORD=root", Comment: "buildkit.dockerfile.v0", EmptyLayer: true},
		},
	}
	res, err := a.AnalyzeConfig(context.Background(), &analyzer.Image{Layers: layers}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range res.Findings {
		if f.Path != secrets.ConfigPath || f.Kind != report.KindSecret || f.Severity == "" || f.Excerpt == "" {
			t.Errorf("malformed %+v", f)
		}
		where := f.Title[strings.LastIndex(f.Title, "(")+1 : len(f.Title)-1]
		got = append(got, fmt.Sprintf("%s %q layer=%s excerpt=%s", f.Rule, where, f.Layer, f.Excerpt))
	}
	slices.Sort(got)
	want := []string{
		`config-build-arg-secret "build arg DEPLOY_TOKEN, history step 3" layer=sha256:l2 excerpt=DEPLOY_TOKEN=…`,
		`config-env-secret "env DB_PASSWORD" layer=sha256:l2 excerpt=DB_PASSWORD=…`,
		`config-env-secret "env MYSQL_ROOT_PASSWORD" layer=sha256:l4 excerpt=MYSQL_ROOT_PASSWORD=…`,
		`config-env-secret "env SMTP_PASS" layer= excerpt=SMTP_PASS=…`,
		`config-label-secret "label com.example.db.password" layer=sha256:l3 excerpt=com.example.db.password=…`,
		`github-pat "env GITHUB_TOKEN" layer= excerpt=GITHUB_TOKEN=ghp_…` + fx.githubPAT[len(fx.githubPAT)-2:],
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n got %q\nwant %q", got, want)
	}
	assertRedacted(t, res.Findings, []string{"Sup3r-s3cret-pw", "m41l-p4ss!", "letmein-2024", "hunter2hunter", fx.githubPAT})
}

// TestWhereSecretsHide: the places broad skip lists used to hide are
// searched — an application under usr/src, logs and caches an
// application writes, source maps (they embed the source), text files
// whatever their extension — while the package managers' own files are
// still skipped by their exact paths and binary content by sniffing.
func TestWhereSecretsHide(t *testing.T) {
	a := newAnalyzer(t)
	fx := getFixtures(t)
	token := "GITHUB_TOKEN=" + fx.githubPAT + "\n"
	rng := mrand.New(mrand.NewPCG(1, 1))
	noisy := make([]byte, 4096) // compressed-looking data without a NUL byte
	for i := range noisy {
		noisy[i] = byte(1 + rng.IntN(255))
	}
	files := []file{
		{"usr/src/app/.env", token},
		{"usr/src/app/config/production.json", `{"github": {"token": "` + fx.githubPAT + `"}}`},
		{"var/log/app/deploy.log", "2025-01-01T00:00:00Z cloning with " + token},
		{"var/cache/app/session.json", `{"auth": "` + fx.githubPAT + `"}`},
		{"var/cache/debconf/passwords.dat", "Name: app/token\nTemplate: app/token\nValue: " + fx.githubPAT + "\n"},
		{"app/static/js/main.4f2a.js.map", `{"version":3,"sourcesContent":["const t = \"` + fx.githubPAT + `\";"]}`},
		{"app/data/settings.dat", token},
		{"root/.cache/app/state", token},
		{"app/state.cache", token},
		{"app/conf/app.conf.bak", token},
		// Package managers' files, by exact path: skipped.
		{"var/lib/dpkg/info/app.postinst", token},
		{"var/cache/debconf/templates.dat", token},
		{"var/cache/apt/pkgcache.bin", token},
		{"var/log/dpkg.log", token},
		{"var/log/apt/history.log", token},
		{"usr/share/doc/app/README", token},
		// Binary content, whatever its name: skipped.
		{"app/data/blob.dat", "\x00\x01\x02" + token},
		{"app/data/noise.txt", string(noisy) + token},
		{"app/lib/libx.so.1", "\x7fELF\x02\x01\x01\x00" + token},
		{"app/static/logo.png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + token},
	}
	got := scanFiles(t, a, files)
	want := []string{
		"github-pat app/conf/app.conf.bak:1 CRITICAL",
		"github-pat app/data/settings.dat:1 CRITICAL",
		"github-pat app/state.cache:1 CRITICAL",
		"github-pat app/static/js/main.4f2a.js.map:1 CRITICAL",
		"github-pat root/.cache/app/state:1 CRITICAL",
		"github-pat usr/src/app/.env:1 CRITICAL",
		"github-pat usr/src/app/config/production.json:1 CRITICAL",
		"github-pat var/cache/app/session.json:1 CRITICAL",
		"github-pat var/cache/debconf/passwords.dat:3 CRITICAL",
		"github-pat var/log/app/deploy.log:1 CRITICAL",
	}
	if g := keys(got); !slices.Equal(g, want) {
		t.Errorf("findings:\n got %q\nwant %q", g, want)
	}
}

// TestEncodedSecrets: a token base64-encoded in a Kubernetes-style
// config or hex-encoded in a script is reported with its encoding.
func TestEncodedSecrets(t *testing.T) {
	a := newAnalyzer(t)
	fx := getFixtures(t)
	b64 := base64.StdEncoding.EncodeToString([]byte(fx.gitlabPAT))
	files := []file{
		{"app/deploy/values.yaml", "image: app\ncredentials:\n  registry: " + b64 + "\n"},
		{"app/bin/start.sh", "#!/bin/sh\nexport T=$(echo " + hex.EncodeToString([]byte(fx.slackBot)) + " | xxd -r -p)\n"},
	}
	got := scanFiles(t, a, files)
	var k []string
	for _, f := range got {
		k = append(k, key(f)+" "+f.Encoded)
	}
	slices.Sort(k)
	want := []string{
		"gitlab-pat app/deploy/values.yaml:3 CRITICAL base64",
		"slack-bot-token app/bin/start.sh:2 HIGH hex",
	}
	if !slices.Equal(k, want) {
		t.Errorf("findings:\n got %q\nwant %q", k, want)
	}
	assertRedacted(t, got, append(fx.all(), b64, hex.EncodeToString([]byte(fx.slackBot))))
}
