package vulndb

import (
	"math/rand/v2"
	"strings"
	"testing"

	deb "github.com/knqyf263/go-deb-version"
)

var debSamples = []string{
	"0", "1", "1.0", "1.0-1", "1.0-1~bpo1", "1.0~rc1-1", "1.0+dfsg-1", "1:1.0-1", "2:0.1", "01:1.0",
	"3.0.11-1~deb12u2", "3.0.11-1~deb12u1", "3.0.13-1~deb12u1", "3.0.19-1~deb12u2", "1.1.1n-0+deb11u5",
	"5.2.15-2+b2", "5.2.15-2", "2.36-9+deb12u4", "1:2.38.1-5+deb12u3", "7.88.1-10+deb12u8",
	"1.2.13.dfsg-1", "1:1.2.13.dfsg-1", "2023c-5", "12.4+deb12u5", "3.0.2-0ubuntu1.10", "3.0.2-0ubuntu1.12",
	"1.0a", "1.0b", "1.0.a", "1.0~", "1.0~~", "1.0~~a", "1.0-", "1.0--1", "1.0-1-1", "10", "9", "1.00", "1.000001",
	"1.0+really0.9-1", "0.0~git20230101.abc1234-1", "1.2_3-1", "1:", ":1.0", "a1.0", "1.0-1:2", "1.0-ä", "1.0ä-1",
	"", " 1.0 ", "99999999999999999999.1", "99999999999999999998.1",
}

// The hand-written comparison must agree with go-deb-version on validity
// and order wherever the library itself is well-defined.
func TestDebCompareAgreesWithLibrary(t *testing.T) {
	for _, a := range debSamples {
		for _, b := range debSamples {
			checkDebAgainstLibrary(t, a, b)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789.~+-:ab"
	gen := func() string {
		n := 1 + r.IntN(8)
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	for i := 0; i < 200000; i++ {
		checkDebAgainstLibrary(t, gen(), gen())
	}
}

func checkDebAgainstLibrary(t *testing.T, a, b string) {
	t.Helper()
	if !ascii(strings.TrimSpace(a)) || !ascii(strings.TrimSpace(b)) {
		// Debian policy: ASCII only; cmpDeb rejects what the library
		// accepts through unicode.IsLetter.
		if _, err := cmpDeb(a, b); err == nil {
			t.Fatalf("cmpDeb(%q, %q) accepted non-ASCII", a, b)
		}
		return
	}
	if signedEpoch(a) || signedEpoch(b) {
		// strconv.Atoi takes "+1" as an epoch; dpkg (and cmpDeb) do not.
		return
	}
	// The library parses numbers with strconv.Atoi and fails or
	// mis-orders beyond int64; dpkg compares them by value, as cmpDeb does.
	if len(a) > 18 || len(b) > 18 {
		return
	}
	got, err := cmpDeb(a, b)
	va, errA := deb.NewVersion(a)
	vb, errB := deb.NewVersion(b)
	if (err != nil) != (errA != nil || errB != nil) {
		t.Fatalf("cmpDeb(%q, %q) err=%v, library errs %v / %v", a, b, err, errA, errB)
	}
	if err != nil {
		return
	}
	if want := va.Compare(vb); sign(want) != got {
		t.Fatalf("cmpDeb(%q, %q) = %d, library says %d", a, b, got, want)
	}
}

func signedEpoch(s string) bool {
	s = strings.TrimSpace(s)
	return strings.Contains(s, ":") && (strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-"))
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func TestDebCompareBigNumbers(t *testing.T) {
	if c, _ := cmpDeb("99999999999999999999.1", "99999999999999999998.1"); c != 1 {
		t.Fatalf("got %d", c)
	}
	if c, _ := cmpDeb("1.0001", "1.1"); c != 0 {
		t.Fatalf("leading zeros: got %d", c)
	}
}

func FuzzDebCompare(f *testing.F) {
	for i := 1; i < len(debSamples); i++ {
		f.Add(debSamples[i-1], debSamples[i])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if len(a) > 64 || len(b) > 64 {
			return
		}
		ab, err := cmpDeb(a, b)
		if err != nil {
			return
		}
		ba, _ := cmpDeb(b, a)
		if ab != -ba {
			t.Fatalf("not antisymmetric: %q %q", a, b)
		}
		checkDebAgainstLibrary(t, a, b)
	})
}

func BenchmarkCmpDeb(b *testing.B) {
	b.Run("customs", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_, _ = cmpDeb("1:2.38.1-5+deb12u3", "1:2.38.1-5+deb12u2")
		}
	})
	b.Run("go-deb-version", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			va, _ := deb.NewVersion("1:2.38.1-5+deb12u3")
			vb, _ := deb.NewVersion("1:2.38.1-5+deb12u2")
			_ = va.Compare(vb)
		}
	})
}
