package s3server_test

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/s3server"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// TestStartWritesNothingToStdout: stdout is the CLI's output; the
// gateway's own messages (versitygw prints "No IAM service configured,
// enabling single account mode" there by default) must not reach it.
// Not parallel: it swaps os.Stdout for the whole process.
func TestStartWritesNothingToStdout(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	orig := os.Stdout
	os.Stdout = w
	restore := func() { os.Stdout = orig }
	defer restore()
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		got <- string(b)
	}()

	srv, err := s3server.New(s3server.Config{DataDir: t.TempDir(), Addr: testutil.FreeAddr(t), AccessKey: access, SecretKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatalf("start: %v", err)
	}
	c := newClient(t, srv)
	if err := c.MakeBucket(t.Context(), "quiet"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(t.Context(), "quiet", "k", bytes.NewReader([]byte("x")), 1, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	restore()
	w.Close()
	if out := <-got; strings.TrimSpace(out) != "" {
		t.Fatalf("starting the endpoint wrote to stdout:\n%s", out)
	}
}
