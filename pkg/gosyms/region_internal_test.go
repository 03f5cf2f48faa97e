package gosyms

import (
	"bytes"
	"debug/elf"
	"slices"
	"sync"
	"testing"

	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// largestRead records the largest single ReadAt.
type largestRead struct {
	r    *bytes.Reader
	mu   sync.Mutex
	most int
}

func (l *largestRead) ReadAt(p []byte, off int64) (int, error) {
	l.mu.Lock()
	l.most = max(l.most, len(p))
	l.mu.Unlock()
	return l.r.ReadAt(p, off)
}

// Read through a buffer lists exactly what ReadBytes lists with the
// pclntab in memory, whatever the buffer's size (16 bytes: every name,
// record and pc-value table crosses a boundary), and never reads the
// pclntab whole: memory stays a buffer per table however large the
// binary (an HTTP server's pclntab is megabytes).
func TestBufferedPclntabReadsAsInMemory(t *testing.T) {
	large := scantest.BuildGo(t, scantest.GoProgram{Module: "example.com/large", Main: `package main

import (
	"encoding/json"
	"net/http"
	"os"
)

func main() {
	_ = json.NewEncoder(os.Stdout).Encode(map[string]int{"x": 1})
	_ = http.ListenAndServe(os.Args[1], nil)
}
`})
	f, err := elf.NewFile(bytes.NewReader(large))
	if err != nil {
		t.Fatal(err)
	}
	pcln := f.Section(".gopclntab")
	if pcln == nil || pcln.Size < 1<<20 {
		t.Fatalf("no pclntab of a megabyte or more: %v", pcln)
	}
	bins := map[string][]byte{"large": large}
	for _, goos := range []string{"linux", "windows", "darwin"} {
		bins[goos] = scantest.BuildGo(t, scantest.GoProgram{Module: "example.com/syms", Main: `package main

import "fmt"

func main() { fmt.Println("x") }
`, GOOS: goos, GOARCH: "amd64"})
	}
	defer func(c int) { regionChunk = c }(regionChunk)
	for name, bin := range bins {
		regionChunk = 64 << 10
		want, err := ReadBytes(bin)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(want) < 100 {
			t.Fatalf("%s: %d symbols", name, len(want))
		}
		for _, chunk := range []int{16, 4 << 10, 64 << 10} {
			regionChunk = chunk
			lr := &largestRead{r: bytes.NewReader(bin)}
			got, err := Read(lr, int64(len(bin)))
			if err != nil {
				t.Fatalf("%s, chunk %d: %v", name, chunk, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s, chunk %d: %d symbols read through a buffer, %d in memory", name, chunk, len(got), len(want))
			}
			if name == "large" && uint64(lr.most) >= pcln.Size/2 {
				t.Errorf("chunk %d: a read of %d bytes; the pclntab is %d", chunk, lr.most, pcln.Size)
			}
		}
	}
}

// FuzzRead feeds executables, corrupted or made up, to Read through a
// 16-byte buffer and to ReadBytes with the file in memory: neither
// panics, and when both succeed they list the same symbols.
func FuzzRead(f *testing.F) {
	f.Add(scantest.BuildGo(f, scantest.GoProgram{Module: "example.com/fuzz", Main: "package main\n\nfunc main() { println(1) }\n"}))
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, bin []byte) {
		defer func(c int) { regionChunk = c }(regionChunk)
		regionChunk = 16
		got, errRead := Read(bytes.NewReader(bin), int64(len(bin)))
		want, errBytes := ReadBytes(bin)
		if errRead == nil && errBytes == nil && !slices.Equal(got, want) {
			t.Fatalf("%d symbols through a buffer, %d in memory", len(got), len(want))
		}
	})
}
