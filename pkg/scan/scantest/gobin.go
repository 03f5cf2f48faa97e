package scantest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Go binary built by GoBinary.
const (
	// GoBinaryPath is where GoBinaryLayer puts the binary.
	GoBinaryPath = "usr/local/bin/app"
	// GoBinaryModule is the binary's main module path (version "(devel)").
	GoBinaryModule = "example.com/customs/scantest/app"
)

var goBin struct {
	sync.Mutex
	b []byte
}

// GoBinary compiles (once per test process) a tiny Go program requiring
// no modules, for linux and the host architecture, with -trimpath, and
// returns the executable. Its build info lists GoBinaryModule and the
// toolchain's Go version (runtime.Version()).
func GoBinary(t testing.TB) []byte {
	t.Helper()
	goBin.Lock()
	defer goBin.Unlock()
	if goBin.b != nil {
		return goBin.b
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir, err := os.MkdirTemp("", "scantest-gobin-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goVer := strings.TrimPrefix(runtime.Version(), "go")
	if i := strings.IndexAny(goVer, " -"); i >= 0 {
		goVer = goVer[:i]
	}
	write("go.mod", "module "+GoBinaryModule+"\n\ngo "+goVer+"\n")
	write("main.go", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"customs scantest\") }\n")
	out := filepath.Join(dir, "app")
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH,
		"GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false", "GOTOOLCHAIN=local", "GOPROXY=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scantest: go build: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	goBin.b = b
	return b
}

// GoBinaryLayer is a gzip layer holding GoBinary at /usr/local/bin/app
// (mode 0755).
func GoBinaryLayer(t testing.TB) v1.Layer {
	t.Helper()
	return Layer(t, Dir("usr"), Dir("usr/local"), Dir("usr/local/bin"), Exec(GoBinaryPath, GoBinary(t)))
}

// GoProgram is a program BuildGo compiles: a main package in module
// Module requiring Require (module path → version).
type GoProgram struct {
	Module  string
	Require map[string]string
	Main    string
	// GOOS and GOARCH default to linux and the host architecture.
	GOOS, GOARCH string
	// Strip builds with -ldflags=-s -w (no symbol table).
	Strip bool
}

// BuildGo compiles p in a temporary directory and returns the
// executable. Required modules come from the module cache or from the
// proxy in the environment's GOPROXY; when they cannot be had (an offline
// machine with an empty cache) the test is skipped, saying why.
func BuildGo(t testing.TB, p GoProgram) []byte {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := t.TempDir()
	goVer := strings.TrimPrefix(runtime.Version(), "go")
	if i := strings.IndexAny(goVer, " -"); i >= 0 {
		goVer = goVer[:i]
	}
	mod := "module " + p.Module + "\n\ngo " + goVer + "\n"
	for path, v := range p.Require {
		mod += "\nrequire " + path + " " + v + "\n"
	}
	for name, content := range map[string]string{"go.mod": mod, "main.go": p.Main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goos, goarch := p.GOOS, p.GOARCH
	if goos == "" {
		goos = "linux"
	}
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	args := []string{"build", "-trimpath", "-o", filepath.Join(dir, "app")}
	if p.Strip {
		args = append(args, "-ldflags=-s -w")
	}
	cmd := exec.Command(goTool, append(args, ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch,
		"GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		if len(p.Require) > 0 {
			t.Skipf("scantest: cannot build a program requiring %v (modules unavailable offline?): %v\n%s", p.Require, err, b)
		}
		t.Fatalf("scantest: go build: %v\n%s", err, b)
	}
	b, err := os.ReadFile(filepath.Join(dir, "app"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
