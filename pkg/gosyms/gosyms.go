// Package gosyms reads which Go functions an executable contains: every
// function of its pclntab plus every function inlined into one (the
// inline trees), as package path and symbol ("net/http", "Server.Serve").
// That is what govulncheck's binary mode (golang.org/x/vuln) decides
// reachability from, and this package follows its rules so both agree:
//
//   - Go 1.18 and later only (the pclntab layouts of 1.18 and 1.20+);
//   - inline trees are located through the go:func.* symbol (go.func.*
//     before Go 1.20), so a binary without a symbol table (built with
//     -ldflags=-s, or stripped) yields ErrNoSymbols: the caller knows the
//     modules, not the functions.
//
// Input is untrusted: every offset is bounds-checked and the work is
// bounded by MaxFuncs and MaxInlined.
package gosyms

import (
	"bufio"
	"bytes"
	"cmp"
	"debug/elf"
	"debug/gosym"
	"debug/macho"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
)

// ErrNoSymbols says the binary has no symbol table (stripped), so its
// functions cannot be listed the way govulncheck lists them.
var ErrNoSymbols = errors.New("gosyms: no symbol table (stripped binary)")

// ErrUnsupported says the pclntab is not one of Go 1.18+.
var ErrUnsupported = errors.New("gosyms: pclntab older than Go 1.18 or unknown")

// Bounds on what one binary may make Read do.
const (
	// MaxFuncs bounds the functions of one pclntab (the largest real
	// binaries have a few hundred thousand).
	MaxFuncs = 4 << 20
	// MaxInlined bounds inline-tree entries read over all functions.
	MaxInlined = 16 << 20
	// maxTree bounds the inline tree of one function (real ones hold at
	// most a few thousand entries).
	maxTree = 1 << 16
)

// Symbol is one function: its package path and its name within the
// package, methods as Type.Method without pointer marks, the form OSV's
// ecosystem_specific.imports[].symbols use.
type Symbol struct {
	Pkg  string
	Name string
}

// Read lists the functions of the Go executable in r (ELF, Mach-O or PE;
// size is its length), each once, in no particular order.
func Read(r io.ReaderAt, size int64) ([]Symbol, error) {
	return read(r, size, nil)
}

// ReadBytes is Read for an executable in memory: an ELF file's pclntab
// (a third of a Go binary) is then used in place, not copied.
func ReadBytes(data []byte) ([]Symbol, error) {
	return read(bytes.NewReader(data), int64(len(data)), data)
}

func read(r io.ReaderAt, size int64, data []byte) ([]Symbol, error) {
	x, err := open(r, size, data)
	if err != nil {
		return nil, err
	}
	gofunc, gofuncReader, err := x.goFunc()
	if err != nil {
		return nil, err
	}
	tab, err := x.pclntab()
	if err != nil {
		return nil, err
	}
	p, err := parse(tab)
	if err != nil {
		return nil, err
	}
	// Names repeat (a function inlined in many places): they are looked
	// up as bytes of the pclntab, without a string per occurrence, and
	// only new ones are split.
	seen := make(map[string]struct{}, p.nfunc)
	out := make([]Symbol, 0, p.nfunc)
	add := func(name []byte) {
		if _, dup := seen[string(name)]; dup {
			return
		}
		n := string(name)
		seen[n] = struct{}{}
		if s, ok := split(n); ok {
			out = append(out, s)
		}
	}
	inlined := 0
	var tree []byte
	for i := 0; i < p.nfunc; i++ {
		f, err := p.funcAt(i)
		if err != nil {
			return nil, err
		}
		add(f.name)
		n := f.inlineCount()
		if n == 0 || f.inlTreeOff == ^uint32(0) {
			continue
		}
		if n > maxTree {
			return nil, fmt.Errorf("gosyms: %s: inline tree of more than %d entries", f.name, maxTree)
		}
		if inlined += n; inlined > MaxInlined {
			return nil, fmt.Errorf("gosyms: more than %d inlined calls", MaxInlined)
		}
		if tree, err = p.inlineTree(gofuncReader, gofunc+int64(f.inlTreeOff), n, tree, add); err != nil {
			return nil, err
		}
	}
	// Names differing only in a receiver's pointer mark are one symbol.
	slices.SortFunc(out, func(a, b Symbol) int { return cmp.Or(strings.Compare(a.Pkg, b.Pkg), strings.Compare(a.Name, b.Name)) })
	return slices.Compact(out), nil
}

