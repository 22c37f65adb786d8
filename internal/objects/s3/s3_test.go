package s3_test

import (
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/objectstest"
	"github.com/dedupfn/dedupfn/internal/objects/s3"
	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// TestConformanceMinIO runs the objects suite against a real MinIO server.
func TestConformanceMinIO(t *testing.T) {
	m := peers.StartMinIO(t, peers.MinIOOptions{})
	objectstest.Run(t, func(tb testing.TB) objects.Store {
		st, err := objects.Open(t.Context(), m.URL(), objects.Options{})
		if err != nil {
			tb.Fatalf("open %s: %v", m.URL(), err)
		}
		return st
	})
}

// TestPermanentStoreErrorsMinIO runs the error-classification suite
// against a real MinIO server.
func TestPermanentStoreErrorsMinIO(t *testing.T) {
	m := peers.StartMinIO(t, peers.MinIOOptions{})
	open := func(tb testing.TB, endpoint, secret string) objects.Store {
		tb.Helper()
		c, err := s3.New(endpoint, false, m.AccessKey, secret, "", nil)
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
	objectstest.RunErrors(t, objectstest.ErrorStores{
		Store:       func(tb testing.TB) objects.Store { return open(tb, m.Endpoint, m.SecretKey) },
		WrongSecret: func(tb testing.TB) objects.Store { return open(tb, m.Endpoint, "wrong-secret-key") },
		Unreachable: func(tb testing.TB) objects.Store { return open(tb, testutil.FreeAddr(tb), m.SecretKey) },
	})
}

func TestOpenURL(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		opts    objects.Options
		env     map[string]string
		wantErr string
	}{
		{name: "UserInfo", url: "s3://key:secret@127.0.0.1:9000?tls=false&region=eu-west-1"},
		{name: "OptionsCredentials", url: "s3://127.0.0.1:9000?tls=false", opts: objects.Options{AccessKey: "k", SecretKey: "s"}},
		{name: "EnvCredentials", url: "s3://127.0.0.1:9000", env: map[string]string{s3.EnvAccessKey: "k", s3.EnvSecretKey: "s"}},
		{name: "NoHost", url: "s3://key:secret@/bucket", wantErr: "has no host"},
		{name: "NoCredentials", url: "s3://127.0.0.1:9000", wantErr: "missing credentials"},
		{name: "NoSecretInURL", url: "s3://key@127.0.0.1:9000", wantErr: "missing credentials"},
		{name: "BadTLS", url: "s3://k:s@127.0.0.1:9000?tls=maybe", wantErr: `tls must be true or false, got "maybe"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(s3.EnvAccessKey, "")
			t.Setenv(s3.EnvSecretKey, "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			st, err := objects.Open(t.Context(), tc.url, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open(%q) = %v, want error containing %q", tc.url, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret@") {
					t.Errorf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			c := st.(*s3.Client)
			if got := c.Minio().EndpointURL().Host; got != "127.0.0.1:9000" {
				t.Errorf("endpoint = %s, want 127.0.0.1:9000", got)
			}
			wantScheme := "https"
			if strings.Contains(tc.url, "tls=false") {
				wantScheme = "http"
			}
			if got := c.Minio().EndpointURL().Scheme; got != wantScheme {
				t.Errorf("scheme = %s, want %s", got, wantScheme)
			}
			st.Close()
		})
	}
}
