package secrets_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer/misconfig"
	"github.com/customs-scan/customs/pkg/scan/analyzer/secrets"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// TestImage runs both analyzers through scan.Image on a real OCI image:
//
//	layer 1 (base): Debian files, setuid usr/bin/passwd
//	layer 2: an SSH private key, a .env with a token, a setuid helper,
//	         sshd, a world-writable script in /usr/local/bin
//	layer 3: deletes the key (whiteout) and the .env (opaque directory)
//
// plus a config running as root, exposing 22/tcp, with a token in the
// environment and a curl | sh step.
func TestImage(t *testing.T) {
	fx := getFixtures(t)
	sa := newAnalyzer(t)
	base := append(scantest.DebianRootfs(t),
		scantest.File{Path: "usr/bin/passwd", Content: []byte("\x7fELF passwd"), Mode: 0o4755})
	l1 := scantest.Layer(t, base...)
	l2 := scantest.Layer(t,
		scantest.Dir("root/.ssh"),
		scantest.File{Path: "root/.ssh/id_ed25519", Content: []byte(fx.ed25519PEM), Mode: 0o600},
		scantest.Dir("app"),
		scantest.Reg("app/.env", "APP_ENV=production\nGITHUB_TOKEN="+fx.githubPAT+"\n"),
		scantest.Reg("app/server.js", "const token = process.env.GITHUB_TOKEN;\n"),
		scantest.File{Path: "usr/local/bin/helper", Content: []byte("\x7fELF helper"), Mode: 0o4755},
		scantest.Exec("usr/sbin/sshd", []byte("\x7fELF sshd")),
		scantest.File{Path: "usr/local/bin/run.sh", Content: []byte("#!/bin/sh\nexec node /app/server.js\n"), Mode: 0o777},
	)
	l3 := scantest.Layer(t,
		scantest.Whiteout("root/.ssh/id_ed25519"),
		scantest.Opaque("app"),
		scantest.Reg("app/server.js", "const token = process.env.GITHUB_TOKEN;\n"),
	)
	cfg := scantest.Config(t, l1, l2, l3)
	cfg.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "NPM_TOKEN=" + fx.npmToken}
	cfg.Config.ExposedPorts = map[string]struct{}{"22/tcp": {}}
	cfg.History = []v1.History{
		{CreatedBy: "/bin/sh -c #(nop) ADD file:b4f1a2c9d0e3 in / "},
		{CreatedBy: "/bin/sh -c #(nop)  CMD [\"bash\"]", EmptyLayer: true},
		{CreatedBy: "RUN /bin/sh -c curl -fsSL https://get.example.com/setup.sh | bash # buildkit", Comment: "buildkit.dockerfile.v0"},
		{CreatedBy: "RUN /bin/sh -c rm -rf /root/.ssh/id_ed25519 /app/.env # buildkit", Comment: "buildkit.dockerfile.v0"},
	}
	img := scantest.ImageWithConfig(t, scantest.MarshalConfig(t, cfg), l1, l2, l3)

	var logs bytes.Buffer
	ctx := zerolog.New(&logs).Level(zerolog.TraceLevel).WithContext(context.Background())
	res, err := scan.Image(ctx, img, scan.WithAnalyzers(sa, misconfig.New()))
	if err != nil {
		t.Fatal(err)
	}
	d1, d2, d3 := layerDigest(t, l1), layerDigest(t, l2), layerDigest(t, l3)
	name := map[string]string{d1: "L1", d2: "L2", d3: "L3", "": "-"}
	var got []string
	for _, f := range res.Findings {
		got = append(got, f.Kind+" "+f.Rule+" "+f.Path+" "+name[f.Layer])
	}
	want := []string{
		"misconfig config-exposes-ssh (image config) -",
		"misconfig config-root-user (image config) -",
		"misconfig history-curl-pipe-shell (image config) L2",
		"misconfig ssh-server-installed usr/sbin/sshd L2",
		"misconfig suid-binary usr/local/bin/helper L2",
		"misconfig world-writable-system-file usr/local/bin/run.sh L2",
		"secret github-pat app/.env L2",
		"secret npm-access-token (image config) -",
		"secret private-key root/.ssh/id_ed25519 L2",
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n got %q\nwant %q", got, want)
	}
	// The deleted key is reported from layer 2, where anyone can pull it;
	// the misconfig finding for it (not persistent) went with the file.
	for _, f := range res.Findings {
		if f.Rule == "private-key" && (f.Line != 1 || f.Severity != report.SeverityCritical) {
			t.Errorf("private key finding %+v", f)
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fx.ed25519PEM, fx.githubPAT, fx.npmToken} {
		if strings.Contains(string(b), s) {
			t.Errorf("a full secret (%.8s…) is in the scan result", s)
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("a full secret (%.8s…) is in the logs", s)
		}
	}
	for _, l := range strings.Split(fx.ed25519PEM, "\n") {
		if len(l) > 16 && !strings.HasPrefix(l, "-----") && (strings.Contains(string(b), l) || strings.Contains(logs.String(), l)) {
			t.Errorf("a line of the key is in the result or the logs: %q", l)
		}
	}
}