// split turns a symbol name into package path and symbol the way
// govulncheck does ("golang.org/x/net/http2.(*serverConn).goAway" →
// "golang.org/x/net/http2", "serverConn.goAway").
func split(name string) (Symbol, bool) {
	s := gosym.Sym{Name: name}
	sym := s.BaseName()
	if r := s.ReceiverName(); r != "" {
		if strings.HasPrefix(r, "(*") {
			r = strings.Trim(r, "(*)")
		}
		sym = r + "." + sym
	}
	pkg := s.PackageName()
	if pkg != "" {
		u, err := url.PathUnescape(pkg)
		if err != nil {
			return Symbol{}, false
		}
		pkg = u
	}
	if sym == "" {
		return Symbol{}, false
	}
	return Symbol{Pkg: pkg, Name: sym}, true
}

// exe is what Read needs of an executable format.
type exe interface {
	// pclntab returns the pclntab: in place when the file is in memory,
	// else read through a buffer where the section is stored as is.
	pclntab() (region, error)
	// goFunc returns the file-relative offset of go:func.* within the
	// returned reader.
	goFunc() (int64, io.ReaderAt, error)
}

func open(r io.ReaderAt, size int64, data []byte) (exe, error) {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil {
		return nil, fmt.Errorf("gosyms: %w", err)
	}
	switch {
	case bytes.Equal(magic[:], []byte("\x7fELF")):
		f, err := elf.NewFile(r)
		if err != nil {
			return nil, fmt.Errorf("gosyms: %w", err)
		}
		return &elfExe{f: f, r: r, data: data}, nil
	case magic[0] == 'M' && magic[1] == 'Z':
		f, err := pe.NewFile(r)
		if err != nil {
			return nil, fmt.Errorf("gosyms: %w", err)
		}
		return &peExe{f: f, r: r}, nil
	default:
		f, err := macho.NewFile(r)
		if err != nil {
			return nil, fmt.Errorf("gosyms: not an ELF, PE or thin Mach-O file: %w", err)
		}
		return &machoExe{f: f}, nil
	}
}

// funcSymNames are the names of the symbol marking the start of the
// function data the inline trees are relative to (Go 1.20+, then 1.18).
var funcSymNames = []string{"go:func.*", "go.func.*"}

type elfExe struct {
	f    *elf.File
	r    io.ReaderAt
	data []byte // the whole file, when in memory (nil: read through r)
}

func (x *elfExe) pclntab() (region, error) {
	for _, name := range []string{".gopclntab", ".data.rel.ro.gopclntab"} {
		s := x.f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS {
			continue
		}
		if s.Flags&elf.SHF_COMPRESSED != 0 {
			b, err := sectionData(s.Open(), s.Size)
			return memRegion(b), err
		}
		if n := uint64(len(x.data)); x.data != nil && s.Offset <= n && s.Size <= n-s.Offset {
			return memRegion(x.data[s.Offset : s.Offset+s.Size : s.Offset+s.Size]), nil
		}
		return readerRegion(s, 0, s.Size), nil
	}
	return region{}, errors.New("gosyms: no .gopclntab section")
}

func (x *elfExe) goFunc() (int64, io.ReaderAt, error) {
	name, value, err := elfSymbol(x.f, funcSymNames)
	if err != nil {
		return 0, nil, err
	}
	for _, p := range x.f.Progs {
		if value >= p.Vaddr && value-p.Vaddr < p.Filesz {
			return int64(value - p.Vaddr), p, nil
		}
	}
	return 0, nil, fmt.Errorf("gosyms: %s outside the file's segments", name)
}

// elfSymbol returns the first of names (in that order of preference)
// that a symbol of f's symbol table has, and the value of the first such
// symbol, as f.Symbols() would give them, but reading the string and
// symbol tables in chunks: Symbols() builds every symbol of the table,
// 9 MB for a 24 MB Go compiler, to find one.
func elfSymbol(f *elf.File, names []string) (string, uint64, error) {
	return elfSymbolChunked(f, names, 64<<10)
}

// maxNameCopies bounds the occurrences of one wanted name in a string
// table that elfSymbol keeps.
const maxNameCopies = 1 << 10

