package s3server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dedupfn/dedupfn/internal/httpserve"
	"github.com/dedupfn/dedupfn/internal/objects/s3server"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// floodConns opens n TCP connections to addr, half sending nothing and
// half a request line and one header without the blank line that ends
// them, and closes them when the test ends.
func floodConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%2 == 1 {
			if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\n")); err != nil {
				t.Fatalf("write partial header %d: %v", i, err)
			}
		}
	}
	return conns
}

// TestConnections_IdleFloodDoesNotDenyService: 1,010 idle TCP connections
// to the built-in endpoint (no credentials needed) must not make signed
// requests fail: on f13dda0 every ListBuckets got 503 while they were open.
func TestConnections_IdleFloodDoesNotDenyService(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	floodConns(t, srv.Endpoint(), 1010)
	mc, err := minio.New(srv.Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := mc.ListBuckets(ctx); err != nil {
		t.Fatalf("list buckets with 1010 idle connections open: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	}
}

// TestConnections_S3Deadlines: the endpoint closes a connection that sends
// nothing, one that sends part of its headers, one idle after a request,
// and one whose body trickles in one byte every 100 ms (short limits here:
// 300 ms, and 300 bytes every 300 ms).
func TestConnections_S3Deadlines(t *testing.T) {
	srv, err := s3server.New(s3server.Config{DataDir: filepath.Join(t.TempDir(), "data"), Addr: testutil.FreeAddr(t),
		AccessKey: access, SecretKey: secret, Limits: httpserve.Limits{ReadHeaderTimeout: 300 * time.Millisecond,
			IdleTimeout: 300 * time.Millisecond, MinRate: 1000, RateWindow: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	conns := floodConns(t, srv.Endpoint(), 20)
	idle := conns[0]
	fmt.Fprintf(idle, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", srv.Endpoint()) // 403: unsigned
	slow := conns[len(conns)-2]
	fmt.Fprintf(slow, "PUT /b/k HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\n\r\n", srv.Endpoint())
	go func() {
		for range 1000 {
			if _, err := slow.Write([]byte{'a'}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("connection %d still open 3 s later", i)
			}
		})
	}
	wg.Wait()
}
