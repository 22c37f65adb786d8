package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// TestBackfill_SurvivesKill is issue 11's backfill through the binary:
// objects uploaded before any function exists are backfilled by the
// server, which is SIGKILLed mid-job and started again on the same data.
// The job resumes and finishes; executions are counted from the function's
// side file: every content ran, at most the objects in flight at the kill
// ran twice, and a second backfill runs nothing.
func TestBackfill_SurvivesKill(t *testing.T) {
	t.Parallel()
	const distinct, copies, concurrency = 24, 2, 2
	dir := t.TempDir()
	s := harness.StartServer(t, dir, "--create-bucket", "photos", "--create-bucket", "results")
	mc := s.MinIO()
	for i := range distinct {
		for c := range copies {
			body := fmt.Sprintf("content %d", i)
			if _, err := mc.PutObject(t.Context(), "photos", fmt.Sprintf("c%d/%03d", c, i), strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	side := filepath.Join(t.TempDir(), "executions.log")
	s.CLI("fn", "deploy", "bf", "--exec", harness.ChaosAction, "--bucket", "photos", "--output-bucket", "results",
		"--param", "log="+side, "--param", "ms=300", "--memory", "1536")
	if st := s.Stats(); st.Events != 0 {
		t.Fatalf("%d activations before the backfill: uploads made before the deploy must not run", st.Events)
	}

	id := strings.TrimSpace(s.CLI("backfill", "bf", "--detach", "--concurrency", fmt.Sprint(concurrency)))
	testutil.Eventually(t, 60*time.Second, "a few executions before the kill", func() bool {
		b, _ := os.ReadFile(side)
		return bytes.Count(b, []byte("end ")) >= 6
	})
	s.Kill()
	s.Start()

	// Followed to its end after the restart: exit 0 means done.
	cmd := exec.Command(harness.Dedupfn, "backfill", "status", id, "--follow")
	cmd.Env = append(os.Environ(), "DEDUPFN_API=http://"+s.API)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("backfill status %s --follow: %v\n%s", id, err, out)
	}
	if !strings.Contains(string(out), "done") {
		t.Fatalf("backfill status --follow ended without saying done:\n%s", out)
	}

	execs := harness.ReadExecutions(t, side)
	if len(execs) != distinct {
		t.Fatalf("%d contents executed, want all %d", len(execs), distinct)
	}
	twice := 0
	for content, es := range execs {
		switch {
		case len(es) > 2:
			t.Errorf("content %s executed %d times", content, len(es))
		case len(es) == 2:
			twice++
		}
	}
	if twice > concurrency {
		t.Errorf("%d contents executed twice; only the %d objects in flight at the kill may run again", twice, concurrency)
	}
	// One activation per object. A run whose result was committed just
	// before the kill, but whose activation was not, is a hit when its
	// object is sent again: runs may be fewer than the contents.
	st := s.Stats()
	if st.Events != distinct*copies || st.Runs+st.Hits != distinct*copies || st.Runs > distinct || st.Errors != 0 {
		t.Errorf("stats %+v; want %d events, all runs or hits, at most %d runs", st, distinct*copies, distinct)
	}

	// A second backfill finds every object recorded: it runs nothing.
	before := len(readAll(t, side))
	second := s.CLI("backfill", "bf")
	if !strings.Contains(second, "runs 0") {
		t.Errorf("second backfill: %q, want runs 0", second)
	}
	if after := len(readAll(t, side)); after != before {
		t.Errorf("the side file grew from %d to %d bytes: the second backfill executed the function", before, after)
	}
	t.Logf("%d contents, %d executed twice after the kill", len(execs), twice)
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
