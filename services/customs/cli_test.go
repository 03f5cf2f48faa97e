package customs_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
)

var buildCustoms = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "customs-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "customs")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/customs-scan/customs/services/customs/cmd/customs").CombinedOutput()
	if err != nil {
		return "", &exec.ExitError{Stderr: out}
	}
	return bin, nil
})

func customsBin(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build customs")
	}
	bin, err := buildCustoms()
	if err != nil {
		t.Fatalf("build customs: %v", err)
	}
	return bin
}

// tarDir packs dir into a tar file, as `tar -C dir -cf out .` would.
func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr, _ := tar.FileInfoHeader(fi, "")
		hdr.Name = rel
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func runScan(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(customsBin(t), append([]string{"scan"}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func TestScanInputTarballs(t *testing.T) {
	dir := t.TempDir()
	img := scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...), scantest.GoBinaryLayer(t))
	want, _ := img.Digest()

	// docker save format
	saved := filepath.Join(dir, "debian.tar")
	tag, _ := name.NewTag("example.com/team/debian:12")
	if err := tarball.WriteToFile(saved, tag, img); err != nil {
		t.Fatal(err)
	}
	// OCI layout, packed in a tar
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	oci := filepath.Join(dir, "oci.tar")
	tarDir(t, filepath.Join(dir, "layout"), oci)

	for _, input := range []string{saved, oci} {
		out, errOut, err := runScan(t, "--input", input)
		if err != nil {
			t.Fatalf("customs scan --input %s: %v\n%s", filepath.Base(input), err, errOut)
		}
		var r report.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%s: stdout is not a report: %v\n%s", filepath.Base(input), err, out)
		}
		// docker save keeps no manifest: its digest is of the one rebuilt from
		// the tarball, while an OCI layout keeps the original.
		digestOK := r.Artifact.Digest == want.String()
		if input == saved {
			digestOK = strings.HasPrefix(r.Artifact.Digest, "sha256:") && r.Artifact.Repository == "team/debian" &&
				len(r.Artifact.Tags) == 1 && r.Artifact.Tags[0] == "12"
		}
		if !digestOK || r.OS.ID != "debian" || len(r.Layers) != 2 || r.Status != report.StatusComplete {
			t.Errorf("%s: artifact %+v os %+v layers %d", filepath.Base(input), r.Artifact, r.OS, len(r.Layers))
		}
		var sawBash, sawGo bool
		for _, p := range r.Packages {
			sawBash = sawBash || p.Name == "bash"
			sawGo = sawGo || (p.Ecosystem == "Go" && p.Path == "usr/local/bin/app")
		}
		if !sawBash || !sawGo {
			t.Errorf("%s: packages %+v", filepath.Base(input), r.Packages)
		}
	}
	out, _, err := runScan(t, "--format", "table", "--packages", "--input", saved)
	if err != nil || !strings.Contains(out, "bash") || !strings.Contains(out, "PACKAGE") || !strings.Contains(out, "PASS") {
		t.Errorf("table output: %v\n%s", err, out)
	}
	// Without --packages the table has no package list; not a terminal: no colour.
	out, _, err = runScan(t, "--format", "table", "--input", saved)
	if err != nil || strings.Contains(out, "PACKAGE") || !strings.Contains(out, "PASS") || strings.Contains(out, "\x1b[") {
		t.Errorf("table output without --packages: %v\n%s", err, out)
	}
}

