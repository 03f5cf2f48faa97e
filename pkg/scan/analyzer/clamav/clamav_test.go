package clamav_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/clamd"
	"github.com/customs-scan/customs/pkg/clamd/clamdtest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
	"github.com/customs-scan/customs/pkg/scan/analyzer/clamav"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// stub answers without a clamd (for Match and error paths).
type stub struct {
	max int64
	res clamd.Result
	err error
}

func (s *stub) InStream(context.Context, io.Reader, int64) (clamd.Result, error) { return s.res, s.err }
func (s *stub) MaxStreamBytes() int64                                            { return s.max }

func TestMatch(t *testing.T) {
	a := clamav.New(&stub{max: 1000}, clamav.Options{})
	for _, tc := range []struct {
		path string
		mode fs.FileMode
		size int64
		want bool
	}{
		{"usr/bin/ls", 0o755, 100, true},
		{"usr/local/bin/tool", 0o700, 100, true},
		{"tmp/payload", 0o644, 100, true},
		{"var/tmp/x", 0o644, 100, true},
		{"dev/shm/.x", 0o644, 100, true},
		{"app/run.SH", 0o644, 100, true},
		{"opt/app/lib.jar", 0o644, 100, true},
		{"root/x.tar.gz", 0o644, 100, true},
		{"srv/setup.EXE", 0o644, 100, true},
		{"etc/passwd", 0o644, 100, false},
		{"usr/share/doc/README", 0o644, 100, false},
		{"app.d/config", 0o644, 100, false}, // the dot is in a directory
		{"etc/ld.so.cache", 0o644, 100, false},
		{"usr/bin/ls", 0o755, 0, false},      // empty
		{"usr/bin/huge", 0o755, 1001, false}, // over the stream limit
		{"tmp/huge", 0o644, 1001, false},
	} {
		if got := a.Match(tc.path, tc.mode, tc.size); got != tc.want {
			t.Errorf("Match(%q, %v, %d) = %v, want %v", tc.path, tc.mode, tc.size, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		a.Match("usr/lib/x86_64-linux-gnu/libfoo.so", 0o644, 10)
		a.Match("usr/share/doc/README.Debian", 0o644, 10)
	}); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
	if b := clamav.New(&stub{max: 1000}, clamav.Options{MaxFileSize: 10}); b.Match("usr/bin/ls", 0o755, 11) {
		t.Error("MaxFileSize not applied")
	}
	if !a.KeepsDeleted() || a.Name() != "clamav" {
		t.Error("Name/KeepsDeleted")
	}
}

func TestFindingAndErrors(t *testing.T) {
	ctx := context.Background()
	data := []byte("MZ fake")
	f := &analyzer.File{Path: "tmp/x.exe", Mode: 0o755, Size: int64(len(data)), Data: data}

	a := clamav.New(&stub{max: 100, res: clamd.Result{Signatures: []string{"Win.Trojan.Test-1"}}}, clamav.Options{})
	res, err := a.Analyze(ctx, f)
	if err != nil || res == nil || len(res.Findings) != 1 {
		t.Fatalf("Analyze = %+v, %v", res, err)
	}
	sum := sha256.Sum256(data)
	want := report.Finding{
		Kind: report.KindMalware, Rule: "clamav:Win.Trojan.Test-1", Severity: report.SeverityCritical,
		Title: "ClamAV: Win.Trojan.Test-1", SHA256: hex.EncodeToString(sum[:]), Engine: "clamav",
	}
	if res.Findings[0] != want {
		t.Errorf("finding = %+v\nwant      %+v", res.Findings[0], want)
	}

	for _, r := range []clamd.Result{{}, {Skipped: true, Reason: "too large"}} {
		a = clamav.New(&stub{max: 100, res: r}, clamav.Options{})
		if res, err := a.Analyze(ctx, f); err != nil || !res.Empty() {
			t.Errorf("%+v: Analyze = %+v, %v", r, res, err)
		}
	}

	down := errors.Join(clamd.ErrUnavailable, errors.New("connection refused"))
	a = clamav.New(&stub{max: 100, err: down}, clamav.Options{})
	if _, err := a.Analyze(ctx, f); !errors.Is(err, clamd.ErrUnavailable) || !strings.Contains(err.Error(), "tmp/x.exe") {
		t.Errorf("clamd down: err = %v", err)
	}
}

// startClamd runs a real clamd with a signature for ClamAV's clam.exe
// test sample.
func startClamd(t *testing.T) (*clamdtest.Server, []byte) {
	t.Helper()
	clamExe := clamdtest.TestFile(t, "clam.exe")
	srv := clamdtest.Start(t, clamdtest.Config{
		Signatures: []string{
			clamdtest.HashSignature("Customs.Test.ClamExe", clamExe),
			clamdtest.BodySignature("Customs.Test.Dropper", []byte("customs-dropper-marker-91c2")),
		},
		StreamMaxLength: 1 << 20,
	})
	return srv, clamExe
}

func TestRealClamd(t *testing.T) {
	srv, clamExe := startClamd(t)
	ctx := context.Background()
	c, err := clamd.Dial(ctx, srv.Addr, clamd.WithMaxStreamBytes(srv.StreamMaxLength))
	if err != nil {
		t.Fatal(err)
	}
	a := clamav.New(c, clamav.Options{})
	file := func(p string, b []byte) *analyzer.File {
		return &analyzer.File{Path: p, Mode: 0o755, Size: int64(len(b)), Data: b}
	}

	res, err := a.Analyze(ctx, file("opt/clam.exe", clamExe))
	if err != nil || len(res.Findings) != 1 {
		t.Fatalf("clam.exe: %+v, %v\n%s", res, err, srv.Log())
	}
	fd := res.Findings[0]
	if !strings.HasPrefix(fd.Rule, "clamav:Customs.Test.ClamExe") || fd.Kind != "malware" || fd.Engine != "clamav" ||
		fd.Severity != "CRITICAL" || !strings.HasPrefix(fd.Title, "ClamAV: Customs.Test.ClamExe") {
		t.Errorf("finding = %+v", fd)
	}
	sum := sha256.Sum256(clamExe)
	if fd.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("SHA256 = %s", fd.SHA256)
	}

	if res, err := a.Analyze(ctx, file("usr/bin/hello", []byte("#!/bin/sh\necho hello\n"))); err != nil || !res.Empty() {
		t.Errorf("clean: %+v, %v", res, err)
	}
	// Larger than StreamMaxLength: Match declines it; Analyze (if a
	// caller insists) skips it without error.
	big := make([]byte, srv.StreamMaxLength+1)
	if a.Match("tmp/big", 0o644, int64(len(big))) {
		t.Error("Match accepted a file over the stream limit")
	}
	if res, err := a.Analyze(ctx, file("tmp/big", big)); err != nil || !res.Empty() {
		t.Errorf("big: %+v, %v", res, err)
	}
	if st := c.Stats(); st.Skipped != 1 || st.Found != 1 {
		t.Errorf("Stats = %+v", st)
	}

	srv.Stop()
	if _, err := a.Analyze(ctx, file("opt/clam.exe", clamExe)); !errors.Is(err, clamd.ErrUnavailable) {
		t.Errorf("clamd stopped: err = %v, want clamd.ErrUnavailable", err)
	}
}

