package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/testutil"
)

// TestWeakSecretsRefusedOffLoopback: a token or secret served beyond
// loopback must have 16+ characters; on loopback any non-empty one will do.
func TestWeakSecretsRefusedOffLoopback(t *testing.T) {
	tests := []struct {
		name, secret, addr, want string
	}{
		{"OneCharWildcard", "x", "0.0.0.0:8080", "DEDUPFN_API_TOKEN must be at least 16 characters to serve on 0.0.0.0:8080, got 1"},
		{"FifteenAllInterfaces", "0123456789abcde", ":8080", "at least 16 characters"},
		{"ShortOnLANAddress", "short-secret", "10.1.2.3:9000", "got 12"},
		{"EmptyOffLoopback", "", "[::]:9000", "got 0"},
		{"SixteenWildcard", "0123456789abcdef", "0.0.0.0:8080", ""},
		{"ShortOnLoopback", "x", "127.0.0.1:8080", ""},
		{"ShortOnLocalhost", "x", "localhost:8080", ""},
		{"ShortOnIPv6Loopback", "x", "[::1]:8080", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSecret("DEDUPFN_API_TOKEN", tc.secret, tc.addr)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("checkSecret(%q on %s) = %v, want accepted", tc.secret, tc.addr, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkSecret(%q on %s) = %v, want error containing %q", tc.secret, tc.addr, err, tc.want)
			}
			if len(tc.secret) >= 4 && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q reveals the secret", err)
			}
		})
	}
}

// TestServeRefusesWeakSecretsOffLoopback: `serve` itself refuses a short
// API token on a non-loopback API address and a short S3 secret on a
// non-loopback built-in endpoint, before it opens anything.
func TestServeRefusesWeakSecretsOffLoopback(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		apiAddr, s3 string
		want        string
	}{
		{
			name:    "APIToken",
			env:     map[string]string{"DEDUPFN_API_TOKEN": "x"},
			apiAddr: "0.0.0.0", s3: "127.0.0.1",
			want: "DEDUPFN_API_TOKEN must be at least 16 characters",
		},
		{
			name:    "S3Secret",
			env:     map[string]string{"DEDUPFN_ACCESS_KEY": "uploader", "DEDUPFN_SECRET_KEY": "x", "DEDUPFN_API_TOKEN": "0123456789abcdef"},
			apiAddr: "127.0.0.1", s3: "0.0.0.0",
			want: "DEDUPFN_SECRET_KEY must be at least 16 characters",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"DEDUPFN_ACCESS_KEY", "DEDUPFN_SECRET_KEY", "DEDUPFN_API_TOKEN", "DEDUPFN_TENANT_TOKENS"} {
				t.Setenv(k, tc.env[k])
			}
			port := func() string { _, p, _ := strings.Cut(testutil.FreeAddr(t), ":"); return p }
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, []string{"serve", "--data", filepath.Join(t.TempDir(), "data"),
					"--api-addr", tc.apiAddr + ":" + port(), "--s3-addr", tc.s3 + ":" + port()})
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				cancel()
				<-done
				t.Fatalf("serve with a weak secret off loopback kept running")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve: %v, want error containing %q", err, tc.want)
			}
		})
	}
}
