package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestDeployParamsTooLarge (issue 17 item 12): params over the cap (64 KiB
// by default, serve --max-params) are refused with 413 naming the limit,
// and nothing is stored; on f13dda0 25 MiB of params were accepted and
// re-read on every refresh.
func TestDeployParamsTooLarge(t *testing.T) {
	e := newEnv(t, setup{})
	deploy := func(params map[string]string) (int, string) {
		return e.do(t, "POST", "/v1/functions", adminToken, map[string]any{"function": map[string]any{
			"name": "p", "runtime": "wasm", "params": params,
			"trigger": map[string]any{"bucket": "acme-in"}, "output": map[string]any{"bucket": "acme-out"},
		}})
	}
	code, body := deploy(map[string]string{"blob": strings.Repeat("p", 64<<10)})
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "64 KiB") || !strings.Contains(body, "--max-params") {
		t.Fatalf("deploy with 64 KiB of params: %d %s, want 413 naming the 64 KiB limit", code, body)
	}
	if fns := e.reg.List(""); len(fns) != 0 {
		t.Fatalf("the refused deploy was stored: %d functions", len(fns))
	}
	if code, body := deploy(map[string]string{"blob": strings.Repeat("p", 60<<10)}); code != http.StatusOK {
		t.Fatalf("deploy with 60 KiB of params: %d %s, want 200", code, body)
	}
}
