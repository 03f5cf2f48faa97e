// Package misconfig reports risky image configuration (kind "misconfig"):
//
// From the image config (ConfigAnalyzer):
//   - config-root-user (MEDIUM): the container runs as root: no USER, or
//     USER root / 0 (any group).
//   - config-exposes-ssh (MEDIUM): 22/tcp in ExposedPorts.
//   - history-curl-pipe-shell (HIGH): a build step pipes a download into a
//     shell (curl … | sh, wget -O- … | bash, sh -c "$(curl …)",
//     bash <(curl …)).
//   - history-add-url (MEDIUM): ADD of an http(s) URL (classic builder
//     "/bin/sh -c #(nop) ADD …" and BuildKit "ADD …" history), unless the
//     ADD pins a --checksum.
//
// History findings carry the layer their step created (an empty-layer
// step: the next layer). Excerpts quote a sanitised form of the command
// (URL without credentials, query or fragment; long tokens masked): a
// build step may carry credentials, which belong to the secrets analyzer.
//
// From files (path and mode bits only; the content is not needed except
// to tell a private key from other files in ~/.ssh):
//   - suid-binary (HIGH): an executable with the setuid or setgid bit.
//     Only files added by a layer above the base are reported: the base is
//     taken to be the bottom layer (PostProcess drops findings in
//     img.Layers[0]), where a distribution's own su, passwd, mount… live.
//     A single-layer image therefore never reports one; a base image made
//     of several layers reports those of its upper layers.
//   - world-writable-system-file (MEDIUM): a regular file writable by
//     everyone under bin, sbin, usr, etc, lib, lib32, lib64, libx32, opt
//     or boot.
//   - ssh-server-installed (MEDIUM): sshd or dropbear.
//   - ssh-key-in-image (HIGH): a private key or authorized_keys in
//     root/.ssh or home/*/.ssh, or an SSH host private key
//     (etc/ssh/ssh_host_*_key), which every container of the image shares.
package misconfig

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// Rule ids.
const (
	RuleRootUser      = "config-root-user"
	RuleExposesSSH    = "config-exposes-ssh"
	RuleCurlPipeShell = "history-curl-pipe-shell"
	RuleAddURL        = "history-add-url"
	RuleSUID          = "suid-binary"
	RuleWorldWritable = "world-writable-system-file"
	RuleSSHServer     = "ssh-server-installed"
	RuleSSHKey        = "ssh-key-in-image"
	// Engine is written into Finding.Engine.
	Engine = "misconfig"
)

// Analyzer is the misconfiguration analyzer; it has no state and is safe
// for concurrent use.
type Analyzer struct{}

// New returns the misconfiguration analyzer.
func New() *Analyzer { return &Analyzer{} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "misconfig" }

// Version implements analyzer.Analyzer.
func (*Analyzer) Version() int { return 1 }

const suidBits = fs.ModeSetuid | fs.ModeSetgid

// Match implements analyzer.Analyzer: SUID/SGID executables,
// world-writable files in system paths, SSH servers and SSH key paths.
// It compares bits and strings only.
func (*Analyzer) Match(p string, mode fs.FileMode, _ int64) bool {
	switch {
	case mode&suidBits != 0 && mode&0o111 != 0:
		return true
	case mode&0o002 != 0 && systemPath(p):
		return true
	}
	return sshServer(p) != "" || sshKeyPath(p) != keyNone
}

// Analyze implements analyzer.Analyzer.
func (*Analyzer) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	var res analyzer.Result
	add := func(rule, sev, title, excerpt string) {
		res.Findings = append(res.Findings, report.Finding{
			Kind: report.KindMisconfig, Rule: rule, Severity: sev, Title: title, Excerpt: excerpt, Engine: Engine,
		})
	}
	mode := f.Mode
	if mode&suidBits != 0 && mode&0o111 != 0 {
		var bits []string
		if mode&fs.ModeSetuid != 0 {
			bits = append(bits, "setuid")
		}
		if mode&fs.ModeSetgid != 0 {
			bits = append(bits, "setgid")
		}
		add(RuleSUID, report.SeverityHigh,
			strings.Join(bits, " and ")+" executable added on top of the base image", modeString(mode))
	}
	if mode&0o002 != 0 && systemPath(f.Path) {
		add(RuleWorldWritable, report.SeverityMedium,
			"World-writable file in a system directory: any user in the container can modify it", modeString(mode))
	}
	if name := sshServer(f.Path); name != "" {
		add(RuleSSHServer, report.SeverityMedium,
			"SSH server installed ("+name+"): containers should not run an SSH daemon", "")
	}
	switch sshKeyPath(f.Path) {
	case keyHost:
		if f.Size > 0 {
			add(RuleSSHKey, report.SeverityHigh,
				"SSH host private key baked into the image: every container of the image shares it", "")
		}
	case keyAuthorized:
		if f.Size > 0 {
			add(RuleSSHKey, report.SeverityHigh,
				"authorized_keys baked into the image: whoever holds the matching keys can log in", "")
		}
	case keyUser:
		if bytes.Contains(f.Data, []byte("PRIVATE KEY-----")) {
			add(RuleSSHKey, report.SeverityHigh, "SSH private key in the image", "")
		}
	}
	return &res, nil
}