// elfSymbolChunked is elfSymbol reading chunk bytes at a time.
func elfSymbolChunked(f *elf.File, names []string, chunk int) (string, uint64, error) {
	symtab := f.SectionByType(elf.SHT_SYMTAB)
	if symtab == nil {
		return "", 0, ErrNoSymbols
	}
	if int(symtab.Link) >= len(f.Sections) || symtab.Link == 0 {
		return "", 0, errors.New("gosyms: symbol table without a string table")
	}
	// Where each name starts in the string table: a symbol's name runs
	// from its offset to the next NUL, so any occurrence of name+NUL is
	// a possible offset (tables may share suffixes).
	starts := make([]map[uint32]bool, len(names))
	needles := make([][]byte, len(names))
	longest := 0
	for i, n := range names {
		starts[i] = map[uint32]bool{}
		needles[i] = append([]byte(n), 0)
		longest = max(longest, len(n)+1)
	}
	buf := make([]byte, chunk+longest)
	r := f.Sections[symtab.Link].Open()
	var base int64 // offset of buf[0] in the string table
	held := 0      // bytes kept from the previous chunk
	for {
		n, err := io.ReadFull(r, buf[held:])
		end := held + n
		for i, needle := range needles {
			for at := 0; ; {
				k := bytes.Index(buf[at:end], needle)
				if k < 0 {
					break
				}
				if off := base + int64(at+k); off <= int64(^uint32(0)) {
					starts[i][uint32(off)] = true
				}
				// A real table names go:func.* once; a crafted one full of
				// it would otherwise grow the map with the table.
				if len(starts[i]) > maxNameCopies {
					return "", 0, fmt.Errorf("gosyms: string table holds %q more than %d times", needle[:len(needle)-1], maxNameCopies)
				}
				at += k + 1
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return "", 0, fmt.Errorf("gosyms: string table: %w", err)
		}
		// Keep a tail shorter than any needle: an occurrence crossing the
		// chunk's end is whole in the next one, and none is found twice.
		held = min(longest-1, end)
		copy(buf, buf[end-held:end])
		base += int64(end - held)
	}

	entSize, valueAt := 24, 8 // elf.Sym64: name, info, other, shndx, value, size
	if f.Class == elf.ELFCLASS32 {
		entSize, valueAt = 16, 4 // elf.Sym32: name, value, size, info, other, shndx
	}
	if symtab.Size%uint64(entSize) != 0 {
		return "", 0, errors.New("gosyms: symbol table size is not a multiple of the entry size")
	}
	found := make([]bool, len(names))
	values := make([]uint64, len(names))
	sr := bufio.NewReaderSize(symtab.Open(), max(chunk, 16))
	ent := make([]byte, entSize)
	for idx := 0; ; idx++ {
		if _, err := io.ReadFull(sr, ent); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", 0, fmt.Errorf("gosyms: symbol table: %w", err)
		}
		if idx == 0 {
			continue // the null symbol (Symbols() leaves it out)
		}
		nameOff := f.ByteOrder.Uint32(ent)
		for i := range names {
			if !found[i] && starts[i][nameOff] {
				found[i] = true
				if entSize == 24 {
					values[i] = f.ByteOrder.Uint64(ent[valueAt:])
				} else {
					values[i] = uint64(f.ByteOrder.Uint32(ent[valueAt:]))
				}
			}
		}
		if found[0] {
			break // the preferred name: nothing later can win
		}
	}
	for i, name := range names {
		if found[i] {
			return name, values[i], nil
		}
	}
	return "", 0, ErrNoSymbols
}

type machoExe struct{ f *macho.File }

func (x *machoExe) pclntab() (region, error) {
	s := x.f.Section("__gopclntab")
	if s == nil {
		return region{}, errors.New("gosyms: no __gopclntab section")
	}
	return readerRegion(s, 0, s.Size), nil
}

func (x *machoExe) goFunc() (int64, io.ReaderAt, error) {
	if x.f.Symtab == nil {
		return 0, nil, ErrNoSymbols
	}
	// Stripped Mach-O files keep a symbol table without the program's
	// symbols (govulncheck checks runtime.main the same way).
	found := map[string]uint64{}
	for _, s := range x.f.Symtab.Syms {
		switch s.Name {
		case "runtime.main", funcSymNames[0], funcSymNames[1]:
			found[s.Name] = s.Value
		}
	}
	if _, ok := found["runtime.main"]; !ok {
		return 0, nil, ErrNoSymbols
	}
	for _, want := range funcSymNames {
		v, ok := found[want]
		if !ok {
			continue
		}
		for _, l := range x.f.Loads {
			seg, ok := l.(*macho.Segment)
			if ok && seg.Name != "__PAGEZERO" && v >= seg.Addr && v-seg.Addr < seg.Filesz {
				return int64(v - seg.Addr), seg, nil
			}
		}
		return 0, nil, fmt.Errorf("gosyms: %s outside the file's segments", want)
	}
	return 0, nil, ErrNoSymbols
}

type peExe struct {
	f *pe.File
	r io.ReaderAt
}

