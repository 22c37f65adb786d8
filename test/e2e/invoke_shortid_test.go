package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// oneLineError checks a failed command: exit status 1 and one line on
// stderr saying each of says.
func oneLineError(t *testing.T, what, stderr string, code int, says ...string) {
	t.Helper()
	if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.HasPrefix(stderr, "dedupfn: ") {
		t.Errorf("%s: exit %d, stderr %q; want exit 1 and one line", what, code, stderr)
	}
	for _, s := range says {
		if !strings.Contains(stderr, s) {
			t.Errorf("%s: stderr %q does not say %q", what, stderr, s)
		}
	}
}

// Issue 19 items 5 and 6 through the CLI: `activations ID` takes the
// 12-character id the tables show; invoke on a missing object or on one
// outside the trigger fails with exit status 1, unless --any-key.
func TestCLI_ShortIDsAndInvokeMistakes(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, t.TempDir(), "--create-bucket", "images", "--create-bucket", "thumbnails")
	deployThumbnail(s)
	img, _ := os.ReadFile("../../examples/thumbnail/testdata/cat.jpg")
	for _, key := range []string{"a/cat.jpg", "a/cat.jpg.bak"} { // the .bak is outside the trigger's suffixes
		if _, err := s.MinIO().PutObject(t.Context(), "images", key, bytes.NewReader(img), int64(len(img)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s.WaitEvents(1, time.Minute)
	recs := s.Activations()
	if len(recs) != 1 {
		t.Fatalf("%d activations after one triggering upload: %+v", len(recs), recs)
	}
	id := recs[0].ID

	// Item 5: the table's short id, and a too short one.
	table := s.CLI("activations")
	if !strings.Contains(table, id[:12]) {
		t.Fatalf("the activations table does not show %s:\n%s", id[:12], table)
	}
	var got activation.Record
	if err := json.Unmarshal([]byte(s.CLI("activations", id[:12])), &got); err != nil || got.ID != id {
		t.Errorf("activations %s = %s, %v; want %s", id[:12], got.ID, err, id)
	}
	_, stderr, code := s.CLIRun("activations", id[:6])
	oneLineError(t, "activations of a 6-character id", stderr, code, "at least 8 characters", "HTTP 400")

	// Item 6: a missing object is an error, and nothing is recorded.
	_, stderr, code = s.CLIRun("invoke", "thumbnail", "--bucket", "images", "--key", "a/nope.jpg")
	oneLineError(t, "invoke of a missing object", stderr, code, "no such object", "a/nope.jpg", "images", "HTTP 404")
	// Outside the trigger (suffix): refused, naming --any-key.
	_, stderr, code = s.CLIRun("invoke", "thumbnail", "--bucket", "images", "--key", "a/cat.jpg.bak")
	oneLineError(t, "invoke outside the trigger", stderr, code, "suffix", ".jpg", "--any-key", "HTTP 400")
	if n := len(s.Activations()); n != 1 {
		t.Errorf("%d activations after the refused invokes, want still 1", n)
	}
	// With --any-key it runs (the same bytes as a/cat.jpg: a hit).
	out, stderr, code := s.CLIRun("invoke", "thumbnail", "--bucket", "images", "--key", "a/cat.jpg.bak", "--any-key", "--json")
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || got.Decision != activation.Hit || got.Event.Key != "a/cat.jpg.bak" {
		t.Errorf("invoke --any-key: exit %d, %+v, %v, stderr %q; want a hit on a/cat.jpg.bak", code, got, err, stderr)
	}
	if st := s.Stats(); st.Runs != 1 || st.Events != 2 {
		t.Errorf("stats %+v: want 2 events, 1 run (the function ran once in all)", st)
	}
}