// PostProcess implements analyzer.PostProcessor: SUID/SGID files of the
// bottom layer (the base image's own su, passwd, mount…) are dropped.
func (*Analyzer) PostProcess(_ context.Context, img *analyzer.Image, res *analyzer.Result) error {
	if img == nil || len(img.Layers) == 0 {
		return nil
	}
	base := img.Layers[0].Digest
	res.Findings = slices.DeleteFunc(res.Findings, func(f report.Finding) bool {
		return f.Rule == RuleSUID && f.Layer == base
	})
	return nil
}

// AnalyzeConfig implements analyzer.ConfigAnalyzer.
func (*Analyzer) AnalyzeConfig(_ context.Context, img *analyzer.Image, cfg *v1.ConfigFile) (*analyzer.Result, error) {
	if cfg == nil {
		return nil, nil
	}
	var res analyzer.Result
	add := func(f report.Finding) {
		f.Kind, f.Engine, f.Path = report.KindMisconfig, Engine, ConfigPath
		res.Findings = append(res.Findings, f)
	}
	if u := cfg.Config.User; runsAsRoot(u) {
		title := "Container runs as root: the image config sets no USER"
		if u != "" {
			title = fmt.Sprintf("Container runs as root: USER is %q", u)
		}
		add(report.Finding{Rule: RuleRootUser, Severity: report.SeverityMedium, Title: title})
	}
	for port := range cfg.Config.ExposedPorts {
		if port == "22/tcp" || port == "22" {
			add(report.Finding{Rule: RuleExposesSSH, Severity: report.SeverityMedium,
				Title: "Image exposes the SSH port 22/tcp"})
			break
		}
	}
	var layers []report.Layer
	if img != nil {
		layers = img.Layers
	}
	hl := analyzer.HistoryLayers(cfg.History, layers)
	for i, h := range cfg.History {
		cmd := h.CreatedBy
		if cmd == "" {
			continue
		}
		step := i + 1
		if ex, ok := curlPipeShell(cmd); ok {
			add(report.Finding{Rule: RuleCurlPipeShell, Severity: report.SeverityHigh, Layer: hl[i],
				Title:   fmt.Sprintf("Build step pipes a download into a shell (history step %d)", step),
				Excerpt: ex})
		}
		if u, ok := addURL(cmd); ok {
			add(report.Finding{Rule: RuleAddURL, Severity: report.SeverityMedium, Layer: hl[i],
				Title:   fmt.Sprintf("ADD downloads a remote URL at build time without a checksum (history step %d)", step),
				Excerpt: "ADD " + u})
		}
	}
	return &res, nil
}

// ConfigPath is Finding.Path for findings in the image config.
const ConfigPath = "(image config)"

// runsAsRoot reports whether a config User runs processes as root: empty
// (the default), or a user part of "root" or "0" whatever the group.
func runsAsRoot(u string) bool {
	u = strings.TrimSpace(u)
	user, _, _ := strings.Cut(u, ":")
	return user == "" || user == "root" || user == "0"
}

// systemDirs hold what the OS and installed software execute and trust.
var systemDirs = []string{"bin/", "sbin/", "usr/", "etc/", "lib/", "lib32/", "lib64/", "libx32/", "opt/", "boot/"}

func systemPath(p string) bool {
	for _, d := range systemDirs {
		if strings.HasPrefix(p, d) {
			return true
		}
	}
	return false
}

// sshServer returns the name of the SSH server at p, "" when none.
func sshServer(p string) string {
	switch p {
	case "usr/sbin/sshd", "sbin/sshd", "usr/bin/sshd", "usr/local/sbin/sshd", "usr/local/bin/sshd":
		return "sshd"
	case "usr/sbin/dropbear", "sbin/dropbear", "usr/bin/dropbear", "usr/local/sbin/dropbear":
		return "dropbear"
	}
	return ""
}

type keyKind int

