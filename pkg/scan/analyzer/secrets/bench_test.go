package secrets_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/secrets"
)

type corpusFile struct {
	path string
	data []byte
}

var (
	corpusOnce sync.Once
	corpus     []corpusFile
	corpusSize int64
)

// benchCorpus returns about 50 MB of real text: the Go distribution's own
// sources, docs and configs (GOROOT/src, GOROOT/doc, GOROOT/misc, …),
// read from the toolchain running the benchmark, placed under app/ and
// etc/ paths as in an image, plus a few files holding secrets.
func benchCorpus(tb testing.TB) []corpusFile {
	corpusOnce.Do(func() {
		const want = 50 << 20
		root := runtime.GOROOT()
		exts := map[string]bool{
			".go": true, ".s": true, ".c": true, ".h": true, ".md": true, ".txt": true, ".json": true,
			".yaml": true, ".yml": true, ".sh": true, ".py": true, ".js": true, ".html": true,
			".css": true, ".xml": true, ".toml": true, ".mod": true, ".bash": true, ".pem": true,
			".csv": true, ".tmpl": true, ".conf": true, ".ini": true, ".rc": true, ".proto": true,
		}
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || corpusSize >= want {
				return filepath.SkipDir
			}
			if d.IsDir() || !exts[filepath.Ext(p)] {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil || len(b) == 0 || len(b) > secrets.DefaultMaxFileSize || bytes.IndexByte(b, 0) >= 0 {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			corpus = append(corpus, corpusFile{path: "app/" + filepath.ToSlash(rel), data: b})
			corpusSize += int64(len(b))
			return nil
		})
		planted := []corpusFile{
			{"app/.env", []byte("DATABASE_URL=postgres://app@db/app\nGITHUB_TOKEN=ghp_" + strings.Repeat("aB3dE5", 6) + "\n")},
			{"root/.aws/credentials", []byte("[default]\naws_access_key_id = AKIAQ5ZJ3X7N2KPL4VWT\naws_secret_access_key = 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\n")},
			{"etc/app/config.yaml", []byte("server:\n  port: 8080\nslack:\n  webhook: https://hooks.slack.com/services/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\n")},
		}
		for _, f := range planted {
			corpus = append(corpus, f)
			corpusSize += int64(len(f.data))
		}
	})
	if corpusSize < 10<<20 {
		tb.Skipf("GOROOT %s has only %d bytes of text", runtime.GOROOT(), corpusSize)
	}
	return corpus
}

// BenchmarkAnalyzer runs Match, Sniff and Analyze, as the walker does,
// over about 50 MB of source files and configs; MB/s is the throughput of
// one core.
func BenchmarkAnalyzer(b *testing.B) {
	files := benchCorpus(b)
	a, err := secrets.New()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.SetBytes(corpusSize)
	b.ResetTimer()
	var findings int
	for b.Loop() {
		findings = 0
		for _, f := range files {
			if !a.Match(f.path, 0o644, int64(len(f.data))) {
				continue
			}
			if !a.Sniff(f.path, f.data[:min(len(f.data), analyzer.SniffLen)]) {
				continue
			}
			res, err := a.Analyze(ctx, &analyzer.File{Path: f.path, Mode: 0o644, Size: int64(len(f.data)), Data: f.data})
			if err != nil {
				b.Fatal(err)
			}
			if res != nil {
				findings += len(res.Findings)
			}
		}
	}
	b.ReportMetric(float64(findings), "findings")
	b.ReportMetric(float64(len(files)), "files")
}
