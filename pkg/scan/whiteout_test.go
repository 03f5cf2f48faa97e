package scan_test

import (
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

func names(res *scan.Result) string {
	var n []string
	for _, p := range res.Packages {
		n = append(n, p.Name+"@"+p.Path)
	}
	return strings.Join(n, " ")
}

func TestWhiteouts(t *testing.T) {
	debian := scantest.Layer(t, scantest.DebianRootfs(t)...)
	alpine := scantest.Layer(t, scantest.AlpineRootfs(t)...)
	distroless := scantest.Layer(t, scantest.DistrolessRootfs(t)[1:]...)
	status := scantest.DpkgStatusPath
	for _, tc := range []struct {
		name   string
		layers []v1.Layer
		want   int // packages left
		osID   string
	}{
		{"file deleted by a later layer",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Whiteout(status))}, 0, "debian"},
		{"parent directory deleted",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Whiteout("var/lib/dpkg"))}, 0, "debian"},
		{"grandparent directory deleted",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Whiteout("var"))}, 0, "debian"},
		{"sibling deleted: no effect",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Whiteout("var/lib/dpkg/status-old"))}, 3, "debian"},
		{"prefix-named sibling deleted: no effect",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Whiteout("var/lib/dpk"))}, 3, "debian"},
		{"opaque directory hides lower children",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Opaque("var/lib/dpkg"))}, 0, "debian"},
		{"opaque ancestor",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Opaque("var"))}, 0, "debian"},
		{"opaque root hides everything below",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Opaque("."))}, 0, ""},
		{"opaque directory keeps the same layer's children",
			[]v1.Layer{alpine, scantest.Layer(t, scantest.Opaque("var/lib/dpkg"), scantest.Reg(status, scantest.DebianStatus(t, "bash")))}, 5, "alpine"},
		{"whiteout in the same layer does not delete that layer's file (whiteout last)",
			[]v1.Layer{scantest.Layer(t, append(scantest.DebianRootfs(t), scantest.Whiteout(status))...)}, 3, "debian"},
		{"whiteout in the same layer does not delete that layer's file (whiteout first)",
			[]v1.Layer{scantest.Layer(t, append([]scantest.File{scantest.Whiteout(status)}, scantest.DebianRootfs(t)...)...)}, 3, "debian"},
		{"whiteout and re-create in one layer replaces the lower file",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Whiteout("var/lib/dpkg"), scantest.Reg(status, scantest.DebianStatus(t, "zlib1g")))}, 1, "debian"},
		{"directory replaced by a symlink hides its lower content",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Symlink("var/lib", "/tmp"))}, 0, "debian"},
		{"file replaced by a directory",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Dir(status))}, 0, "debian"},
		{"file replaced by a non-analyzed entry (symlink)",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Symlink(status, "status-old"))}, 0, "debian"},
		{"a parent directory entry in a later layer hides nothing",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Dir("var"), scantest.Dir("var/lib"), scantest.Dir("var/lib/dpkg"))}, 3, "debian"},
		{"os-release deleted",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Whiteout("usr/lib/os-release"))}, 3, ""},
		{"distroless status.d file deleted",
			[]v1.Layer{distroless, scantest.Layer(t, scantest.Whiteout(scantest.DpkgStatusDPath+"/tzdata"))}, 2, ""},
		{"whiteout two layers up",
			[]v1.Layer{debian, alpine, scantest.Layer(t, scantest.Whiteout("lib/apk"))}, 3, "alpine"},
		{"deleted then re-added by an upper layer",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Whiteout("var")), scantest.Layer(t, scantest.Reg(status, scantest.DebianStatus(t, "bash", "zlib1g")))}, 2, "debian"},
		{"aufs metadata entries are ignored",
			[]v1.Layer{debian, scantest.Layer(t, scantest.Reg(".wh..wh.plnk/123.456", ""), scantest.Reg(".wh..wh.aufs", ""))}, 3, "debian"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustScan(t, scantest.Image(t, tc.layers...))
			if len(res.Packages) != tc.want {
				t.Errorf("got %d packages (%s), want %d", len(res.Packages), names(res), tc.want)
			}
			if res.OS.ID != tc.osID {
				t.Errorf("OS = %+v, want ID %q", res.OS, tc.osID)
			}
			for _, p := range res.Packages {
				if strings.Contains(p.Path, ".wh.") {
					t.Errorf("whiteout reported: %+v", p)
				}
			}
		})
	}
}

func TestInvalidWhiteouts(t *testing.T) {
	for _, name := range []string{".wh.", ".wh..", ".wh...", "etc/.wh.", "etc/.wh..", "etc/.wh..."} {
		t.Run(name, func(t *testing.T) {
			for _, bottom := range []bool{true, false} {
				layers := []v1.Layer{scantest.Layer(t, scantest.Reg(name, ""))}
				if !bottom {
					layers = append([]v1.Layer{scantest.Layer(t, scantest.DebianRootfs(t)...)}, layers...)
				}
				_, err := scanErr(t, scantest.Image(t, layers...))
				if !errors.Is(err, scan.ErrRejected) || errors.Is(err, scan.ErrLimitExceeded) {
					t.Fatalf("err = %v, want a rejection", err)
				}
				if !strings.Contains(err.Error(), "invalid whiteout") {
					t.Errorf("message %q does not say what is wrong", err)
				}
			}
		})
	}
}
