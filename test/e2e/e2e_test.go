// Package e2e drives the dedupfn binary as a user would: `dedupfn serve`
// in a subprocess, uploads through real S3 clients (aws cli, minio-go),
// and the CLI's own commands to deploy and inspect. Each test has its own
// serve and peers and they run in parallel (they wait, mostly); the one
// that times a shutdown (TestWasmCompile_SigtermNotDelayedByCompile) runs
// alone.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

func deployThumbnail(s *harness.Server) {
	s.CLI("fn", "deploy", "thumbnail", "--wasm", harness.Thumbnail, "--bucket", "images",
		"--suffix", ".jpg", "--suffix", ".jpeg", "--suffix", ".png", "--output-bucket", "thumbnails", "--param", "size=128")
}

// TestQuickstart is the README's quickstart, step by step.
func TestQuickstart(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, t.TempDir(), "--create-bucket", "images", "--create-bucket", "thumbnails")
	deployThumbnail(s)
	testdata, _ := filepath.Abs("../../examples/thumbnail/testdata")

	s.AWS("s3", "cp", filepath.Join(testdata, "cat.jpg"), "s3://images/a/cat.jpg")
	s.WaitEvents(1, 60*time.Second)
	s.AWS("s3", "cp", filepath.Join(testdata, "cat.jpg"), "s3://images/b/cat-copy.jpg")
	s.WaitEvents(2, 30*time.Second)
	s.AWS("s3", "cp", filepath.Join(testdata, "dog.png"), "s3://images/c/dog.png")
	st := s.WaitEvents(3, 60*time.Second)

	if st.Events != 3 || st.Runs != 2 || st.Hits != 1 || st.Errors != 0 || st.SavedMS <= 0 {
		t.Fatalf("stats %+v, want events 3, runs 2, hits 1, errors 0, saved > 0", st)
	}
	got := map[string]activation.Decision{}
	for _, r := range s.Activations() {
		got[r.Event.Key] = r.Decision
	}
	want := map[string]activation.Decision{"a/cat.jpg": "miss", "b/cat-copy.jpg": "hit", "c/dog.png": "miss"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("activations %v, want %v", got, want)
	}
	table := s.CLI("activations")
	for _, w := range []string{"DECISION", "a/cat.jpg", "hit", "miss"} {
		if !strings.Contains(table, w) {
			t.Errorf("activations table lacks %q:\n%s", w, table)
		}
	}

	mc := s.MinIO()
	var keys []string
	for o := range mc.ListObjects(t.Context(), "thumbnails", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
		obj, err := mc.GetObject(t.Context(), "thumbnails", o.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(obj)
		obj.Close()
		if err != nil {
			t.Fatalf("thumbnail %s is not a JPEG: %v", o.Key, err)
		}
		if b := img.Bounds(); max(b.Dx(), b.Dy()) != 128 {
			t.Errorf("thumbnail %s is %dx%d, want longest side 128", o.Key, b.Dx(), b.Dy())
		}
	}
	if fmt.Sprint(keys) != "[a/cat.jpg b/cat-copy.jpg c/dog.png]" {
		t.Fatalf("thumbnails %v, want 3", keys)
	}
}

// TestConcurrentDuplicateUploads: 50 simultaneous uploads of the same new
// content under 50 keys → exactly 1 run and 50 thumbnails.
func TestConcurrentDuplicateUploads(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, t.TempDir(), "--create-bucket", "images", "--create-bucket", "thumbnails", "--concurrency", "16")
	deployThumbnail(s)
	img, err := os.ReadFile("../../examples/thumbnail/testdata/cat.jpg")
	if err != nil {
		t.Fatal(err)
	}
	mc := s.MinIO()
	const n = 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := mc.PutObject(context.Background(), "images", fmt.Sprintf("u%02d/cat.jpg", i), bytes.NewReader(img), int64(len(img)), minio.PutObjectOptions{ContentType: "image/jpeg"})
			if err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	st := s.WaitEvents(n, 120*time.Second)
	if st.Events != n || st.Runs != 1 || st.Hits != n-1 || st.Errors != 0 {
		t.Fatalf("stats %+v: want %d events, exactly 1 run, %d hits (waits included), 0 errors", st, n, n-1)
	}
	count := 0
	for o := range mc.ListObjects(t.Context(), "thumbnails", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		count++
	}
	if count != n {
		t.Fatalf("%d thumbnails, want %d", count, n)
	}
}

// TestCrashRecovery: an upload accepted before a crash is processed after
// restart, exactly once, taken over after the crashed run's lease expires.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := harness.StartServer(t, data, "--create-bucket", "inbox", "--create-bucket", "outbox")
	s.CLI("fn", "deploy", "slow", "--wasm", harness.Slowcopy, "--bucket", "inbox", "--output-bucket", "outbox", "--param", "ms=1500", "--lease", "2s")
	if _, err := s.MinIO().PutObject(t.Context(), "inbox", "x.bin", strings.NewReader("payload"), 7, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the run is under way
	s.Kill()

	s.Start()
	st := s.WaitEvents(1, 60*time.Second)
	if st.Runs != 1 || st.Errors != 0 {
		t.Fatalf("stats after restart %+v, want the event run once", st)
	}
	obj, err := s.MinIO().GetObject(t.Context(), "outbox", "x.bin", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(obj); err != nil || buf.String() != "payload" {
		t.Fatalf("output %q, %v", buf.String(), err)
	}
}

func TestRefusesDefaultCredentialsBeyondLoopback(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(harness.Dedupfn, "serve", "--data", t.TempDir(), "--s3-addr", "0.0.0.0:0", "--api-addr", testutil.FreeAddr(t))
	cmd.Env = append(os.Environ(), "DEDUPFN_ACCESS_KEY=", "DEDUPFN_SECRET_KEY=")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "quickstart credentials") {
		t.Fatalf("serve on 0.0.0.0 with default credentials: err %v, output %s", err, out)
	}
	cmd = exec.Command(harness.Dedupfn, "serve", "--data", t.TempDir(), "--s3-addr", testutil.FreeAddr(t), "--api-addr", "0.0.0.0:0")
	cmd.Env = append(os.Environ(), "DEDUPFN_API_TOKEN=")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "DEDUPFN_API_TOKEN") {
		t.Fatalf("API on 0.0.0.0 without a token: err %v, output %s", err, out)
	}
}

