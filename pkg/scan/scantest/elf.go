package scantest

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
)

// Segment is a loadable segment of an ELF file made by ELF: bytes
// [Off, Off+Size) of the file, with its permissions.
type Segment struct {
	Off, Size uint64
	Flags     elf.ProgFlag
}

// ELF returns an ELF file of size bytes (at least 4 KiB, zero-filled, so
// that no part of it reads as text) whose program headers, right after the ELF header, describe segs
// as PT_LOAD segments; it has no section headers. class and order pick
// the flavour (elf.ELFCLASS64/32, binary.LittleEndian/BigEndian). The
// contents are the caller's to write after the first 4 KiB.
func ELF(size int, class elf.Class, order binary.ByteOrder, segs ...Segment) []byte {
	var buf bytes.Buffer
	data := elf.ELFDATA2LSB
	if order == binary.ByteOrder(binary.BigEndian) {
		data = elf.ELFDATA2MSB
	}
	ident := [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(class), byte(data), byte(elf.EV_CURRENT)}
	if class == elf.ELFCLASS64 {
		_ = binary.Write(&buf, order, elf.Header64{Ident: ident, Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64),
			Version: uint32(elf.EV_CURRENT), Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: uint16(len(segs))})
		for _, s := range segs {
			_ = binary.Write(&buf, order, elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(s.Flags), Off: s.Off,
				Vaddr: s.Off, Paddr: s.Off, Filesz: s.Size, Memsz: s.Size, Align: 0x1000})
		}
	} else {
		_ = binary.Write(&buf, order, elf.Header32{Ident: ident, Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_386),
			Version: uint32(elf.EV_CURRENT), Phoff: 52, Ehsize: 52, Phentsize: 32, Phnum: uint16(len(segs))})
		for _, s := range segs {
			_ = binary.Write(&buf, order, elf.Prog32{Type: uint32(elf.PT_LOAD), Flags: uint32(s.Flags), Off: uint32(s.Off),
				Vaddr: uint32(s.Off), Paddr: uint32(s.Off), Filesz: uint32(s.Size), Memsz: uint32(s.Size), Align: 0x1000})
		}
	}
	b := make([]byte, max(size, 4<<10))
	copy(b, buf.Bytes())
	return b
}