func layerDigest(t testing.TB, l v1.Layer) string {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// textWithTokens returns about size bytes of minified-JavaScript-like
// lines (100 bytes each) with a GitHub token on each of the given lines
// (1-based), distinct tokens.
func textWithTokens(size int, lines ...int) ([]byte, []string) {
	var b bytes.Buffer
	var tokens []string
	want := map[int]bool{}
	for _, l := range lines {
		want[l] = true
	}
	for n := 1; b.Len() < size || len(tokens) < len(lines); n++ {
		if want[n] {
			tok := fmt.Sprintf("ghp_%06dZq8Lr2Xv9Tb4Nc6Md1Pw7Ks3Hy5Fj0G", n)
			tokens = append(tokens, tok)
			line := "const gh=\"" + tok + "\";"
			b.WriteString(line + strings.Repeat(" ", 99-len(line)) + "\n")
			continue
		}
		b.WriteString("function f" + strings.Repeat("a", 80) + strings.Repeat(";", 9) + "\n")
	}
	return b.Bytes(), tokens
}

// Files over the size read whole are streamed through the rules in
// overlapping windows: a token at the end of a 3 MB bundle is found, a
// token across a window boundary once, every token of a file (not one
// per rule), each at its line in the file.
func TestLargeFiles(t *testing.T) {
	bundle, bundleTokens := textWithTokens(3<<20, 31458) // the last line of ~3 MB
	// With MaxAnalyzedFileSize 1 MiB, windows are 256 KiB and advance by
	// 192 KiB: the token of line 1967 is whole in the first two windows,
	// the one of line 2622 (at 262,110) is cut by the first window's end
	// (262,144), and the one of 2623 is another token of the same rule.
	streamed, streamedTokens := textWithTokens(3<<20, 3, 1967, 2622, 2623, 15000)
	huge, _ := textWithTokens(5<<20, 40000)
	files := []scantest.File{
		scantest.Reg("app/dist/main.js", string(bundle)),
		scantest.Reg("app/dist/vendor.js", string(streamed)),
		scantest.Reg("app/dist/huge.js", string(huge)),
	}
	for _, lim := range []scan.Limits{{}, {MaxAnalyzedFileSize: 1 << 20}} {
		img := scantest.Image(t, scantest.Layer(t, files...))
		small, err := secrets.New(secrets.WithMaxStreamedFileSize(4 << 20))
		if err != nil {
			t.Fatal(err)
		}
		res, err := scan.Image(context.Background(), img, scan.WithAnalyzers(small), scan.WithLimits(lim))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range res.Findings {
			got = append(got, fmt.Sprintf("%s %s:%d", f.Rule, f.Path, f.Line))
		}
		slices.Sort(got)
		want := []string{
			"github-pat app/dist/main.js:31458",
			"github-pat app/dist/vendor.js:15000",
			"github-pat app/dist/vendor.js:1967",
			"github-pat app/dist/vendor.js:2622",
			"github-pat app/dist/vendor.js:2623",
			"github-pat app/dist/vendor.js:3",
		}
		if !slices.Equal(got, want) {
			t.Errorf("limits %+v: findings\n got %q\nwant %q", lim, got, want)
		}
		b, _ := json.Marshal(res)
		for _, tok := range append(bundleTokens, streamedTokens...) {
			if strings.Contains(string(b), tok) {
				t.Errorf("a whole token is in the result: %s", tok)
			}
		}
	}
}

func zipOf(t testing.TB, kv ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i+1 < len(kv); i += 2 {
		w, err := zw.Create(kv[i])
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(kv[i+1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tgzOf(t testing.TB, kv ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gw)
	for i := 0; i+1 < len(kv); i += 2 {
		tw.WriteHeader(&tar.Header{Name: kv[i], Mode: 0o644, Size: int64(len(kv[i+1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(kv[i+1]))
	}
	tw.Close()
	gw.Close()
	return buf.Bytes()
}

// Secrets inside archives — a zip, a jar, a tar.gz holding a zip, a
// gzip'd dump, an archive named like anything — are found, with the
// member's path after "!/"; binary members and skipped paths are not
// searched.
func TestArchives(t *testing.T) {
	fx := getFixtures(t)
	sa := newAnalyzer(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Name = "dump.sql"
	zw.Write([]byte("INSERT INTO settings VALUES ('slack', '" + fx.slackBot + "');\n"))
	zw.Close()
	inner := zipOf(t, "config/.npmrc", "//registry.npmjs.org/:_authToken="+fx.npmToken+"\n")
	big := make([]byte, 3<<20) // a 3 MiB archive: over the size read whole for text
	mrand.NewChaCha8([32]byte{3}).Read(big)
	files := []scantest.File{
		{Path: "app/bundle.zip", Content: zipOf(t, "config/.env", "GITHUB_TOKEN="+fx.githubPAT+"\n", "img/logo.png", "\x89PNG\r\n\x1a\n\x00\x00 GITHUB_TOKEN="+fx.githubPAT)},
		{Path: "app/lib/app.jar", Content: zipOf(t, "META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n",
			"BOOT-INF/classes/application.properties", "gitlab.token="+fx.gitlabPAT+"\n", "lib/native.so", "\x7fELF"+string(big))},
		{Path: "srv/release.tar.gz", Content: tgzOf(t, "release/README", "nothing here\n", "release/deps.zip", string(inner),
			"release/node_modules/x/index.js", "module.exports='"+fx.githubPAT+"'\n")},
		{Path: "var/backups/db.sql.gz", Content: gz.Bytes()},
		{Path: "srv/blob", Content: zipOf(t, "keys/id_ed25519", fx.ed25519PEM)},
	}
	img := scantest.Image(t, scantest.Layer(t, files...))
	res, err := scan.Image(context.Background(), img, scan.WithAnalyzers(sa))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range res.Findings {
		got = append(got, fmt.Sprintf("%s %s:%d", f.Rule, f.Path, f.Line))
	}
	slices.Sort(got)
	want := []string{
		"github-pat app/bundle.zip!/config/.env:1",
		"gitlab-pat app/lib/app.jar!/BOOT-INF/classes/application.properties:1",
		"npm-access-token srv/release.tar.gz!/release/deps.zip!/config/.npmrc:1",
		"private-key srv/blob!/keys/id_ed25519:1",
		"slack-bot-token var/backups/db.sql.gz!/dump.sql:1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n got %q\nwant %q", got, want)
	}
	assertRedacted(t, res.Findings, fx.all())
}
