package scan_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/scan"
)

// The scanner's memory limit in a memory-limited cgroup, as the kernel
// reports it: this test binary is run again inside a cgroup of its own
// (cgroup v1 memory controller, or v2 with memory enabled; root needed)
// and calls SetMemoryLimit there. Skipped where no cgroup can be made.
func TestSetMemoryLimitInACgroup(t *testing.T) {
	const mib = 1 << 20
	if os.Getenv("CUSTOMS_TEST_CGROUP_CHILD") == "1" {
		m, err := scan.NewMemory(32*mib, 0)
		if err != nil {
			t.Fatal(err)
		}
		limit, set := scan.SetMemoryLimit(m, 32*mib)
		fmt.Printf("limit=%d set=%v runtime=%d\n", limit, set, debug.SetMemoryLimit(-1))
		return
	}
	dir, procs, limitFile := makeMemoryCgroup(t)
	for _, c := range []struct {
		cgroup int64
		want   int64 // budget 32 MiB + floor 32 MiB = 64 MiB, capped
	}{
		{4096 * mib, 64 * mib}, // room enough: the budget's own limit
		{128 * mib, 64 * mib},  // limit less 64 MiB
		{96 * mib, 48 * mib},   // at least half
		{64 * mib, 32 * mib},
	} {
		if err := os.WriteFile(limitFile, []byte(strconv.FormatInt(c.cgroup, 10)), 0o644); err != nil {
			t.Fatal(err)
		}
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		// The shell joins the cgroup, then becomes the test binary.
		cmd := exec.Command("sh", "-c", `echo $$ > "$1" && exec "$2" -test.run '^TestSetMemoryLimitInACgroup$'`, "sh", procs, exe)
		cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMEMLIMIT=") }),
			"CUSTOMS_TEST_CGROUP_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child in %s: %v\n%s", dir, err, out)
		}
		want := fmt.Sprintf("limit=%d set=true runtime=%d", c.want, c.want)
		if !strings.Contains(string(out), want) {
			t.Errorf("in a %d MiB cgroup: %s, want %s", c.cgroup/mib, strings.TrimSpace(string(out)), want)
		}
	}
}

// makeMemoryCgroup creates a memory cgroup for the test and returns it,
// its cgroup.procs file and its limit file; it skips the test when none
// can be made here.
func makeMemoryCgroup(t *testing.T) (dir, procs, limit string) {
	t.Helper()
	for _, c := range []struct{ parent, limit string }{
		{"/sys/fs/cgroup/memory", "memory.limit_in_bytes"}, // v1
		{"/sys/fs/cgroup", "memory.max"},                   // v2
	} {
		if _, err := os.Stat(filepath.Join(c.parent, "cgroup.procs")); err != nil {
			continue
		}
		d, err := os.MkdirTemp(c.parent, "customs-test-")
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, c.limit)); err != nil {
			os.Remove(d)
			continue // v2 without the memory controller enabled below the root
		}
		t.Cleanup(func() {
			// Empty once the children have exited.
			if err := os.Remove(d); err != nil {
				t.Logf("remove cgroup %s: %v", d, err)
			}
		})
		return d, filepath.Join(d, "cgroup.procs"), filepath.Join(d, c.limit)
	}
	t.Skip("no memory cgroup can be created here (needs root and a cgroup v1 memory or v2 memory controller)")
	return "", "", ""
}