func (x *peExe) symbol(name string) (*pe.Symbol, bool) {
	for _, s := range x.f.Symbols {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

func (x *peExe) section(s *pe.Symbol) (*pe.Section, error) {
	i := int(s.SectionNumber) - 1
	if i < 0 || i >= len(x.f.Sections) {
		return nil, fmt.Errorf("gosyms: symbol %s in no section", s.Name)
	}
	return x.f.Sections[i], nil
}

func (x *peExe) pclntab() (region, error) {
	start, ok1 := x.symbol("runtime.pclntab")
	end, ok2 := x.symbol("runtime.epclntab")
	if !ok1 || !ok2 {
		if len(x.f.Symbols) == 0 {
			return region{}, ErrNoSymbols
		}
		return region{}, errors.New("gosyms: no runtime.pclntab symbol")
	}
	sect, err := x.section(start)
	if err != nil {
		return region{}, err
	}
	if end.Value < start.Value {
		return region{}, errors.New("gosyms: runtime.epclntab before runtime.pclntab")
	}
	return readerRegion(sect, int64(start.Value), uint64(end.Value-start.Value)), nil
}

func (x *peExe) goFunc() (int64, io.ReaderAt, error) {
	if len(x.f.Symbols) == 0 {
		return 0, nil, ErrNoSymbols
	}
	for _, want := range funcSymNames {
		if s, ok := x.symbol(want); ok {
			sect, err := x.section(s)
			if err != nil {
				return 0, nil, err
			}
			// In PE a symbol's value is its offset in its section.
			return int64(s.Value), sect, nil
		}
	}
	return 0, nil, ErrNoSymbols
}

// maxPclntab bounds the pclntab read into memory (a compressed ELF
// section; a stored one is read through a buffer).
const maxPclntab = 1 << 30

func sectionData(r io.Reader, size uint64) ([]byte, error) {
	if size > maxPclntab {
		return nil, fmt.Errorf("gosyms: pclntab of %d bytes", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("gosyms: read pclntab: %w", err)
	}
	return b, nil
}

// pclntab layout versions.
const (
	ver118 = 118
	ver120 = 120
)

// table is a parsed Go 1.18+ pclntab header.
type table struct {
	bo        binary.ByteOrder
	version   int
	quantum   uint32
	ptrSize   int
	nfunc     int
	funcnames region
	pctab     region
	functab   region // the function table and the _func records
}

func parse(g region) (*table, error) {
	data, err := g.upTo(0, 8+8*8)
	if err != nil || len(data) < 8 {
		return nil, ErrUnsupported
	}
	t := &table{}
	le, be := binary.LittleEndian.Uint32(data), binary.BigEndian.Uint32(data)
	switch {
	case le == 0xfffffff0:
		t.bo, t.version = binary.LittleEndian, ver118
	case be == 0xfffffff0:
		t.bo, t.version = binary.BigEndian, ver118
	case le == 0xfffffff1:
		t.bo, t.version = binary.LittleEndian, ver120
	case be == 0xfffffff1:
		t.bo, t.version = binary.BigEndian, ver120
	default:
		return nil, ErrUnsupported
	}
	if data[4] != 0 || data[5] != 0 || (data[6] != 1 && data[6] != 2 && data[6] != 4) || (data[7] != 4 && data[7] != 8) {
		return nil, ErrUnsupported
	}
	t.quantum, t.ptrSize = uint32(data[6]), int(data[7])
	word := func(i int) (uint64, error) {
		off := 8 + i*t.ptrSize
		if off+t.ptrSize > len(data) {
			return 0, errors.New("gosyms: truncated pclntab header")
		}
		if t.ptrSize == 8 {
			return t.bo.Uint64(data[off:]), nil
		}
		return uint64(t.bo.Uint32(data[off:])), nil
	}
	// nfunc, nfiles, textStart, funcnameOffset, cuOffset, filetabOffset,
	// pctabOffset, pclnOffset.
	var h [8]uint64
	for i := range h {
		v, err := word(i)
		if err != nil {
			return nil, err
		}
		h[i] = v
	}
	if h[0] > MaxFuncs {
		return nil, fmt.Errorf("gosyms: %d functions", h[0])
	}
	t.nfunc = int(h[0])
	if t.funcnames, err = g.sub(h[3]); err != nil {
		return nil, err
	}
	if t.pctab, err = g.sub(h[6]); err != nil {
		return nil, err
	}
	if t.functab, err = g.sub(h[7]); err != nil {
		return nil, err
	}
	if t.functab.size < uint64(t.nfunc+1)*8 {
		return nil, errors.New("gosyms: truncated function table")
	}
	return t, nil
}

// fn is what Read needs of one _func record.
type fn struct {
	t          *table
	name       []byte // in the pclntab (or its buffer: see funcName)
	inlPcdata  uint32 // offset of the PCDATA_InlTreeIndex table in pctab, 0 if none
	inlTreeOff uint32 // FUNCDATA_InlTree offset from go:func.*, ^0 if none
}

const (
	pcdataInlTreeIndex = 2
	funcdataInlTree    = 3
)

func (t *table) funcAt(i int) (fn, error) {
	// Function table: nfunc+1 (entryoff, funcoff) pairs of uint32.
	funcOff, err := t.functab.u32(t.bo, uint64(i)*8+4)
	if err != nil {
		return fn{}, err
	}
	rec := uint64(funcOff)
	// _func: entryOff, nameOff, args, deferreturn, pcsp, pcfile, pcln,
	// npcdata, cuOffset, [startLine (1.20+)], funcID, flag, _, nfuncdata,
	// then npcdata pcdata offsets and nfuncdata funcdata offsets.
	fixed := uint64(40)
	if t.version >= ver120 {
		fixed = 44
	}
	r, err := t.functab.at(rec, fixed)
	if err != nil {
		return fn{}, errors.New("gosyms: _func record out of range")
	}
	f := fn{t: t, inlTreeOff: ^uint32(0)}
	nameOff := t.bo.Uint32(r[4:])
	npcdata := uint64(t.bo.Uint32(r[28:]))
	nfuncdata := uint64(r[fixed-1])
	if npcdata > pcdataInlTreeIndex {
		if f.inlPcdata, err = t.functab.u32(t.bo, rec+fixed+pcdataInlTreeIndex*4); err != nil {
			return fn{}, err
		}
	}
	if nfuncdata > funcdataInlTree {
		if f.inlTreeOff, err = t.functab.u32(t.bo, rec+fixed+npcdata*4+funcdataInlTree*4); err != nil {
			return fn{}, err
		}
	}
	// Last: the name is valid until the next name is read.
	if f.name, err = t.funcName(nameOff); err != nil {
		return fn{}, err
	}
	return f, nil
}

// funcName returns the name at off in the function name table, valid
// until the next name is read.
func (t *table) funcName(off uint32) ([]byte, error) {
	return t.funcnames.cstring(uint64(off))
}

// inlineCount is the number of entries of f's inline tree: one more than
// the largest value of its PCDATA_InlTreeIndex table (the tree itself is
// not delimited).
func (f fn) inlineCount() int {
	if f.inlPcdata == 0 || uint64(f.inlPcdata) >= f.t.pctab.size {
		return 0
	}
	pos := uint64(f.inlPcdata)
	val, maxVal := int32(-1), int32(-1)
	var pc uint64
	for {
		// The pc-value encoding (runtime.pcvalue): zig-zag value delta,
		// then pc delta in quanta; a zero value delta after the first
		// entry ends the table. One entry is at most two varints.
		p, err := f.t.pctab.upTo(pos, 2*binary.MaxVarintLen64)
		if err != nil {
			break
		}
		uv, n := binary.Uvarint(p)
		if n <= 0 || (uv == 0 && pc != 0) {
			break
		}
		p = p[n:]
		pos += uint64(n)
		if uv&1 != 0 {
			uv = ^(uv >> 1)
		} else {
			uv >>= 1
		}
		pcd, n := binary.Uvarint(p)
		if n <= 0 {
			break
		}
		pos += uint64(n)
		pc += pcd * uint64(f.t.quantum)
		val += int32(uv)
		maxVal = max(maxVal, val)
	}
	if maxVal >= maxTree {
		return maxTree + 1
	}
	return int(maxVal) + 1
}

// inlineTree reads n inline-tree entries at off in r and returns the
// names of the inlined functions.
func (t *table) inlineTree(r io.ReaderAt, off int64, n int, buf []byte, add func([]byte)) ([]byte, error) {
	size := 20 // Go 1.18/1.19: parent, funcID, _, file, line, func, parentPc
	if t.version >= ver120 {
		size = 16 // funcID, _, nameOff, parentPc, startLine
	}
	buf = slices.Grow(buf[:0], n*size)[:n*size]
	if _, err := r.ReadAt(buf, off); err != nil {
		return buf, fmt.Errorf("gosyms: read inline tree: %w", err)
	}
	for i := 0; i < n; i++ {
		e := buf[i*size:]
		var nameOff uint32
		if t.version >= ver120 {
			nameOff = t.bo.Uint32(e[4:])
		} else {
			nameOff = t.bo.Uint32(e[12:])
		}
		name, err := t.funcName(nameOff)
		if err != nil {
			return buf, err
		}
		add(name)
	}
	return buf, nil
}
