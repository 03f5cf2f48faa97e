package secrets

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func TestBinary(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat("some text to compress ", 200)))
	zw.Close()
	noise := make([]byte, 512)
	rand.Read(noise)
	for i := range noise {
		if noise[i] == 0 {
			noise[i] = 1 // the one case a NUL check misses
		}
	}
	for name, c := range map[string]struct {
		head []byte
		want bool
	}{
		"ELF":        {[]byte("\x7fELF\x02\x01\x01\x00\x00\x00"), true},
		"PNG":        {[]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), true},
		"gzip":       {gz.Bytes(), true},
		"noise":      {noise, true},
		"config":     {[]byte("server:\n  port: 8080\n\ttoken: x\r\n"), false},
		"UTF-8":      {[]byte(strings.Repeat("パスワード=秘密 ", 30)), false},
		"cut rune":   {[]byte(strings.Repeat("パスワード", 30))[:100], false},
		"Latin-1":    {[]byte("caf\xe9 cr\xe8me br\xfbl\xe9e, password=s3cret, a text in ISO-8859-1"), false},
		"ANSI color": {[]byte("\x1b[32mok\x1b[0m build finished\n"), false},
		"empty":      {nil, false},
	} {
		if got := binary(c.head); got != c.want {
			t.Errorf("%s: binary = %v, want %v", name, got, c.want)
		}
	}
}

// Every class in the jars at hand (test data, and this machine's
// /usr/share/java when there is one) is binary: skipping classes by name
// (classFile) drops nothing binary would have kept.
func TestClassFilesAreBinary(t *testing.T) {
	jars, _ := filepath.Glob("../java/testdata/*/rootfs/*/*.jar")
	more, _ := filepath.Glob("../java/testdata/*/rootfs/usr/share/java/*.jar")
	host, _ := filepath.Glob("/usr/share/java/*.jar")
	classes := 0
	for _, jar := range append(append(jars, more...), host...) {
		zr, err := zip.OpenReader(jar)
		if err != nil {
			continue // a symlink to a missing jar, or not a zip
		}
		for _, f := range zr.File {
			if !classFile(f.Name) {
				continue
			}
			rc, err := f.Open()
			if err != nil {
				t.Fatalf("%s!%s: %v", jar, f.Name, err)
			}
			head := make([]byte, 512)
			n, _ := io.ReadFull(rc, head)
			rc.Close()
			if !binary(head[:n]) {
				t.Errorf("%s!%s is not binary: %q", jar, f.Name, head[:min(n, 32)])
			}
			classes++
		}
		zr.Close()
	}
	if classes == 0 {
		t.Fatal("no class files found")
	}
	t.Logf("%d class files, all binary", classes)
}
