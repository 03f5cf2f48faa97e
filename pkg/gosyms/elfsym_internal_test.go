package gosyms

import (
	"bytes"
	"debug/elf"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// TestELFSymbolAsSymbols: elfSymbol, which reads the tables in chunks,
// finds what f.Symbols() lists — the first symbol of a name, in table
// order — for go:func.* and for 1000 other names of each binary (64- and
// 32-bit, read in chunks of 1 byte to 64 KiB), and nothing for absent names.
func TestELFSymbolAsSymbols(t *testing.T) {
	const main = "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"x\") }\n"
	bins := map[string][]byte{
		"amd64": scantest.BuildGo(t, scantest.GoProgram{Module: "example.com/elfsym", Main: main, GOOS: "linux", GOARCH: "amd64"}),
		"386":   scantest.BuildGo(t, scantest.GoProgram{Module: "example.com/elfsym", Main: main, GOOS: "linux", GOARCH: "386"}),
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for name, bin := range bins {
		f, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		syms, err := f.Symbols()
		if err != nil || len(syms) < 1000 {
			t.Fatalf("%s: %d symbols, %v", name, len(syms), err)
		}
		first := map[string]uint64{}
		for _, s := range syms {
			if _, ok := first[s.Name]; !ok && s.Name != "" {
				first[s.Name] = s.Value
			}
		}
		if _, ok := first[funcSymNames[0]]; !ok {
			t.Fatalf("%s: no %s symbol", name, funcSymNames[0])
		}
		check := func(names []string) {
			t.Helper()
			wantName, wantValue, wantOK := "", uint64(0), false
			for _, n := range names {
				if v, ok := first[n]; ok {
					wantName, wantValue, wantOK = n, v, true
					break
				}
			}
			gotName, gotValue, err := elfSymbolChunked(f, names, []int{1, 7, 100, 4096, 64 << 10}[rng.IntN(5)])
			if !wantOK {
				if err != ErrNoSymbols {
					t.Errorf("%s: %q: got %s=%#x, %v; want ErrNoSymbols", name, names, gotName, gotValue, err)
				}
				return
			}
			if err != nil || gotName != wantName || gotValue != wantValue {
				t.Errorf("%s: %q: got %s=%#x, %v; want %s=%#x", name, names, gotName, gotValue, err, wantName, wantValue)
			}
		}
		check(funcSymNames)
		check([]string{"no.such.symbol", "runtime.main"})
		check([]string{"no.such.symbol"})
		for range 1000 {
			s := syms[rng.IntN(len(syms))]
			if s.Name != "" {
				check([]string{s.Name})
			}
		}
	}
}

// A string table made of go:func.* over and over is refused, not indexed
// whole.
func TestELFSymbolManyCopies(t *testing.T) {
	const main = "package main\n\nfunc main() {}\n"
	bin := scantest.BuildGo(t, scantest.GoProgram{Module: "example.com/elfsym", Main: main, GOOS: "linux", GOARCH: "amd64"})
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	strtab := f.Sections[f.SectionByType(elf.SHT_SYMTAB).Link]
	copies := bytes.Repeat([]byte(funcSymNames[0]+"\x00"), int(strtab.Size)/(len(funcSymNames[0])+1))
	if len(copies)/(len(funcSymNames[0])+1) <= maxNameCopies {
		t.Skipf("string table of %d bytes: too small to hold %d copies", strtab.Size, maxNameCopies)
	}
	crafted := bytes.Clone(bin)
	copy(crafted[strtab.Offset:], copies)
	f, err = elf.NewFile(bytes.NewReader(crafted))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := elfSymbol(f, funcSymNames); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v, want a refusal", err)
	}
}
