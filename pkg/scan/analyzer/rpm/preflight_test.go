package rpm

import (
	"encoding/binary"
	"os"
	"testing"
)

// Each case corrupts one field of a real database the way that made
// go-rpmdb hang, panic in its own goroutine or allocate gigabytes;
// preflight must decline it.
func TestPreflightHostile(t *testing.T) {
	bdb, err := os.ReadFile("testdata/rhel8-bdb/rootfs/var/lib/rpm/Packages")
	if err != nil {
		t.Fatal(err)
	}
	ndb, err := os.ReadFile("testdata/sles15-ndb/rootfs/usr/lib/sysimage/rpm/Packages.db")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := blobs(formatBDB, bdb); err != nil || len(b) != 1 {
		t.Fatalf("real BDB: %d blobs, %v", len(b), err)
	}
	if b, err := blobs(formatNDB, ndb); err != nil || len(b) != 35 {
		t.Fatalf("real NDB: %d blobs, %v", len(b), err)
	}
	le := binary.LittleEndian
	pageSize := int(le.Uint32(bdb[20:]))
	// Overflow pages of the BDB (type 7).
	var overflow []int
	for p := 0; (p+1)*pageSize <= len(bdb); p++ {
		if bdb[p*pageSize+25] == bdbOverflowPage {
			overflow = append(overflow, p)
		}
	}
	if len(overflow) == 0 {
		t.Fatal("no overflow page in the test BDB")
	}
	mut := func(b []byte, f func(c []byte)) []byte {
		c := append([]byte(nil), b...)
		f(c)
		return c
	}
	first := overflow[0] * pageSize
	cases := map[string][]byte{
		// go-rpmdb: `continue` without advancing → endless loop.
		"bdb overflow page of another type": mut(bdb, func(c []byte) { c[first+25] = bdbHashPage }),
		// Chain pointing to itself → endless loop, unbounded memory.
		"bdb overflow cycle": mut(bdb, func(c []byte) {
			for _, p := range overflow {
				le.PutUint32(c[p*pageSize+16:], uint32(overflow[0]))
			}
		}),
		// FreeAreaOffset past the page → slice panic in go-rpmdb's goroutine.
		"bdb free offset": mut(bdb, func(c []byte) {
			for _, p := range overflow {
				le.PutUint16(c[p*pageSize+22:], 0xfff0)
			}
		}),
		"bdb last page beyond file": mut(bdb, func(c []byte) { le.PutUint32(c[32:], 0xffffffff) }),
		// NDB blob length 4 GiB → make([]byte, 4<<30).
		"ndb blob length": mut(ndb, func(c []byte) {
			for i := 32; i+16 <= len(c); i += 16 {
				if le.Uint32(c[i:]) == ndbSlotMagic && le.Uint32(c[i+4:]) != 0 {
					off := int(le.Uint32(c[i+8:])) * 16
					le.PutUint32(c[off+12:], 0xfffffff0)
					return
				}
			}
		}),
		"ndb bad slot magic": mut(ndb, func(c []byte) { le.PutUint32(c[32:], 0) }),
	}
	for name, data := range cases {
		format := formatOf("", data)
		if format != formatBDB && format != formatNDB {
			t.Errorf("%s: format %v", name, format)
			continue
		}
		if _, err := blobs(format, data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCheckHeader(t *testing.T) {
	be := binary.BigEndian
	hdr := func(il, dl uint32, entries [][4]uint32, data []byte) []byte {
		b := be.AppendUint32(nil, il)
		b = be.AppendUint32(b, dl)
		for _, e := range entries {
			for _, v := range e {
				b = be.AppendUint32(b, v)
			}
		}
		return append(b, data...)
	}
	ok := hdr(1, 4, [][4]uint32{{1000, rpmStringType, 0, 1}}, []byte("bash"))
	ok[len(ok)-1] = 0
	if err := checkHeader(ok); err != nil {
		t.Errorf("valid header: %v", err)
	}
	for name, b := range map[string][]byte{
		"huge il":       hdr(0x7fffffff, 0, nil, nil),
		"il past blob":  hdr(100, 0, [][4]uint32{{1000, rpmStringType, 0, 1}}, nil),
		"negative dl":   hdr(1, 0xffffffff, [][4]uint32{{1000, rpmStringType, 0, 1}}, nil),
		"no il":         hdr(0, 0, nil, nil),
		"2^32 strings":  hdr(1, 8, [][4]uint32{{1017, rpmStringArray, 0, 0xffffffff}}, []byte("abcdefgh")),
		"many entries ": hdr(2000, 64, make([][4]uint32, 2000), make([]byte, 64)),
	} {
		if name == "many entries " {
			// 2000 entries all scanning the same NUL-free data 2^32 times.
			for i := range 2000 {
				be.PutUint32(b[8+i*16+4:], rpmStringArray)
				be.PutUint32(b[8+i*16+12:], 0xffffffff)
			}
			for i := range 64 {
				b[len(b)-1-i] = 'x'
			}
		}
		if err := checkHeader(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
