package main

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

	"github.com/dedupfn/dedupfn/internal/testutil"
)

// TestConnections_ServeListenersTimeOut: both of serve's listeners, the
// API and the built-in S3 endpoint, close connections that send nothing,
// send part of their headers, sit idle after a request, or trickle a body
// (with the limits set short by flags). On f13dda0 the API kept idle
// keep-alive connections and slow bodies for ever, and the S3 port every
// one of these.
func TestConnections_ServeListenersTimeOut(t *testing.T) {
	for _, env := range []string{"DEDUPFN_ACCESS_KEY", "DEDUPFN_SECRET_KEY", "DEDUPFN_API_TOKEN", "DEDUPFN_TENANT_TOKENS"} {
		t.Setenv(env, "")
	}
	apiAddr, s3Addr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--data", filepath.Join(t.TempDir(), "data"), "--api-addr", apiAddr, "--s3-addr", s3Addr,
			"--read-header-timeout", "500ms", "--idle-timeout", "500ms", "--min-body-rate", "1000", "--body-rate-window", "500ms"})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	for _, addr := range []string{apiAddr, s3Addr} {
		testutil.WaitTCP(t, addr, 30*time.Second)
	}
	for _, l := range []struct{ name, addr, bodyPath string }{{"API", apiAddr, "/v1/functions"}, {"S3", s3Addr, "/b/k"}} {
		t.Run(l.name, func(t *testing.T) {
			opens := map[string]func(c net.Conn){
				"Nothing":       func(net.Conn) {},
				"PartialHeader": func(c net.Conn) { fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n", l.addr) },
				"IdleKeepAlive": func(c net.Conn) { fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", l.addr) },
				"SlowBody": func(c net.Conn) {
					fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", l.bodyPath, l.addr)
					go func() {
						for range 1000 {
							if _, err := c.Write([]byte{' '}); err != nil {
								return
							}
							time.Sleep(100 * time.Millisecond)
						}
					}()
				},
			}
			conns := map[string]net.Conn{}
			for name, open := range opens {
				c, err := net.Dial("tcp", l.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				open(c)
				conns[name] = c
			}
			var wg sync.WaitGroup
			for name, c := range conns {
				wg.Go(func() {
					c.SetReadDeadline(time.Now().Add(3 * time.Second))
					if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
						t.Errorf("%s: connection still open 3 s later", name)
					}
				})
			}
			wg.Wait()
		})
	}
}
