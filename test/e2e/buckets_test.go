package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// Issue 19 items 2 and 3, through the CLI: fn deploy onto a bucket that
// does not exist, or with a template that is not one, fails (exit status
// 1) with one line saying what is wrong and how to fix it, and deploys
// nothing.
func TestDeployRefusesMissingBucketAndBadTemplate(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, t.TempDir(), "--create-bucket", "images")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"MissingOutputBucket", []string{"--output-bucket", "thumbnails"},
			[]string{`output bucket "thumbnails" does not exist`, "aws s3 mb s3://thumbnails", "--create-bucket thumbnails", "HTTP 400"}},
		{"BadTemplate", []string{"--output-bucket", "images", "--output-key", "{nope}/{key"},
			[]string{"unknown placeholder {nope}", `unclosed "{"`, "{key} {dir} {base} {ext} {name}", "HTTP 400"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(harness.Dedupfn, append([]string{"fn", "deploy", "thumbnail", "--wasm", harness.Thumbnail, "--bucket", "images"}, tc.args...)...)
			cmd.Env = append(os.Environ(), "DEDUPFN_API=http://"+s.API)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("deploy succeeded:\n%s", out)
			}
			if n := strings.Count(strings.TrimSpace(string(out)), "\n"); n > 0 {
				t.Errorf("error spans %d lines, want one:\n%s", n+1, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output %q does not say %q", out, w)
				}
			}
			if list := s.CLI("fn", "list"); strings.Contains(list, "thumbnail") {
				t.Fatalf("refused function was deployed:\n%s", list)
			}
		})
	}
}