// The whole engine: clam.exe added in layer 2 and deleted in layer 3 is
// still reported, attributed to layer 2.
func TestScanImage(t *testing.T) {
	srv, clamExe := startClamd(t)
	ctx := context.Background()
	c, err := clamd.Dial(ctx, srv.Addr, clamd.WithMaxStreamBytes(srv.StreamMaxLength))
	if err != nil {
		t.Fatal(err)
	}
	a := clamav.New(c, clamav.Options{})

	l1 := scantest.Layer(t,
		scantest.Reg("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
		scantest.Exec("usr/bin/hello", []byte("#!/bin/sh\necho hello\n")),
	)
	l2 := scantest.Layer(t,
		scantest.Exec("usr/local/bin/clam.exe", clamExe),
		scantest.Reg("tmp/stage.bin", "xx customs-dropper-marker-91c2 xx"),
		scantest.Reg("tmp/big.dat", strings.Repeat("A", int(srv.StreamMaxLength)+1)),
		scantest.Reg("etc/clam.exe.txt", string(clamExe)), // not suspicious: not sent
	)
	l3 := scantest.Layer(t, scantest.Whiteout("usr/local/bin/clam.exe"))
	img := scantest.Image(t, l1, l2, l3)

	res, err := scan.Image(ctx, img, scan.WithAnalyzers(a))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := l2.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range res.Findings {
		got = append(got, f.Path+" "+f.Rule)
		if f.Layer != d2.String() {
			t.Errorf("%s: layer %s, want layer 2 %s", f.Path, f.Layer, d2)
		}
		if f.Engine != "clamav" || f.Kind != report.KindMalware || f.SHA256 == "" {
			t.Errorf("finding %+v", f)
		}
	}
	want := []string{
		"tmp/stage.bin clamav:Customs.Test.Dropper.UNOFFICIAL",
		"usr/local/bin/clam.exe clamav:Customs.Test.ClamExe.UNOFFICIAL",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// usr/bin/hello, clam.exe, stage.bin were sent; big.dat and the .txt
	// were not (Match).
	if st := c.Stats(); st.Scanned != 3 || st.Errors != 0 {
		t.Errorf("Stats = %+v", st)
	}
}
