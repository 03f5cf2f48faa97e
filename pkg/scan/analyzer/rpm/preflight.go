package rpm

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Berkeley DB and NDB containers are walked here, in memory, the way
// go-rpmdb v0.1.1 walks them (pkg/bdb, pkg/ndb), minus its failure modes:
// every offset is bounds-checked, overflow chains must be acyclic and made
// of overflow pages, blob lengths must fit in the file and all blobs
// together may not exceed the file's size. Header blobs are then checked
// (checkHeader) against the failure modes of go-rpmdb's header import
// that no recover can contain: huge allocations and endless scans.

type dbFormat int

const (
	formatUnknown dbFormat = iota
	formatBDB
	formatNDB
	formatSQLite
)

var (
	errMalformed = errors.New("rpmdb: malformed database")
	errTooLarge  = errors.New("rpmdb: blobs larger than the file")
	errTooMany   = errors.New("rpmdb: too many packages")
	errHeader    = errors.New("rpmdb: malformed header blob")
)

const (
	bdbHashMagic     = 0x00061561
	bdbHeaderSize    = 26 // generic page header
	bdbHashPage      = 13
	bdbHashUnsorted  = 2
	bdbOverflowPage  = 7
	bdbHashMetaPage  = 8
	bdbHOffPage      = 3
	bdbHOffEntrySize = 12

	ndbHeaderMagic = 'R' | 'p'<<8 | 'm'<<16 | 'P'<<24
	ndbSlotMagic   = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbBlobMagic   = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	ndbSlotsPerPg  = 4096 / 16
	ndbMaxSlotPgs  = 2048
)

var sqliteMagic = []byte("SQLite format 3\x00")

// formatOf tells the format of a database from its first bytes, in the
// order go-rpmdb's Open tries them (SQLite, NDB, Berkeley DB).
func formatOf(_ string, head []byte) dbFormat {
	if bytes.HasPrefix(head, sqliteMagic) {
		return formatSQLite
	}
	if len(head) >= 16 {
		le := binary.LittleEndian
		if le.Uint32(head) == ndbHeaderMagic && le.Uint32(head[4:]) == 0 && le.Uint32(head[12:]) != 0 {
			return formatNDB
		}
		if m := le.Uint32(head[12:]); m == bdbHashMagic || m == 0x61150600 {
			return formatBDB
		}
	}
	return formatUnknown
}

