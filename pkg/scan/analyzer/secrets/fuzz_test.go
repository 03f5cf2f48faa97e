package secrets_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/secrets"
)

// maxFuzzExcerpt bounds an excerpt: about 60 bytes of context before the
// secret and 40 after, a redacted secret, ellipses, and invalid bytes
// turned into U+FFFD (3 bytes each).
const maxFuzzExcerpt = 512

// FuzzAnalyze feeds one file to the secrets analyzer (gitleaks rules) and
// checks the analyzertest.FuzzFile invariants, plus: every finding is a
// secret finding from the secrets engine with a title, and its excerpt is
// one printable line of bounded length.
func FuzzAnalyze(f *testing.F) {
	fx := getFixtures(f)
	for _, s := range []analyzertest.Seed{
		{Path: "root/.ssh/id_rsa", Data: []byte(fx.rsaPEM)},
		{Path: "home/deploy/.ssh/id_ed25519", Data: []byte(fx.ed25519PEM)},
		{Path: "root/.aws/credentials", Data: []byte("[default]\naws_access_key_id = " + fx.awsKeyID + "\naws_secret_access_key = " + fx.awsSecret + "\n")},
		{Path: "app/config/settings.yml", Data: []byte("github:\n  token: " + fx.githubPAT + "\n")},
		{Path: "app/.env", Data: []byte("SLACK_BOT_TOKEN=" + fx.slackBot + "\nSTRIPE_SECRET_KEY=" + fx.stripeLive + "\nSESSION_SECRET=" + fx.genericValue + "\n")},
		{Path: "root/.npmrc", Data: []byte("//registry.npmjs.org/:_authToken=" + fx.npmToken + "\n")},
		{Path: "app/appsettings.json", Data: []byte(`{"Storage": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=` + fx.azureKey + `;EndpointSuffix=core.windows.net"}`)},
		{Path: "app/deploy.sh", Data: []byte("export GH=" + fx.githubPAT + " GL=" + fx.gitlabPAT + " # both\n")},
		{Path: "root/.bash_history", Data: []byte("git clone https://oauth2:" + fx.gitlabPAT + "@gitlab.example.com/a.git\n")},
		{Path: "app/.env.example", Data: []byte("API_KEY=changeme\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n")},
		{Path: "app/cert.p12", Data: []byte("\x30\x82\x00\x00 binary")},
		{Path: "app/x.txt", Data: []byte("token=\xff\xfe" + fx.githubPAT + "\xc3\n\ttoken=" + fx.githubPAT + fx.githubPAT + "\r\n")},
	} {
		analyzertest.AddSeed(f, s)
	}
	analyzertest.FuzzFile(f, newAnalyzer(f), func(t *testing.T, _ *analyzer.File, res *analyzer.Result) {
		for _, fi := range res.Findings {
			if fi.Kind != report.KindSecret || fi.Engine != secrets.Engine || fi.Title == "" || fi.Severity == "" || fi.Line < 0 {
				t.Fatalf("bad finding %+v", fi)
			}
			if len(fi.Excerpt) > maxFuzzExcerpt || !utf8.ValidString(fi.Excerpt) || strings.ContainsAny(fi.Excerpt, "\n\r\t\x00") {
				t.Fatalf("bad excerpt %q (%d bytes) in %+v", fi.Excerpt, len(fi.Excerpt), fi)
			}
		}
	})
}
