package secrets

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
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
