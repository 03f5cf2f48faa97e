// Package osrelease reads os-release(5): /etc/os-release, which wins over
// /usr/lib/os-release. etc/os-release is usually a symlink to
// ../usr/lib/os-release; the scan resolves symlinks for this analyzer
// (analyzer.Anchored), so a link pointing anywhere else is read as
// etc/os-release, with the content it points to.
package osrelease

import (
	"bytes"
	"context"
	"io/fs"
	"strings"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

const (
	etcPath    = "etc/os-release"
	usrLibPath = "usr/lib/os-release"
	// maxSize bounds what is parsed: real files are a few hundred bytes.
	maxSize = 64 << 10
)

// Analyzer is the os-release analyzer.
type Analyzer struct{}

// New returns the os-release analyzer.
func New() *Analyzer { return &Analyzer{} }

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return "osrelease" }

// Version implements analyzer.Analyzer.
func (*Analyzer) Version() int { return 1 }

// Anchors implements analyzer.Anchored: etc/os-release is usually a
// symlink to ../usr/lib/os-release, and is read through it.
func (*Analyzer) Anchors() []string { return []string{"etc", "usr/lib"} }

// Match implements analyzer.Analyzer.
func (*Analyzer) Match(path string, _ fs.FileMode, size int64) bool {
	return size <= maxSize && (path == etcPath || path == usrLibPath)
}

// Analyze implements analyzer.Analyzer.
func (*Analyzer) Analyze(_ context.Context, f *analyzer.File) (*analyzer.Result, error) {
	os, ok := Parse(f.Data)
	if !ok {
		return nil, nil
	}
	prio := 1
	if f.Path == etcPath {
		prio = 2 // /etc/os-release overrides /usr/lib/os-release (os-release(5))
	}
	return &analyzer.Result{OS: &os, OSPriority: prio}, nil
}

// Parse reads os-release content: ID, VERSION_ID and PRETTY_NAME. ok is
// false when the content sets none of them. Per os-release(5) the ID
// defaults to "linux".
func Parse(b []byte) (os report.OS, ok bool) {
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		key, val, found := bytes.Cut(bytes.TrimSpace(line), []byte("="))
		if !found || len(key) == 0 || key[0] == '#' {
			continue
		}
		switch string(bytes.TrimSpace(key)) {
		case "ID":
			os.ID = unquote(val)
			ok = true
		case "VERSION_ID":
			os.Version = unquote(val)
			ok = true
		case "PRETTY_NAME":
			os.Name = unquote(val)
			ok = true
		}
	}
	if ok && os.ID == "" {
		os.ID = "linux"
	}
	return os, ok
}

// unquote decodes a shell-style value: "double quoted" (backslash escapes
// \" \\ \$ \`), 'single quoted', or bare.
func unquote(v []byte) string {
	v = bytes.TrimSpace(v)
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return string(v[1 : len(v)-1])
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		if bytes.IndexByte(v, '\\') < 0 {
			return string(v)
		}
		var sb strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
				i++
			}
			sb.WriteByte(v[i])
		}
		return sb.String()
	}
	return string(v)
}