func TestDeployRejectsBadModule(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, t.TempDir(), "--create-bucket", "images", "--create-bucket", "thumbnails")
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	os.WriteFile(bad, []byte("not a wasm module"), 0o644)
	cmd := exec.Command(harness.Dedupfn, "fn", "deploy", "bad", "--wasm", bad, "--bucket", "images", "--output-bucket", "thumbnails")
	cmd.Env = append(os.Environ(), "DEDUPFN_API=http://"+s.API)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot run") || !strings.Contains(string(out), "HTTP 400") {
		t.Fatalf("deploy of a corrupt module: err %v, output %s; want a 400 saying it cannot run", err, out)
	}
	if list := s.CLI("fn", "list"); strings.Contains(list, "bad") {
		t.Fatalf("corrupt function was deployed:\n%s", list)
	}
}

// TestOperatorCommands drives invoke (with --force), explain, purge and
// fn get/delete through the CLI, as an operator would.
func TestOperatorCommands(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, t.TempDir(), "--create-bucket", "images", "--create-bucket", "thumbnails")
	deployThumbnail(s)
	img, _ := os.ReadFile("../../examples/thumbnail/testdata/cat.jpg")
	if _, err := s.MinIO().PutObject(t.Context(), "images", "a/cat.jpg", bytes.NewReader(img), int64(len(img)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	s.WaitEvents(1, time.Minute)

	invoke := func(args ...string) activation.Record {
		var rec activation.Record
		out := s.CLI(append([]string{"invoke", "thumbnail", "--bucket", "images", "--key", "a/cat.jpg", "--json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &rec); err != nil {
			t.Fatalf("invoke output %q: %v", out, err)
		}
		return rec
	}
	if rec := invoke(); rec.Decision != activation.Hit {
		t.Fatalf("invoke of a processed object: %s, want hit", rec.Decision)
	}
	if rec := invoke("--force"); rec.Decision != activation.Miss {
		t.Fatalf("invoke --force: %s, want a fresh run", rec.Decision)
	}
	explain := func() string {
		// Fold the table's alignment so assertions read as the text does.
		return strings.Join(strings.Fields(s.CLI("explain", "--fn", "thumbnail", "--bucket", "images", "--key", "a/cat.jpg")), " ")
	}
	x := explain()
	for _, want := range []string{"fingerprint sha256:", "dedup key", "would run false"} {
		if !strings.Contains(x, want) {
			t.Fatalf("explain lacks %q:\n%s", want, x)
		}
	}
	if out := s.CLI("purge", "--fn", "thumbnail"); !strings.Contains(out, "purged 1 record") {
		t.Fatalf("purge: %s", out)
	}
	if x := explain(); !strings.Contains(x, "would run true") {
		t.Fatalf("after purge explain says:\n%s", x)
	}
	if rec := invoke(); rec.Decision != activation.Miss {
		t.Fatalf("invoke after purge: %s, want a run", rec.Decision)
	}
	if st := s.Stats(); st.Events != 4 || st.Runs != 3 || st.Hits != 1 {
		t.Fatalf("stats %+v: want 4 events, 3 runs, 1 hit", st)
	}
	if got := s.CLI("fn", "get", "thumbnail"); !strings.Contains(got, `"size": "128"`) {
		t.Fatalf("fn get:\n%s", got)
	}
	s.CLI("fn", "delete", "thumbnail")
	if list := s.CLI("fn", "list"); strings.Contains(list, "thumbnail") {
		t.Fatalf("fn list after delete:\n%s", list)
	}
}

// TestGracefulDrain: SIGTERM while a function runs lets it finish and be
// recorded; after a restart nothing runs again.
func TestGracefulDrain(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := harness.StartServer(t, data, "--create-bucket", "inbox", "--create-bucket", "outbox")
	s.CLI("fn", "deploy", "slow", "--wasm", harness.Slowcopy, "--bucket", "inbox", "--output-bucket", "outbox", "--param", "ms=1500")
	if _, err := s.MinIO().PutObject(t.Context(), "inbox", "x.bin", strings.NewReader("payload"), 7, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	explain := func() string {
		return strings.Join(strings.Fields(s.CLI("explain", "--fn", "slow", "--bucket", "inbox", "--key", "x.bin")), " ")
	}
	testutil.Eventually(t, 30*time.Second, "the run to start", func() bool { return strings.Contains(explain(), "running") })
	s.Cmd.Process.Signal(syscall.SIGTERM)
	if err := s.Cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM, want a clean drain", err)
	}
	log := s.Log()
	if _, after, _ := strings.Cut(log, "draining"); !strings.Contains(after, `"msg":"stopped","events_in_flight":1,"events_finished":1,"events_unfinished":0`) {
		t.Errorf("after draining, serve should log stopped with the one event it finished:\n%s", log)
	}
	s.Start()
	st := s.Stats()
	if st.Events != 1 || st.Runs != 1 {
		t.Fatalf("after drain and restart: %+v, want the in-flight event recorded once", st)
	}
	time.Sleep(time.Second) // a redelivered event would show now
	if st := s.Stats(); st.Events != 1 {
		t.Fatalf("event processed again after restart: %+v", st)
	}
}
