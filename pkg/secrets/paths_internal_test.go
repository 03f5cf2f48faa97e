package secrets

import (
	"strings"
	"testing"
)

// TestPathSetIsAnyRegex: the literal gates only skip regexes that cannot
// match, so a path is allowed exactly when one of gitleaks' allowlist
// regexes matches it, whatever the case of its letters.
func TestPathSetIsAnyRegex(t *testing.T) {
	e := defaultEngine(t)
	s := e.globalPaths
	if s == nil || len(s.pats) < 20 {
		t.Fatalf("global allowlist paths: %v", s)
	}
	dirs := []string{"", "app/", "usr/lib/python3/dist-packages/", "usr/lib/python3.11/", "opt/venv/lib/", "Lib64/Python3.9/",
		"src/vendor/github.com/x/", "vendor/ruby/", "node_modules/a/", "web/NODE_MODULES/", "x/bower_components/",
		"srv/.mvn/wrapper/", "go/", "p/foo-1.2.dist-info/", "deep/" + strings.Repeat("d/", 150)}
	names := []string{"a.png", "A.PNG", "b.jpeg", "x.woff2", "report.DOCX", "go.mod", "go.work.sum", "modules.txt",
		"gradlew", "gradlew.bat", "mvnw.cmd", "MavenWrapperDownloader.java", "mavenwrapperdownloader.java", "package-lock.json",
		"yarn.lock", "jquery-3.6.0.min.js", "Bootstrap.js", "swagger-ui.js.map", "javascript.json", "Pipfile.lock",
		"poetry.lock", "x.gem", "verification-metadata.xml", "Database.refactorlog", ".git", ".gitignore", "gitleaks.toml",
		"main.go", ".env", "config.yaml", "id_rsa", "secrets.json", "app.py", "README", "lib", "libx.so.6"}
	n, allowed := 0, 0
	for _, d := range dirs {
		for _, f := range names {
			p := d + f
			want := false
			for _, re := range s.pats {
				want = want || re.MatchString(p)
			}
			if got := s.match(p); got != want {
				t.Errorf("%q: allowed %v, any regex matches: %v", p, got, want)
			}
			n++
			if want {
				allowed++
			}
		}
	}
	// Both outcomes must be common, or the test says nothing.
	if allowed < n/10 || n-allowed < n/10 {
		t.Errorf("%d of %d paths allowed", allowed, n)
	}
	t.Logf("%d of %d paths allowed", allowed, n)
}
