// Package e2e drives the dedupfn binary as a user would: `dedupfn serve`
// in a subprocess, uploads through real S3 clients (aws cli, minio-go),
// and the CLI's own commands to deploy and inspect.
package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

const (
	accessKey = "e2e-access"
	secretKey = "e2e-secret-key-0123"
)

var (
	binDir    string
	dedupfn   string
	thumbnail string
	slowcopy  string
	// faulty is dedupfn built with -tags faultinject: DEDUPFN_FAULTS
	// injects index and store faults (cmd/dedupfn/faults_inject.go).
	faulty string
	// chaosaction is the chaos tests' process action (testdata/chaosaction).
	chaosaction string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dedupfn-e2e-*")
	if err != nil {
		panic(err)
	}
	binDir = dir
	dedupfn = filepath.Join(dir, "dedupfn")
	thumbnail = filepath.Join(dir, "thumbnail.wasm")
	slowcopy = filepath.Join(dir, "slowcopy.wasm")
	faulty = filepath.Join(dir, "dedupfn-faulty")
	chaosaction = filepath.Join(dir, "chaosaction")
	if err := testutil.BuildAll(
		testutil.Binary{Out: dedupfn, Pkg: "./cmd/dedupfn"},
		testutil.Binary{Out: faulty, Pkg: "./cmd/dedupfn", Tags: "faultinject"},
		testutil.Binary{Out: chaosaction, Pkg: "./test/e2e/testdata/chaosaction"},
		testutil.Binary{Out: thumbnail, Pkg: "./examples/thumbnail", Wasm: true},
		testutil.Binary{Out: slowcopy, Pkg: "./test/e2e/testdata/slowcopy", Wasm: true},
	); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one `dedupfn serve` subprocess.
type server struct {
	t       testing.TB
	dataDir string
	s3, api string
	cmd     *exec.Cmd
	bin     string   // the dedupfn binary; default dedupfn
	env     []string // extra environment
	log     *bytes.Buffer
	logMu   *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func startServer(t testing.TB, dataDir string, extra ...string) *server {
	t.Helper()
	s := &server{t: t, dataDir: dataDir, s3: testutil.FreeAddr(t), api: testutil.FreeAddr(t), log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	s.start(extra...)
	return s
}

func (s *server) start(extra ...string) {
	s.t.Helper()
	args := append([]string{"serve", "--data", s.dataDir, "--s3-addr", s.s3, "--api-addr", s.api}, extra...)
	s.cmd = exec.Command(cmp.Or(s.bin, dedupfn), args...)
	s.cmd.Env = append(os.Environ(), "DEDUPFN_ACCESS_KEY="+accessKey, "DEDUPFN_SECRET_KEY="+secretKey)
	s.cmd.Env = append(s.cmd.Env, s.env...)
	w := lockedWriter{s.logMu, s.log}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	cmd := s.cmd
	s.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if s.t.Failed() {
			s.logMu.Lock()
			s.t.Logf("dedupfn serve log:\n%s", s.log.String())
			s.logMu.Unlock()
		}
	})
	testutil.Eventually(s.t, 30*time.Second, "dedupfn serve /healthz", func() bool {
		resp, err := http.Get("http://" + s.api + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
}

// kill ends the server at once, as a crash would.
func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
}

// cli runs a dedupfn client command against the server and returns stdout.
func (s *server) cli(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(dedupfn, args...)
	cmd.Env = append(os.Environ(), "DEDUPFN_API=http://"+s.api)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("dedupfn %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func (s *server) stats() activation.Stats {
	s.t.Helper()
	var st activation.Stats
	if err := json.Unmarshal([]byte(s.cli("stats", "--json")), &st); err != nil {
		s.t.Fatal(err)
	}
	return st
}

func (s *server) waitEvents(n int64, timeout time.Duration) activation.Stats {
	s.t.Helper()
	var st activation.Stats
	testutil.Eventually(s.t, timeout, fmt.Sprintf("%d activations", n), func() bool {
		st = s.stats()
		return st.Events >= n
	})
	return st
}

func (s *server) minio() *minio.Client {
	s.t.Helper()
	c, err := minio.New(s.s3, &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Region: "us-east-1"})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func (s *server) aws(args ...string) {
	s.t.Helper()
	aws := testutil.Tool(s.t, "DEDUPFN_AWS", "bin/aws")
	cmd := exec.Command(aws, append([]string{"--endpoint-url", "http://" + s.s3}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+accessKey, "AWS_SECRET_ACCESS_KEY="+secretKey,
		"AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (s *server) activations() []activation.Record {
	s.t.Helper()
	var recs []activation.Record
	if err := json.Unmarshal([]byte(s.cli("activations", "--json", "--limit", "1000")), &recs); err != nil {
		s.t.Fatal(err)
	}
	return recs
}

func deployThumbnail(s *server) {
	s.cli("fn", "deploy", "thumbnail", "--wasm", thumbnail, "--bucket", "images",
		"--suffix", ".jpg", "--suffix", ".jpeg", "--suffix", ".png", "--output-bucket", "thumbnails", "--param", "size=128")
}

// TestQuickstart is the README's quickstart, step by step.
func TestQuickstart(t *testing.T) {
	s := startServer(t, t.TempDir(), "--create-bucket", "images", "--create-bucket", "thumbnails")
	deployThumbnail(s)
	testdata, _ := filepath.Abs("../../examples/thumbnail/testdata")

	s.aws("s3", "cp", filepath.Join(testdata, "cat.jpg"), "s3://images/a/cat.jpg")
	s.waitEvents(1, 60*time.Second)
	s.aws("s3", "cp", filepath.Join(testdata, "cat.jpg"), "s3://images/b/cat-copy.jpg")
	s.waitEvents(2, 30*time.Second)
	s.aws("s3", "cp", filepath.Join(testdata, "dog.png"), "s3://images/c/dog.png")
	st := s.waitEvents(3, 60*time.Second)

	if st.Events != 3 || st.Runs != 2 || st.Hits != 1 || st.Errors != 0 || st.SavedMS <= 0 {
		t.Fatalf("stats %+v, want events 3, runs 2, hits 1, errors 0, saved > 0", st)
	}
	got := map[string]activation.Decision{}
	for _, r := range s.activations() {
		got[r.Event.Key] = r.Decision
	}
	want := map[string]activation.Decision{"a/cat.jpg": "miss", "b/cat-copy.jpg": "hit", "c/dog.png": "miss"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("activations %v, want %v", got, want)
	}
	table := s.cli("activations")
	for _, w := range []string{"DECISION", "a/cat.jpg", "hit", "miss"} {
		if !strings.Contains(table, w) {
			t.Errorf("activations table lacks %q:\n%s", w, table)
		}
	}

	mc := s.minio()
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
	s := startServer(t, t.TempDir(), "--create-bucket", "images", "--create-bucket", "thumbnails", "--concurrency", "16")
	deployThumbnail(s)
	img, err := os.ReadFile("../../examples/thumbnail/testdata/cat.jpg")
	if err != nil {
		t.Fatal(err)
	}
	mc := s.minio()
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
	st := s.waitEvents(n, 120*time.Second)
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
	data := t.TempDir()
	s := startServer(t, data, "--create-bucket", "inbox", "--create-bucket", "outbox")
	s.cli("fn", "deploy", "slow", "--wasm", slowcopy, "--bucket", "inbox", "--output-bucket", "outbox", "--param", "ms=1500", "--lease", "2s")
	if _, err := s.minio().PutObject(t.Context(), "inbox", "x.bin", strings.NewReader("payload"), 7, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the run is under way
	s.kill()

	s.start()
	st := s.waitEvents(1, 60*time.Second)
	if st.Runs != 1 || st.Errors != 0 {
		t.Fatalf("stats after restart %+v, want the event run once", st)
	}
	obj, err := s.minio().GetObject(t.Context(), "outbox", "x.bin", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(obj); err != nil || buf.String() != "payload" {
		t.Fatalf("output %q, %v", buf.String(), err)
	}
}

func TestRefusesDefaultCredentialsBeyondLoopback(t *testing.T) {
	cmd := exec.Command(dedupfn, "serve", "--data", t.TempDir(), "--s3-addr", "0.0.0.0:0", "--api-addr", testutil.FreeAddr(t))
	cmd.Env = append(os.Environ(), "DEDUPFN_ACCESS_KEY=", "DEDUPFN_SECRET_KEY=")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "quickstart credentials") {
		t.Fatalf("serve on 0.0.0.0 with default credentials: err %v, output %s", err, out)
	}
	cmd = exec.Command(dedupfn, "serve", "--data", t.TempDir(), "--s3-addr", testutil.FreeAddr(t), "--api-addr", "0.0.0.0:0")
	cmd.Env = append(os.Environ(), "DEDUPFN_API_TOKEN=")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "DEDUPFN_API_TOKEN") {
		t.Fatalf("API on 0.0.0.0 without a token: err %v, output %s", err, out)
	}
}

func TestDeployRejectsBadModule(t *testing.T) {
	s := startServer(t, t.TempDir(), "--create-bucket", "images", "--create-bucket", "thumbnails")
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	os.WriteFile(bad, []byte("not a wasm module"), 0o644)
	cmd := exec.Command(dedupfn, "fn", "deploy", "bad", "--wasm", bad, "--bucket", "images", "--output-bucket", "thumbnails")
	cmd.Env = append(os.Environ(), "DEDUPFN_API=http://"+s.api)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot run") || !strings.Contains(string(out), "HTTP 400") {
		t.Fatalf("deploy of a corrupt module: err %v, output %s; want a 400 saying it cannot run", err, out)
	}
	if list := s.cli("fn", "list"); strings.Contains(list, "bad") {
		t.Fatalf("corrupt function was deployed:\n%s", list)
	}
}

// TestOperatorCommands drives invoke (with --force), explain, purge and
// fn get/delete through the CLI, as an operator would.
func TestOperatorCommands(t *testing.T) {
	s := startServer(t, t.TempDir(), "--create-bucket", "images", "--create-bucket", "thumbnails")
	deployThumbnail(s)
	img, _ := os.ReadFile("../../examples/thumbnail/testdata/cat.jpg")
	if _, err := s.minio().PutObject(t.Context(), "images", "a/cat.jpg", bytes.NewReader(img), int64(len(img)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	s.waitEvents(1, time.Minute)

	invoke := func(args ...string) activation.Record {
		var rec activation.Record
		out := s.cli(append([]string{"invoke", "thumbnail", "--bucket", "images", "--key", "a/cat.jpg", "--json"}, args...)...)
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
		return strings.Join(strings.Fields(s.cli("explain", "--fn", "thumbnail", "--bucket", "images", "--key", "a/cat.jpg")), " ")
	}
	x := explain()
	for _, want := range []string{"fingerprint sha256:", "dedup key", "would run false"} {
		if !strings.Contains(x, want) {
			t.Fatalf("explain lacks %q:\n%s", want, x)
		}
	}
	if out := s.cli("purge", "--fn", "thumbnail"); !strings.Contains(out, "purged 1 record") {
		t.Fatalf("purge: %s", out)
	}
	if x := explain(); !strings.Contains(x, "would run true") {
		t.Fatalf("after purge explain says:\n%s", x)
	}
	if rec := invoke(); rec.Decision != activation.Miss {
		t.Fatalf("invoke after purge: %s, want a run", rec.Decision)
	}
	if st := s.stats(); st.Events != 4 || st.Runs != 3 || st.Hits != 1 {
		t.Fatalf("stats %+v: want 4 events, 3 runs, 1 hit", st)
	}
	if got := s.cli("fn", "get", "thumbnail"); !strings.Contains(got, `"size": "128"`) {
		t.Fatalf("fn get:\n%s", got)
	}
	s.cli("fn", "delete", "thumbnail")
	if list := s.cli("fn", "list"); strings.Contains(list, "thumbnail") {
		t.Fatalf("fn list after delete:\n%s", list)
	}
}

// TestGracefulDrain: SIGTERM while a function runs lets it finish and be
// recorded; after a restart nothing runs again.
func TestGracefulDrain(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data, "--create-bucket", "inbox", "--create-bucket", "outbox")
	s.cli("fn", "deploy", "slow", "--wasm", slowcopy, "--bucket", "inbox", "--output-bucket", "outbox", "--param", "ms=1500")
	if _, err := s.minio().PutObject(t.Context(), "inbox", "x.bin", strings.NewReader("payload"), 7, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	explain := func() string {
		return strings.Join(strings.Fields(s.cli("explain", "--fn", "slow", "--bucket", "inbox", "--key", "x.bin")), " ")
	}
	testutil.Eventually(t, 30*time.Second, "the run to start", func() bool { return strings.Contains(explain(), "running") })
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM, want a clean drain", err)
	}
	s.logMu.Lock()
	log := s.log.String()
	s.logMu.Unlock()
	if _, after, _ := strings.Cut(log, "draining"); !strings.Contains(after, `"msg":"stopped","events_in_flight":1,"events_finished":1,"events_unfinished":0`) {
		t.Errorf("after draining, serve should log stopped with the one event it finished:\n%s", log)
	}
	s.start()
	st := s.stats()
	if st.Events != 1 || st.Runs != 1 {
		t.Fatalf("after drain and restart: %+v, want the in-flight event recorded once", st)
	}
	time.Sleep(time.Second) // a redelivered event would show now
	if st := s.stats(); st.Events != 1 {
		t.Fatalf("event processed again after restart: %+v", st)
	}
}
