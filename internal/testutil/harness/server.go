package harness

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
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

// CLIPoll is how often a wait polls a CLI command: each poll is a process.
const CLIPoll = 250 * time.Millisecond

// Server is one `dedupfn serve` subprocess. Set its fields before Start.
type Server struct {
	T       testing.TB
	DataDir string
	S3, API string // listen addresses
	Cmd     *exec.Cmd
	Bin     string // the dedupfn binary; default Dedupfn
	// Env is extra environment of serve and of the CLI commands run
	// against it (DEDUPFN_API_TOKEN: serve requires it, the CLI sends it);
	// the process's own stays as it is, so tests can run in parallel.
	Env   []string
	log   *bytes.Buffer
	logMu *sync.Mutex
}

// NewServer is a server on free loopback addresses, not started.
func NewServer(t testing.TB, dataDir string) *Server {
	t.Helper()
	return &Server{T: t, DataDir: dataDir, S3: testutil.FreeAddr(t), API: testutil.FreeAddr(t), log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
}

// StartServer starts a new server with the extra flags.
func StartServer(t testing.TB, dataDir string, extra ...string) *Server {
	t.Helper()
	s := NewServer(t, dataDir)
	s.Start(extra...)
	return s
}

// LockedWriter writes to B under Mu: a subprocess's output, read while
// it runs.
type LockedWriter struct {
	Mu *sync.Mutex
	B  *bytes.Buffer
}

func (w LockedWriter) Write(p []byte) (int, error) {
	w.Mu.Lock()
	defer w.Mu.Unlock()
	return w.B.Write(p)
}

// Start starts (or restarts) serve with the extra flags and waits until
// it is healthy; the test's cleanup stops it.
func (s *Server) Start(extra ...string) {
	s.T.Helper()
	args := append([]string{"serve", "--data", s.DataDir, "--s3-addr", s.S3, "--api-addr", s.API}, extra...)
	s.Cmd = exec.Command(cmp.Or(s.Bin, Dedupfn), args...)
	s.Cmd.Env = append(os.Environ(), "DEDUPFN_ACCESS_KEY="+AccessKey, "DEDUPFN_SECRET_KEY="+SecretKey)
	s.Cmd.Env = append(s.Cmd.Env, s.Env...)
	w := LockedWriter{s.logMu, s.log}
	s.Cmd.Stdout, s.Cmd.Stderr = w, w
	if err := s.Cmd.Start(); err != nil {
		s.T.Fatal(err)
	}
	cmd := s.Cmd
	s.T.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if s.T.Failed() {
			s.T.Logf("dedupfn serve log:\n%s", s.Log())
		}
	})
	testutil.Eventually(s.T, 30*time.Second, "dedupfn serve /healthz", func() bool {
		resp, err := http.Get("http://" + s.API + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
}

// Kill ends the server at once, as a crash would.
func (s *Server) Kill() {
	s.Cmd.Process.Signal(syscall.SIGKILL)
	s.Cmd.Wait()
}

// Log is everything the server wrote, across its restarts.
func (s *Server) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// LogLen and LogSince read the log from an offset.
func (s *Server) LogLen() int {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.Len()
}

func (s *Server) LogSince(n int) string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return string(s.log.Bytes()[n:])
}

// client is a dedupfn client command against the server.
func (s *Server) client(args ...string) *exec.Cmd {
	cmd := exec.Command(Dedupfn, args...)
	cmd.Env = append(append(os.Environ(), s.Env...), "DEDUPFN_API=http://"+s.API)
	return cmd
}

// CLI runs a dedupfn client command against the server and returns
// stdout, failing the test if the command fails.
func (s *Server) CLI(args ...string) string {
	s.T.Helper()
	cmd := s.client(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		s.T.Fatalf("dedupfn %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// CLIRun runs a dedupfn client command against the server and returns
// its stdout, stderr and exit status.
func (s *Server) CLIRun(args ...string) (stdout, stderr string, code int) {
	s.T.Helper()
	cmd := s.client(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		s.T.Fatalf("dedupfn %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// CLIErr runs a dedupfn client command that may fail: its combined
// output and error.
func (s *Server) CLIErr(args ...string) (string, error) {
	out, err := s.client(args...).CombinedOutput()
	return string(out), err
}

func (s *Server) Stats() activation.Stats {
	s.T.Helper()
	var st activation.Stats
	if err := json.Unmarshal([]byte(s.CLI("stats", "--json")), &st); err != nil {
		s.T.Fatal(err)
	}
	return st
}

// TryStats is Stats that tolerates a server being restarted.
func (s *Server) TryStats() (activation.Stats, bool) {
	var st activation.Stats
	out, err := s.client("stats", "--json").Output()
	if err != nil || json.Unmarshal(out, &st) != nil {
		return st, false
	}
	return st, true
}

// WaitEvents waits until the server has recorded n activations.
func (s *Server) WaitEvents(n int64, timeout time.Duration) activation.Stats {
	s.T.Helper()
	var st activation.Stats
	testutil.EventuallyEvery(s.T, timeout, CLIPoll, fmt.Sprintf("%d activations", n), func() bool {
		st = s.Stats()
		return st.Events >= n
	})
	return st
}

// Activations are the server's activation records, newest first.
func (s *Server) Activations() []activation.Record {
	s.T.Helper()
	var recs []activation.Record
	if err := json.Unmarshal([]byte(s.CLI("activations", "--json", "--limit", "1000")), &recs); err != nil {
		s.T.Fatal(err)
	}
	return recs
}

// MinIO is a client of the server's S3 endpoint.
func (s *Server) MinIO() *minio.Client {
	s.T.Helper()
	c, err := minio.New(s.S3, &minio.Options{Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), Region: "us-east-1"})
	if err != nil {
		s.T.Fatal(err)
	}
	return c
}

// AWS runs the aws cli against the server's S3 endpoint.
func (s *Server) AWS(args ...string) {
	s.T.Helper()
	aws := testutil.Tool(s.T, "DEDUPFN_AWS", "bin/aws")
	cmd := exec.Command(aws, append([]string{"--endpoint-url", "http://" + s.S3}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+AccessKey, "AWS_SECRET_ACCESS_KEY="+SecretKey,
		"AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		s.T.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// PutText uploads body as bucket/key through the S3 endpoint.
func (s *Server) PutText(bucket, key, body string) {
	s.T.Helper()
	if _, err := s.MinIO().PutObject(s.T.Context(), bucket, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{ContentType: "text/plain"}); err != nil {
		s.T.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

// ReadObject reads bucket/key, failing the test if it is missing.
func (s *Server) ReadObject(bucket, key string) []byte {
	s.T.Helper()
	obj, err := s.MinIO().GetObject(s.T.Context(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		s.T.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		s.T.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	return b
}
