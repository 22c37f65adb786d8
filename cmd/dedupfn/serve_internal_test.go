package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestApplyConfigFile(t *testing.T) {
	cmd := newServeCmd()
	cfg := filepath.Join(t.TempDir(), "dedupfn.yaml")
	os.WriteFile(cfg, []byte("data: /var/lib/dedupfn\nconcurrency: 8\ncreate-bucket: [images, thumbnails]\napi-addr: 127.0.0.1:9999\n"), 0o600)
	fs := cmd.Flags()
	if err := fs.Parse([]string{"--api-addr", "127.0.0.1:7777"}); err != nil {
		t.Fatal(err)
	}
	if err := applyConfigFile(fs, cfg); err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{
		"data": "/var/lib/dedupfn", "concurrency": "8", "create-bucket": "[images,thumbnails]",
		"api-addr": "127.0.0.1:7777", // the command line wins
	} {
		if got := fs.Lookup(flag).Value.String(); got != want {
			t.Errorf("--%s = %s, want %s", flag, got, want)
		}
	}
	os.WriteFile(cfg, []byte("dta: typo\n"), 0o600)
	if err := applyConfigFile(newServeCmd().Flags(), cfg); err == nil || !strings.Contains(err.Error(), `unknown key "dta"`) {
		t.Fatalf("typo in config: %v", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9000": true, "localhost:80": true, "[::1]:8080": true,
		"0.0.0.0:9000": false, ":9000": false, "10.1.2.3:80": false, "garbage": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestOpenInputs_PublicURL: get_url's base is --public-url, else the API
// address (loopback when it listens everywhere); a malformed one is refused.
func TestOpenInputs_PublicURL(t *testing.T) {
	for _, c := range []struct{ api, public, want string }{
		{"127.0.0.1:8080", "", "http://127.0.0.1:8080"},
		{"0.0.0.0:8080", "", "http://127.0.0.1:8080"},
		{":8080", "", "http://127.0.0.1:8080"},
		{"[::1]:8080", "", "http://[::1]:8080"},
		{"127.0.0.1:8080", "https://dedupfn.example/", "https://dedupfn.example"},
	} {
		in, err := openInputs(serveOptions{apiAddr: c.api, publicURL: c.public}, "", slog.New(slog.DiscardHandler))
		if err != nil || in.Base() != c.want {
			t.Errorf("api %s, public %q: %v %v, want %s", c.api, c.public, in, err, c.want)
		}
	}
	if _, err := openInputs(serveOptions{apiAddr: "127.0.0.1:8080", publicURL: "dedupfn.example:8080"}, "", slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--public-url") {
		t.Errorf("a public URL without scheme: %v, want a --public-url error", err)
	}
}
