package gosyms

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"slices"
	"strings"
)

// A fingerprint records, compactly, which packages and functions of one
// module a binary contains, so that a later match against a newer
// vulnerability database can still decide reachability without the
// binary: "fnv32a:" and the base64 of the sorted 32-bit FNV-1a hashes of
// each package path and of each "path\x00symbol". Four bytes a symbol
// instead of the names; a hash collision can only turn "not reachable"
// into "reachable" (the conservative side), with a chance of about
// symbols·n/2³² per advisory.
const fingerprintPrefix = "fnv32a:"

func hash(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// PackageKey and SymbolKey are what a fingerprint holds for a package and
// for one of its functions.
func PackageKey(pkg string) string        { return pkg }
func SymbolKey(pkg, symbol string) string { return pkg + "\x00" + symbol }

// Fingerprint encodes the packages and symbols given (any order,
// duplicates allowed).
func Fingerprint(syms []Symbol) string {
	hs := make([]uint32, 0, 2*len(syms))
	for _, s := range syms {
		hs = append(hs, hash(PackageKey(s.Pkg)), hash(SymbolKey(s.Pkg, s.Name)))
	}
	slices.Sort(hs)
	hs = slices.Compact(hs)
	b := make([]byte, 4*len(hs))
	for i, h := range hs {
		binary.BigEndian.PutUint32(b[4*i:], h)
	}
	return fingerprintPrefix + base64.RawStdEncoding.EncodeToString(b)
}

// Set is a decoded fingerprint.
type Set []uint32

// ParseFingerprint decodes a Fingerprint.
func ParseFingerprint(s string) (Set, error) {
	rest, ok := strings.CutPrefix(s, fingerprintPrefix)
	if !ok {
		return nil, errors.New("gosyms: unknown fingerprint encoding")
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(b)%4 != 0 {
		return nil, errors.New("gosyms: corrupt fingerprint")
	}
	set := make(Set, len(b)/4)
	for i := range set {
		set[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	if !slices.IsSorted(set) {
		slices.Sort(set)
	}
	return set, nil
}

// Has reports whether key (PackageKey or SymbolKey) is in the set.
func (s Set) Has(key string) bool {
	_, found := slices.BinarySearch(s, hash(key))
	return found
}
