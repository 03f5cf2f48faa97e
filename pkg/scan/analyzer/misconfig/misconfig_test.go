package misconfig_test

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/misconfig"
)

type file struct {
	path string
	mode fs.FileMode
	data string
}

// analyze runs Match and Analyze over files as the walker does and
// returns "rule path" for each finding.
func analyze(t *testing.T, files []file) []string {
	t.Helper()
	a := misconfig.New()
	var got []string
	for _, f := range files {
		if !a.Match(f.path, f.mode, int64(len(f.data))) {
			continue
		}
		res, err := a.Analyze(context.Background(), &analyzer.File{Path: f.path, Mode: f.mode, Size: int64(len(f.data)), Data: []byte(f.data)})
		if err != nil {
			t.Fatalf("Analyze(%s): %v", f.path, err)
		}
		analyzer.Normalize(a, f.path, res)
		for _, fd := range res.Findings {
			if fd.Kind != report.KindMisconfig || fd.Engine != misconfig.Engine || fd.Title == "" {
				t.Errorf("%s: malformed finding %+v", f.path, fd)
			}
			got = append(got, fd.Rule+" "+fd.Path)
		}
	}
	slices.Sort(got)
	return got
}

const opensshKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n"

func TestFiles(t *testing.T) {
	files := []file{
		// SUID/SGID executables.
		{"usr/bin/passwd", 0o755 | fs.ModeSetuid, "\x7fELF"},
		{"usr/bin/wall", 0o755 | fs.ModeSetgid, "\x7fELF"},
		{"usr/local/bin/helper", 0o755 | fs.ModeSetuid | fs.ModeSetgid, "\x7fELF"},
		{"srv/data.txt", 0o644 | fs.ModeSetuid, "setuid without exec bits does nothing"},
		// World-writable files.
		{"etc/profile.d/app.sh", 0o666, "export A=1\n"},
		{"opt/app/run.sh", 0o777, "#!/bin/sh\n"},
		{"tmp/scratch", 0o666, "fine in /tmp"},
		{"var/lib/app/state", 0o666, "not a system path"},
		{"etc/hosts", 0o644, "127.0.0.1 localhost\n"},
		// SSH.
		{"usr/sbin/sshd", 0o755, "\x7fELF"},
		{"usr/sbin/dropbear", 0o755, "\x7fELF"},
		{"usr/bin/ssh", 0o755, "\x7fELF (client: fine)"},
		{"etc/ssh/ssh_host_ed25519_key", 0o600, opensshKey},
		{"etc/ssh/ssh_host_ed25519_key.pub", 0o644, "ssh-ed25519 AAAA host"},
		{"etc/ssh/sshd_config", 0o644, "PermitRootLogin no\n"},
		{"root/.ssh/id_ed25519", 0o600, opensshKey},
		{"root/.ssh/id_ed25519.pub", 0o644, "ssh-ed25519 AAAA root"},
		{"root/.ssh/known_hosts", 0o644, "github.com ssh-ed25519 AAAA"},
		{"root/.ssh/authorized_keys", 0o600, "ssh-ed25519 AAAA admin@laptop\n"},
		{"home/deploy/.ssh/deploy_key", 0o600, opensshKey},
		{"home/deploy/.ssh/notes.txt", 0o600, "not a key"},
		{"home/deploy/.ssh/config", 0o600, "Host *\n"},
		{"home/deploy/src/.ssh/id_rsa", 0o600, opensshKey}, // not a home .ssh directory
	}
	got := analyze(t, files)
	want := []string{
		"ssh-key-in-image etc/ssh/ssh_host_ed25519_key",
		"ssh-key-in-image home/deploy/.ssh/deploy_key",
		"ssh-key-in-image root/.ssh/authorized_keys",
		"ssh-key-in-image root/.ssh/id_ed25519",
		"ssh-server-installed usr/sbin/dropbear",
		"ssh-server-installed usr/sbin/sshd",
		"suid-binary usr/bin/passwd",
		"suid-binary usr/bin/wall",
		"suid-binary usr/local/bin/helper",
		"world-writable-system-file etc/profile.d/app.sh",
		"world-writable-system-file opt/app/run.sh",
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n got %q\nwant %q", got, want)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	a := misconfig.New()
	paths := []string{"usr/lib/x86_64-linux-gnu/libc.so.6", "home/u/.ssh/id_rsa", "etc/ssh/ssh_host_rsa_key", "app/main.go"}
	allocs := testing.AllocsPerRun(100, func() {
		for _, p := range paths {
			a.Match(p, 0o644, 100)
			a.Match(p, 0o4755, 100)
			a.Match(p, 0o666, 100)
		}
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times", allocs)
	}
}

func TestPostProcessDropsBaseSUID(t *testing.T) {
	a := misconfig.New()
	img := &analyzer.Image{Layers: []report.Layer{{Digest: "sha256:base"}, {Digest: "sha256:app"}}}
	res := &analyzer.Result{Findings: []report.Finding{
		{Rule: misconfig.RuleSUID, Path: "usr/bin/su", Layer: "sha256:base"},
		{Rule: misconfig.RuleSUID, Path: "usr/local/bin/x", Layer: "sha256:app"},
		{Rule: misconfig.RuleWorldWritable, Path: "etc/x", Layer: "sha256:base"},
	}}
	if err := a.PostProcess(context.Background(), img, res); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range res.Findings {
		got = append(got, f.Rule+" "+f.Path)
	}
	want := []string{"suid-binary usr/local/bin/x", "world-writable-system-file etc/x"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestConfig(t *testing.T) {
	layers := []report.Layer{{Digest: "sha256:l1"}, {Digest: "sha256:l2"}, {Digest: "sha256:l3"}, {Digest: "sha256:l4"}}
	cfg := &v1.ConfigFile{
		Config: v1.Config{
			ExposedPorts: map[string]struct{}{"8080/tcp": {}, "22/tcp": {}},
		},
		History: []v1.History{
			{CreatedBy: "/bin/sh -c #(nop) ADD file:5d9f4c3a0b8e in / "}, // l1
			{CreatedBy: "/bin/sh -c #(nop)  CMD [\"bash\"]", EmptyLayer: true},
			{CreatedBy: "/bin/sh -c curl -fsSL https://deploy:hunter2@get.example.com/install.sh?token=abc | sudo -E bash -"}, // l2
			{CreatedBy: "ARG VERSION=1.2", EmptyLayer: true, Comment: "buildkit.dockerfile.v0"},
			{CreatedBy: "ADD https://releases.example.com/tool/v1.2/tool.tar.gz /opt/ # buildkit", Comment: "buildkit.dockerfile.v0"},                     // l3
			{CreatedBy: "ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a.tgz /a # buildkit"}, // l4
			{CreatedBy: "/bin/sh -c #(nop) ADD http://mirror.example.org/pkg.deb /tmp/", EmptyLayer: true},
			{CreatedBy: "RUN /bin/sh -c wget -qO- https://example.com/x.sh | sh # buildkit", EmptyLayer: true},
			{CreatedBy: "RUN /bin/sh -c sh -c \"$(curl -fsSL https://raw.example.com/ohmyzsh/install.sh)\"", EmptyLayer: true},
			{CreatedBy: "RUN /bin/sh -c curl -fsSLo /tmp/k.tgz https://example.com/k.tgz && sha256sum -c k.sha && tar xzf /tmp/k.tgz", EmptyLayer: true},
		},
	}
	res, err := misconfig.New().AnalyzeConfig(context.Background(), &analyzer.Image{Layers: layers}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range res.Findings {
		if f.Path != misconfig.ConfigPath || f.Kind != report.KindMisconfig {
			t.Errorf("malformed %+v", f)
		}
		got = append(got, fmt.Sprintf("%s %s layer=%s excerpt=%q", f.Rule, f.Severity, f.Layer, f.Excerpt))
		if strings.Contains(f.Excerpt, "hunter2") || strings.Contains(f.Excerpt, "token=abc") {
			t.Errorf("excerpt keeps credentials: %q", f.Excerpt)
		}
	}
	slices.Sort(got)
	want := []string{
		`config-exposes-ssh MEDIUM layer= excerpt=""`,
		`config-root-user MEDIUM layer= excerpt=""`,
		`history-add-url MEDIUM layer= excerpt="ADD http://mirror.example.org/pkg.deb"`,
		`history-add-url MEDIUM layer=sha256:l3 excerpt="ADD https://releases.example.com/tool/v1.2/tool.tar.gz"`,
		`history-curl-pipe-shell HIGH layer= excerpt="curl https://raw.example.com/ohmyzsh/install.sh | sh (substituted)"`,
		`history-curl-pipe-shell HIGH layer= excerpt="wget https://example.com/x.sh | sh (piped)"`,
		`history-curl-pipe-shell HIGH layer=sha256:l2 excerpt="curl https://get.example.com/install.sh | bash (piped)"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n got %q\nwant %q", got, want)
	}
}

func TestRootUser(t *testing.T) {
	for user, root := range map[string]bool{
		"": true, "root": true, "0": true, "0:0": true, "root:root": true, "0:1000": true,
		"1000": false, "app": false, "app:app": false, "65532:65532": false, "nobody": false,
	} {
		cfg := &v1.ConfigFile{Config: v1.Config{User: user}}
		res, err := misconfig.New().AnalyzeConfig(context.Background(), nil, cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := slices.ContainsFunc(res.Findings, func(f report.Finding) bool { return f.Rule == misconfig.RuleRootUser })
		if got != root {
			t.Errorf("User %q: root finding %v, want %v", user, got, root)
		}
	}
}
