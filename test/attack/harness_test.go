// Package attack drives a real `dedupfn serve` from outside with the
// attacks of docs/security.md: poisoned results (MD5 collisions, a
// get_url overwrite race, a recorded output overwritten), floods (idle
// connections, slow bodies, compile bombs) and tenant probes (explain,
// force, purge, metrics). Each attack is a subtest of TestAttacks; the
// suite prints a table of attack, expected and observed.
package attack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

const (
	accessKey   = "attack-access"
	secretKey   = "attack-secret-key-0123"
	adminToken  = "admin-token-0123456789"
	acmeToken   = "acme-token-0123456789"
	globexToken = "globex-token-0123456789"
)

var (
	dedupfnBin  string
	copyWasm    string
	fetchAction string
)

// row is one line of the suite's table.
type row struct{ attack, expected, observed, result string }

var (
	rowsMu sync.Mutex
	rows   []row
)

// report records what an attack expected and observed; the subtest fails
// on its own assertions, and the table shows the outcome.
func report(t *testing.T, expected, observed string) {
	t.Helper()
	t.Cleanup(func() {
		res := "ok"
		if t.Failed() {
			res = "FAILED"
		}
		rowsMu.Lock()
		rows = append(rows, row{t.Name(), expected, observed, res})
		rowsMu.Unlock()
	})
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dedupfn-attack-*")
	if err != nil {
		panic(err)
	}
	dedupfnBin = filepath.Join(dir, "dedupfn")
	copyWasm = filepath.Join(dir, "copy.wasm")
	fetchAction = filepath.Join(dir, "fetchaction")
	if err := testutil.BuildAll(
		testutil.Binary{Out: dedupfnBin, Pkg: "./cmd/dedupfn"},
		testutil.Binary{Out: fetchAction, Pkg: "./test/attack/testdata/fetchaction"},
		testutil.Binary{Out: copyWasm, Pkg: "./examples/copy", Wasm: true},
	); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	printTable(os.Stdout)
	os.RemoveAll(dir)
	os.Exit(code)
}

func printTable(w io.Writer) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	if len(rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTACK\tEXPECTED\tOBSERVED\tRESULT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.TrimPrefix(r.attack, "TestAttacks/"), r.expected, r.observed, r.result)
	}
	tw.Flush()
}

// server is one `dedupfn serve` with an admin and two tenants:
// acme (acme-in, acme-out) and globex (globex-in, globex-out).
type server struct {
	t       *testing.T
	s3, api string
	cmd     *exec.Cmd
	logMu   sync.Mutex
	log     bytes.Buffer
}

func (s *server) Write(p []byte) (int, error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.Write(p)
}

var buckets = []string{"acme-in", "acme-out", "globex-in", "globex-out", "ow-in", "ow-out", "dots", "dots-out"}

func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	return startServerEnv(t, nil, extra...)
}

// startServerEnv is startServer with extra environment.
func startServerEnv(t *testing.T, env []string, extra ...string) *server {
	t.Helper()
	s := &server{t: t, s3: testutil.FreeAddr(t), api: testutil.FreeAddr(t)}
	args := []string{"serve", "--data", t.TempDir(), "--s3-addr", s.s3, "--api-addr", s.api}
	for _, b := range buckets {
		args = append(args, "--create-bucket", b)
	}
	s.cmd = exec.Command(dedupfnBin, append(args, extra...)...)
	s.cmd.Env = append(os.Environ(),
		"DEDUPFN_ACCESS_KEY="+accessKey, "DEDUPFN_SECRET_KEY="+secretKey,
		"DEDUPFN_API_TOKEN="+adminToken,
		"DEDUPFN_TENANT_TOKENS=acme="+acmeToken+":acme-in,acme-out;globex="+globexToken+":globex-in,globex-out")
	s.cmd.Env = append(s.cmd.Env, env...)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { s.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		done := exited
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			s.logMu.Lock()
			t.Logf("dedupfn serve log:\n%s", s.log.String())
			s.logMu.Unlock()
		}
	})
	testutil.Eventually(t, 30*time.Second, "dedupfn serve /healthz", func() bool {
		select {
		case <-exited:
			s.logMu.Lock()
			defer s.logMu.Unlock()
			t.Fatalf("dedupfn serve exited at start:\n%s", s.log.String())
		default:
		}
		resp, err := http.Get("http://" + s.api + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return s
}

// client is an API client with token: admin, acme or globex.
func (s *server) client(token string) *api.Client {
	return &api.Client{BaseURL: "http://" + s.api, Token: token, HTTP: &http.Client{Timeout: time.Minute}}
}

func (s *server) minio() *minio.Client {
	s.t.Helper()
	c, err := minio.New(s.s3, &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Region: "us-east-1"})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func (s *server) put(bucket, key string, data []byte, meta map[string]string) {
	s.t.Helper()
	_, err := s.minio().PutObject(s.t.Context(), bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{UserMetadata: meta})
	if err != nil {
		s.t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

// get returns an object's bytes, or nil when it does not exist.
func (s *server) get(bucket, key string) []byte {
	s.t.Helper()
	obj, err := s.minio().GetObject(s.t.Context(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		s.t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return nil
	}
	if err != nil {
		s.t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	return b
}

// activations returns the records of the admin's view (every tenant).
func (s *server) activations() []activation.Record {
	s.t.Helper()
	recs, err := s.client(adminToken).Activations(s.t.Context(), "", 1000)
	if err != nil {
		s.t.Fatal(err)
	}
	return recs
}

// waitActivations waits until at least n activations match.
func (s *server) waitActivations(n int, timeout time.Duration, match func(activation.Record) bool) []activation.Record {
	s.t.Helper()
	var got []activation.Record
	testutil.Eventually(s.t, timeout, fmt.Sprintf("%d activations", n), func() bool {
		got = got[:0]
		for _, r := range s.activations() {
			if match == nil || match(r) {
				got = append(got, r)
			}
		}
		return len(got) >= n
	})
	return got
}

func onKey(bucket, key string) func(activation.Record) bool {
	return func(r activation.Record) bool { return r.Event.Bucket == bucket && r.Event.Key == key }
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func short(b []byte) string {
	if b == nil {
		return "(none)"
	}
	return "sha256 " + sha(b)[:12]
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func deploy(t *testing.T, c *api.Client, req api.DeployRequest) (api.DeployResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	return c.Deploy(ctx, req)
}
