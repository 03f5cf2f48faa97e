package yara_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestAgainstLibyara runs the same rules over the same files with the
// reference implementation (the yara command, libyara; Debian's "yara"
// package, installed by scripts/ci-deps.sh) and requires identical
// results: which rules match which files.
func TestAgainstLibyara(t *testing.T) {
	bin, err := exec.LookPath("yara")
	if err != nil {
		t.Skip("install yara (scripts/ci-deps.sh) to compare with libyara")
	}
	dir := t.TempDir()
	files := map[string][]byte{}
	for i, c := range realWorldCases() {
		files[fmt.Sprintf("rw%02d", i)] = c.data
	}
	for name, data := range conditionCases() {
		files["hit_"+name] = data
	}
	for name, data := range conditionMisses() {
		files["miss_"+name] = data
	}
	for i, f := range benchCorpus()[:40] {
		if len(f) > 256<<10 {
			f = f[:256<<10]
		}
		files[fmt.Sprintf("corpus%02d", i)] = f
	}
	// Inputs that exercise edge cases: matches at the very end, overlaps.
	files["edge_end"] = []byte("....key=")
	files["edge_overlap"] = []byte("ababababab")
	files["edge_wide_fullword"] = []byte("xW\x00o\x00r\x00l\x00d\x00")
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	for _, set := range []struct{ name, src string }{
		{"real-world", realWorldRules},
		{"conditions", conditionRules},
		{"bench", benchRules()},
	} {
		rules := filepath.Join(t.TempDir(), "rules.yar")
		if err := os.WriteFile(rules, []byte(set.src), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "-w", "-r", rules, dir).Output()
		if err != nil {
			t.Fatalf("%s: yara: %v\n%s", set.name, err, out)
		}
		want := map[string][]string{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			rule, path, ok := strings.Cut(sc.Text(), " ")
			if !ok {
				t.Fatalf("yara output %q", sc.Text())
			}
			want[filepath.Base(path)] = append(want[filepath.Base(path)], rule)
		}
		rs := mustCompile(t, set.src)
		matched := 0
		for name, data := range files {
			got := names(rs.Scan(data))
			w := want[name]
			sort.Strings(got)
			sort.Strings(w)
			if !slices.Equal(got, w) {
				t.Errorf("%s: %s: got %v, libyara %v", set.name, name, got, w)
			}
			matched += len(w)
		}
		if matched == 0 {
			t.Errorf("%s: libyara matched nothing: the comparison is vacuous", set.name)
		}
	}
}
