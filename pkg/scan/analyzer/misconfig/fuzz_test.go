package misconfig_test

import (
	"io/fs"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/misconfig"
)

// FuzzAnalyze feeds one file (path and mode bits matter most here) to
// the misconfig analyzer and checks the analyzertest.FuzzFile invariants,
// plus: every finding is a misconfig finding of a known rule.
func FuzzAnalyze(f *testing.F) {
	for _, s := range []analyzertest.Seed{
		{Path: "usr/bin/sudo", Mode: 0o755 | fs.ModeSetuid, Data: []byte("\x7fELF")},
		{Path: "usr/bin/wall", Mode: 0o755 | fs.ModeSetgid, Data: []byte("\x7fELF")},
		{Path: "usr/local/bin/tool", Mode: 0o777 | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky, Data: []byte("x")},
		{Path: "etc/passwd", Mode: 0o666, Data: []byte("root:x:0:0::/root:/bin/sh\n")},
		{Path: "usr/sbin/sshd", Mode: 0o755, Data: []byte("\x7fELF")},
		{Path: "usr/sbin/dropbear", Mode: 0o755, Data: []byte("\x7fELF")},
		{Path: "etc/ssh/ssh_host_ed25519_key", Mode: 0o600, Data: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n")},
		{Path: "root/.ssh/authorized_keys", Mode: 0o600, Data: []byte("ssh-ed25519 AAAAC3Nza deploy@build\n")},
		{Path: "home/app/.ssh/id_rsa", Mode: 0o600, Data: []byte("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n")},
		{Path: "home/app/.ssh/config", Mode: 0o644, Data: []byte("Host *\n")},
		{Path: "!/0", Mode: 0o103 | fs.ModeSetuid, Data: []byte("0")},
		{Path: "etc/ssh/ssh_host_rsa_key.pub", Mode: 0o644, Data: []byte("ssh-rsa AAAA\n")},
	} {
		analyzertest.AddSeed(f, s)
	}
	a := misconfig.New()
	rules := map[string]bool{misconfig.RuleSUID: true, misconfig.RuleWorldWritable: true, misconfig.RuleSSHServer: true, misconfig.RuleSSHKey: true}
	analyzertest.FuzzFile(f, a, func(t *testing.T, file *analyzer.File, res *analyzer.Result) {
		for _, fi := range res.Findings {
			if fi.Kind != report.KindMisconfig || !rules[fi.Rule] || fi.Engine != misconfig.Engine || fi.Severity == "" || fi.Title == "" {
				t.Fatalf("bad finding %+v", fi)
			}
		}
	})
}