// blobs returns the header blobs of a Berkeley DB or NDB database, read
// in memory. A structurally broken database yields an error; blobs that
// fail checkHeader are left out.
func blobs(format dbFormat, data []byte) ([][]byte, error) {
	if uint64(len(data)) >= 1<<31 {
		return nil, errTooLarge
	}
	var out [][]byte
	total := 0
	visit := func(blob []byte) error {
		if len(out) >= maxPackages {
			return errTooMany
		}
		if total += len(blob); total > len(data) {
			return errTooLarge // blobs share pages or overlap: not a real database
		}
		if checkHeader(blob) == nil {
			out = append(out, blob)
		}
		return nil
	}
	var err error
	switch format {
	case formatBDB:
		err = preflightBDB(data, visit)
	case formatNDB:
		err = preflightNDB(data, visit)
	default:
		err = errMalformed
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func preflightBDB(data []byte, visit func([]byte) error) error {
	if len(data) < 512 {
		return errMalformed
	}
	var order binary.ByteOrder = binary.LittleEndian
	if order.Uint32(data[12:]) != bdbHashMagic {
		order = binary.BigEndian // swapped database
		if order.Uint32(data[12:]) != bdbHashMagic {
			return errMalformed
		}
	}
	if data[24] != 0 || data[25] != bdbHashMetaPage {
		return errMalformed // encrypted, or not a hash database
	}
	pageSize := uint64(order.Uint32(data[20:]))
	switch pageSize {
	case 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536:
	default:
		return errMalformed
	}
	lastPage := uint64(order.Uint32(data[32:]))
	if (lastPage+1)*pageSize > uint64(len(data)) {
		return errMalformed // go-rpmdb would fail on a short read
	}
	size := uint64(len(data))
	for pn := uint64(0); pn <= lastPage; pn++ {
		page := data[pn*pageSize : (pn+1)*pageSize]
		if t := page[25]; t != bdbHashPage && t != bdbHashUnsorted {
			continue
		}
		entries := int(order.Uint16(page[20:]))
		if entries%2 != 0 || bdbHeaderSize+2*entries > min(int(pageSize), 65535) {
			return errMalformed
		}
		index := page[bdbHeaderSize : bdbHeaderSize+2*entries]
		for i := 2; i+2 <= len(index); i += 4 { // values only: key, value, key, value…
			v := int(order.Uint16(index[i:]))
			if v >= len(page) {
				return errMalformed
			}
			if page[v] != bdbHOffPage {
				continue
			}
			if v+bdbHOffEntrySize > len(page) || v+bdbHOffEntrySize > 65535 {
				return errMalformed
			}
			var blob []byte
			steps := uint64(0)
			for cur := uint64(order.Uint32(page[v+4:])); cur != 0; steps++ {
				if steps > lastPage || (cur+1)*pageSize > size {
					return errMalformed // cycle, or page outside the file
				}
				ov := data[cur*pageSize : (cur+1)*pageSize]
				if ov[25] != bdbOverflowPage {
					return errMalformed // go-rpmdb would loop forever
				}
				next := uint64(order.Uint32(ov[16:]))
				if next == 0 {
					free := int(order.Uint16(ov[22:]))
					if bdbHeaderSize+free > len(ov) || bdbHeaderSize+free > 65535 {
						return errMalformed
					}
					blob = append(blob, ov[bdbHeaderSize:bdbHeaderSize+free]...)
				} else {
					blob = append(blob, ov[bdbHeaderSize:]...)
				}
				if uint64(len(blob)) > size {
					return errTooLarge
				}
				cur = next
			}
			if err := visit(blob); err != nil {
				return err
			}
		}
	}
	return nil
}

func preflightNDB(data []byte, visit func([]byte) error) error {
	le := binary.LittleEndian
	if len(data) < 32 || le.Uint32(data) != ndbHeaderMagic || le.Uint32(data[4:]) != 0 {
		return errMalformed
	}
	slotPages := uint64(le.Uint32(data[12:]))
	if slotPages == 0 || slotPages > ndbMaxSlotPgs {
		return errMalformed
	}
	nslots := slotPages*ndbSlotsPerPg - 2 // the header takes the first two slots
	if 32+nslots*16 > uint64(len(data)) {
		return errMalformed
	}
	size := uint64(len(data))
	for i := uint64(0); i < nslots; i++ {
		s := data[32+i*16:]
		if le.Uint32(s) != ndbSlotMagic {
			return errMalformed
		}
		pkgIndex := le.Uint32(s[4:])
		if pkgIndex == 0 {
			continue
		}
		off := uint64(le.Uint32(s[8:])) * 16
		if off+16 > size {
			return errMalformed
		}
		b := data[off:]
		if le.Uint32(b) != ndbBlobMagic || le.Uint32(b[4:]) != pkgIndex {
			return errMalformed
		}
		blen := uint64(le.Uint32(b[12:]))
		if off+16+blen > size {
			return errMalformed
		}
		if err := visit(b[16 : 16+blen]); err != nil {
			return err
		}
	}
	return nil
}

// Header blob checks (go-rpmdb's headerImport): bounded index and data
// lengths (go-rpmdb allocates il index entries before checking them), and
// bounded string scanning (go-rpmdb's strtaglen rescans the rest of the
// data once per missing string: a count of 2^32 never ends).
const (
	hdrMaxTags      = 0xffff // rpm's hdrchkTags
	rpmStringType   = 6
	rpmStringArray  = 8
	rpmI18NString   = 9
	entryInfoSize   = 16
	scanBudgetRatio = 8
)

func checkHeader(blob []byte) error {
	if len(blob) < 8 {
		return errHeader
	}
	be := binary.BigEndian
	il, dl := int64(int32(be.Uint32(blob))), int64(int32(be.Uint32(blob[4:])))
	if il < 1 || il > hdrMaxTags || dl < 0 || 8+il*entryInfoSize+dl > int64(len(blob)) {
		return errHeader
	}
	dataStart := 8 + il*entryInfoSize
	dataEnd := dataStart + dl
	budget := scanBudgetRatio*int64(len(blob)) + 1<<16
	for i := int64(0); i < il; i++ {
		e := blob[8+i*entryInfoSize:]
		typ, off, count := be.Uint32(e[4:]), int64(int32(be.Uint32(e[8:]))), int64(be.Uint32(e[12:]))
		if typ != rpmStringType && typ != rpmStringArray && typ != rpmI18NString {
			continue
		}
		budget -= strScanCost(blob, count, dataStart+off, dataEnd)
		if budget < 0 {
			return errHeader
		}
	}
	return nil
}

// strScanCost is the number of bytes go-rpmdb's strtaglen scans for count
// strings from start, computed without rescanning.
func strScanCost(data []byte, count, start, dataEnd int64) int64 {
	if start < 0 || start >= dataEnd || dataEnd > int64(len(data)) {
		return 0
	}
	var cost int64
	off := start
	for ; count > 0; count-- {
		if off > dataEnd {
			return cost // go-rpmdb gives up (or panics, recovered) here
		}
		i := bytes.IndexByte(data[off:dataEnd], 0)
		if i < 0 {
			// Every remaining string rescans data[off:dataEnd] in vain.
			rest := dataEnd - off + 1 // +1: each attempt costs at least a loop turn
			if count > (1<<62)/rest {
				return 1 << 62
			}
			return cost + count*rest
		}
		cost += int64(i) + 1
		off += int64(i) + 1
	}
	return cost
}
