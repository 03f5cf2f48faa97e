package gosyms_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/customs-scan/customs/pkg/gosyms"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

const program = `package main

import (
	"fmt"
	"strings"
)

type T struct{ n int }

func (t *T) Bump() int { t.n++; return t.n }

func main() {
	t := &T{}
	fmt.Println(strings.ToUpper("x"), t.Bump())
}
`

func read(t *testing.T, bin []byte) map[gosyms.Symbol]bool {
	t.Helper()
	syms, err := gosyms.Read(bytes.NewReader(bin), int64(len(bin)))
	if err != nil {
		t.Fatal(err)
	}
	m := map[gosyms.Symbol]bool{}
	for _, s := range syms {
		if m[s] {
			t.Fatalf("duplicate %v", s)
		}
		m[s] = true
	}
	return m
}

// Functions and methods, inlined or not, as package path and Type.Method.
func TestRead(t *testing.T) {
	for _, goos := range []string{"linux", "windows", "darwin"} {
		bin := scantest.BuildGo(t, scantest.GoProgram{Module: "example.com/syms", Main: program, GOOS: goos, GOARCH: "amd64"})
		m := read(t, bin)
		for _, want := range []gosyms.Symbol{
			{Pkg: "main", Name: "main"},
			{Pkg: "main", Name: "T.Bump"},      // inlined into main.main
			{Pkg: "strings", Name: "ToUpper"},  // a function of its own
			{Pkg: "fmt", Name: "Println"},      // inlined
			{Pkg: "runtime", Name: "main"},     // always there
			{Pkg: "fmt", Name: "pp.doPrintln"}, // method with a pointer receiver
		} {
			if !m[want] {
				t.Errorf("%s: %v missing (of %d)", goos, want, len(m))
			}
		}
	}
}

// Without a symbol table there is no go:func.* to find inline trees by.
func TestStripped(t *testing.T) {
	bin := scantest.GoBinary(t) // built with -ldflags=-s -w
	if _, err := gosyms.Read(bytes.NewReader(bin), int64(len(bin))); !errors.Is(err, gosyms.ErrNoSymbols) {
		t.Fatalf("err = %v, want ErrNoSymbols", err)
	}
}

// Corrupted binaries give errors or fewer symbols, never a panic or an
// unbounded allocation.
func TestCorrupt(t *testing.T) {
	bin := scantest.BuildGo(t, scantest.GoProgram{Module: "example.com/syms", Main: program})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		b := bytes.Clone(bin)
		for j := 0; j < 64; j++ {
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
		_, _ = gosyms.Read(bytes.NewReader(b), int64(len(b)))
	}
	for _, b := range [][]byte{nil, []byte("\x7fELF"), []byte("MZ"), bin[:4096]} {
		if _, err := gosyms.Read(bytes.NewReader(b), int64(len(b))); err == nil {
			t.Errorf("%d bytes: no error", len(b))
		}
	}
}

func TestFingerprint(t *testing.T) {
	fp := gosyms.Fingerprint([]gosyms.Symbol{{Pkg: "net/http", Name: "Server.Serve"}, {Pkg: "net/http", Name: "Get"}, {Pkg: "net/http", Name: "Get"}})
	set, err := gosyms.ParseFingerprint(fp)
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 3 || !set.Has(gosyms.PackageKey("net/http")) || !set.Has(gosyms.SymbolKey("net/http", "Server.Serve")) ||
		set.Has(gosyms.SymbolKey("net/http", "Post")) || set.Has(gosyms.PackageKey("net/url")) {
		t.Errorf("set %v", set)
	}
	for _, bad := range []string{"", "x", "fnv32a:!!", "fnv32a:AAA"} {
		if _, err := gosyms.ParseFingerprint(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// ReadBytes, which uses an ELF file's pclntab in place, lists what Read
// lists; other formats are read as Read reads them.
func TestReadBytesAsRead(t *testing.T) {
	for _, goos := range []string{"linux", "windows"} {
		bin := scantest.BuildGo(t, scantest.GoProgram{Module: "example.com/syms", Main: program, GOOS: goos, GOARCH: "amd64"})
		want := read(t, bin)
		syms, err := gosyms.ReadBytes(bin)
		if err != nil {
			t.Fatal(err)
		}
		got := map[gosyms.Symbol]bool{}
		for _, s := range syms {
			got[s] = true
		}
		if len(got) != len(want) || len(got) < 100 {
			t.Fatalf("%s: ReadBytes %d symbols, Read %d", goos, len(got), len(want))
		}
		for s := range want {
			if !got[s] {
				t.Errorf("%s: ReadBytes misses %v", goos, s)
			}
		}
	}
}
