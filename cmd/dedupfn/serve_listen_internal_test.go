package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/testutil"
)

// TestServeFailsWhenAddressInUse: `serve` whose API or built-in S3 port is
// held by another process (on 127.0.0.1 or on all interfaces) fails with
// "address already in use" instead of running against that process.
func TestServeFailsWhenAddressInUse(t *testing.T) {
	for _, env := range []string{"DEDUPFN_ACCESS_KEY", "DEDUPFN_SECRET_KEY", "DEDUPFN_API_TOKEN", "DEDUPFN_TENANT_TOKENS"} {
		t.Setenv(env, "")
	}
	tests := []struct {
		name, flag, listen string
	}{
		{"APILoopback", "--api-addr", "127.0.0.1:0"},
		{"APIWildcard", "--api-addr", "0.0.0.0:0"},
		{"S3Loopback", "--s3-addr", "127.0.0.1:0"},
		{"S3Wildcard", "--s3-addr", "0.0.0.0:0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			taken := net.JoinHostPort("127.0.0.1", port)
			addrs := map[string]string{"--api-addr": testutil.FreeAddr(t), "--s3-addr": testutil.FreeAddr(t)}
			addrs[tc.flag] = taken
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, []string{"serve", "--data", filepath.Join(t.TempDir(), "data"),
					"--api-addr", addrs["--api-addr"], "--s3-addr", addrs["--s3-addr"]})
			}()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				cancel()
				<-done
				t.Fatalf("serve with %s %s taken kept running", tc.flag, taken)
			}
			if err == nil || !strings.Contains(err.Error(), "address already in use") {
				t.Fatalf("serve with %s %s taken: %v, want an error containing %q", tc.flag, taken, err, "address already in use")
			}
		})
	}
}