const (
	keyNone keyKind = iota
	keyHost
	keyAuthorized
	keyUser
)

// sshKeyPath classifies p: an SSH host key (etc/ssh/ssh_host_*_key), an
// authorized_keys file or another file of a user's .ssh directory (root's
// or home/<user>'s) that may be a private key. Public keys, known_hosts
// and the client config are not keys to worry about.
func sshKeyPath(p string) keyKind {
	if strings.HasPrefix(p, "etc/ssh/ssh_host_") && strings.HasSuffix(p, "_key") && !strings.Contains(p[len("etc/ssh/"):], "/") {
		return keyHost
	}
	var rest string
	switch {
	case strings.HasPrefix(p, "root/.ssh/"):
		rest = p[len("root/.ssh/"):]
	case strings.HasPrefix(p, "home/"):
		i := strings.IndexByte(p[len("home/"):], '/')
		if i <= 0 || !strings.HasPrefix(p[len("home/")+i:], "/.ssh/") {
			return keyNone
		}
		rest = p[len("home/")+i+len("/.ssh/"):]
	default:
		return keyNone
	}
	if rest == "" || strings.IndexByte(rest, '/') >= 0 || strings.HasSuffix(rest, ".pub") {
		return keyNone
	}
	switch rest {
	case "authorized_keys", "authorized_keys2":
		return keyAuthorized
	case "known_hosts", "known_hosts.old", "config", "environment", "rc":
		return keyNone
	}
	return keyUser
}

func modeString(m fs.FileMode) string {
	perm := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	return fmt.Sprintf("mode %04o", perm)
}

var (
	shell = `(?:(?:/usr)?/bin/)?(?:ba|z|da|k|a)?sh`
	// download | [sudo [-flags]] [env [VAR=x]…] shell
	pipeRE = regexp.MustCompile(`\b(curl|wget)\b([^|;&\n]*)\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:env\s+(?:\S+=\S*\s+)*)?(` + shell + `)\b`)
	// shell [-c] "$(download …)" and shell <(download …)
	substRE = regexp.MustCompile(`\b(` + shell + `)\s+(?:-\S+\s+)*(?:["']?\$\(|<\()\s*(curl|wget)\b([^)]*)`)
	urlRE   = regexp.MustCompile(`\b(?:https?|ftp)://[^\s"'|;&)]+`)
	// ADD [--flags] <url>: BuildKit "ADD …", classic "/bin/sh -c #(nop) ADD …".
	addRE = regexp.MustCompile(`(?:^|#\(nop\)\s+|\s)ADD\s+((?:--\S+\s+)*)((?:https?|ftp)://\S+)`)
)

// curlPipeShell reports whether cmd pipes a download into a shell, with
// a sanitised excerpt ("curl https://host/path | sh").
func curlPipeShell(cmd string) (string, bool) {
	if m := pipeRE.FindStringSubmatch(cmd); m != nil {
		return excerpt(m[1], m[2], path.Base(m[3])+" (piped)"), true
	}
	if m := substRE.FindStringSubmatch(cmd); m != nil {
		return excerpt(m[2], m[3], path.Base(m[1])+" (substituted)"), true
	}
	return "", false
}

func excerpt(tool, args, sh string) string {
	u := "…"
	if s := urlRE.FindString(args); s != "" {
		u = sanitizeURL(s)
	}
	return tool + " " + u + " | " + sh
}

// addURL returns the sanitised URL of an ADD <url> without --checksum.
func addURL(cmd string) (string, bool) {
	m := addRE.FindStringSubmatch(cmd)
	if m == nil || strings.Contains(m[1], "--checksum") {
		return "", false
	}
	return sanitizeURL(m[2]), true
}

// sanitizeURL keeps scheme, host and path: no user info, query or
// fragment, path segments that look like tokens masked, at most 120
// bytes.
func sanitizeURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "(url)"
	}
	segs := strings.Split(u.EscapedPath(), "/")
	for i, seg := range segs {
		if tokenLike(seg) {
			segs[i] = "…"
		}
	}
	out := u.Scheme + "://" + u.Host + strings.Join(segs, "/")
	if len(out) > 120 {
		out = out[:120] + "…"
	}
	return out
}

// tokenLike: 20 or more letters, digits, '-' or '_' with letters and
// digits mixed, the shape of most API tokens.
func tokenLike(s string) bool {
	run, letters, digits := 0, false, false
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits = true
			run++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letters = true
			run++
		case c == '-' || c == '_':
			run++
		default:
			run, letters, digits = 0, false, false
		}
		if run >= 20 && letters && digits {
			return true
		}
	}
	return false
}
