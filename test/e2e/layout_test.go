package e2e

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// TestReadmeLayout_ListsEveryCommandAndExample is issue 19 item 11:
// README's Layout names every command `dedupfn --help` lists and every
// folder under examples/.
func TestReadmeLayout_ListsEveryCommandAndExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal("README has no Layout section")
	}
	layout, _, _ = strings.Cut(layout, "\n## ")
	// A Layout entry runs from its path to the next line that starts one.
	entry := func(path string) string {
		i := strings.Index(layout, "\n"+path)
		if i < 0 {
			t.Fatalf("Layout has no %s line:\n%s", path, layout)
		}
		rest := layout[i+1:]
		next := regexp.MustCompile(`\n[a-z]`).FindStringIndex(rest)
		if next != nil {
			rest = rest[:next[0]]
		}
		return rest
	}
	words := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, w := range regexp.MustCompile(`[a-z][a-z0-9-]*`).FindAllString(s, -1) {
			m[w] = true
		}
		return m
	}

	help, err := exec.Command(harness.Dedupfn, "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	_, cmds, _ := strings.Cut(string(help), "Available Commands:\n")
	cmds, _, _ = strings.Cut(cmds, "\n\n")
	cmdLine := words(entry("cmd/dedupfn/"))
	for _, l := range strings.Split(cmds, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] == "help" || f[0] == "completion" {
			continue
		}
		if !cmdLine[f[0]] {
			t.Errorf("Layout's cmd/dedupfn/ line does not name the %s command", f[0])
		}
	}

	dirs, err := os.ReadDir("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	exLine := words(entry("examples/"))
	for _, d := range dirs {
		if d.IsDir() && !exLine[d.Name()] {
			t.Errorf("Layout's examples/ line does not name examples/%s", d.Name())
		}
	}
}