func TestScanRejectsBadInputClearly(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.tar")
	if err := os.WriteFile(junk, []byte("not a tarball at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := runScan(t, "--input", junk)
	if err == nil || !strings.Contains(errOut, "customs:") {
		t.Errorf("junk input: err %v, stderr %q", err, errOut)
	}
	// A hostile layer fails the scan with the offending path named.
	evil := scantest.Image(t, scantest.Layer(t, scantest.Reg("../../etc/passwd", "root::0:0::/:/bin/sh\n")))
	p := filepath.Join(dir, "evil.tar")
	if err := tarball.WriteToFile(p, name.MustParseReference("evil:latest").(name.Tag), evil); err != nil {
		t.Fatal(err)
	}
	_, errOut, err = runScan(t, "--input", p)
	var ee *exec.ExitError
	if !asExit(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errOut, "../../etc/passwd") {
		t.Errorf("hostile input: err %v, stderr %q", err, errOut)
	}
	// A docker-save tarball whose config is huge is refused from the tar
	// header, before the config is read.
	huge := filepath.Join(dir, "huge-config.tar")
	writeTar(t, huge, map[string][]byte{
		"manifest.json": []byte(`[{"Config":"config.json","RepoTags":["x:1"],"Layers":[]}]`),
		"config.json":   bytes.Repeat([]byte(" "), 9<<20),
	})
	_, errOut, err = runScan(t, "--input", huge)
	if !asExit(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errOut, "more than") {
		t.Errorf("huge config: err %v, stderr %q", err, errOut)
	}
	// CUSTOMS_MAX_* bound customs scan as they bound the scanner service.
	many := scantest.Image(t, scantest.Layer(t, scantest.Reg("a", "1"), scantest.Reg("b", "2"), scantest.Reg("c", "3")))
	mp := filepath.Join(dir, "many.tar")
	if err := tarball.WriteToFile(mp, name.MustParseReference("many:latest").(name.Tag), many); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(customsBin(t), "scan", "--input", mp)
	cmd.Env = append(os.Environ(), "CUSTOMS_MAX_FILES=2")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); !asExit(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "more than 2 tar entries") {
		t.Errorf("CUSTOMS_MAX_FILES=2: err %v, stderr %q", err, stderr.String())
	}
	if _, _, err := runScan(t); !asExit(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("no arguments: %v, want usage exit 2", err)
	}
}

func writeTar(t *testing.T, file string, entries map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitUp waits for customs up to say it is up; exited is true when the
// process ended first (its error was consumed from done).
func waitUp(stderr *svcmaintest.LogBuffer, done chan error) (up, exited bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "Customs is up") {
		select {
		case <-done:
			return false, true
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return false, false
		}
	}
	return true, false
}

// The README's first command: `customs up --registry …`, then push and
// read the report, then Ctrl-C.
func TestCustomsUpBinary(t *testing.T) {
	bin := customsBin(t)
	var (
		cmd               *exec.Cmd
		done              chan error
		stderr            *svcmaintest.LogBuffer
		results, registry string
	)
	// freeAddr's ports are free when picked, not when customs up binds
	// them: another test may take one in between. Try again on that.
	for attempt := 1; ; attempt++ {
		var ingest, scanner, natsAddr, s3 string
		ingest, results, scanner, natsAddr, s3, registry = freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
		cmd = exec.Command(bin, "up", "--data", t.TempDir(), "--registry", registry,
			"--ingest-addr", ingest, "--results-addr", results, "--scanner-addr", scanner,
			"--nats-addr", natsAddr, "--s3-addr", s3, "--harbor-addr", freeAddr(t), "--log-level", "warn")
		stderr = &svcmaintest.LogBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done = make(chan error, 1)
		go func(c *exec.Cmd, d chan error) { d <- c.Wait() }(cmd, done)
		up, exited := waitUp(stderr, done)
		if up {
			break
		}
		if !exited {
			_ = cmd.Process.Kill()
			<-done
		}
		if attempt == 3 || !strings.Contains(stderr.String(), "address already in use") {
			t.Fatalf("customs up did not start:\n%s", stderr.String())
		}
	}
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	img := scantest.Image(t, scantest.Layer(t, scantest.AlpineRootfs(t)...))
	ref, _ := name.ParseReference(registry+"/demo/alpine:latest", name.Insecure)
	if err := remote.Write(ref, img, remote.WithContext(context.Background())); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	r := waitReport(t, "http://"+results, d.String())
	if r.OS.ID != "alpine" || len(r.Packages) == 0 {
		t.Errorf("report = %+v", r)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Errorf("customs up exited with %v:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("customs up did not stop on SIGINT")
	}
}
