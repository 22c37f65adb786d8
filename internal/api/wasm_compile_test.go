package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm/wasmtest"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

func wasmEnv(t *testing.T) *env {
	return newEnv(t, setup{runtimes: map[string]runtime.Runtime{"wasm": wasmtest.NewRuntime(t)}})
}

// Issue 17 item 11: a tenant's module of 40,000 blocks in one function
// compiled for 27 s at deploy; it must be refused at once, naming the limit.
func TestWasmCompileBomb_DeployRefused(t *testing.T) {
	e := wasmEnv(t)
	req := deployReq(fnDef("bomb", "wasm", "acme-in", "acme-out"), string(wasmtest.CompileBomb(40_000)))
	start := time.Now()
	code, body := e.do(t, "POST", "/v1/functions", acmeToken, req)
	took := time.Since(start)
	const want = "function 0 has 40000 blocks and branches, over the limit of 8192 (--wasm-max-function-branches)"
	if code != http.StatusBadRequest || !strings.Contains(body, want) {
		t.Fatalf("deploy of a 40,000-block bomb: %d %s, want 400 saying %q", code, body, want)
	}
	if took > 2*time.Second {
		t.Fatalf("refusing the bomb took %v, want < 2s", took)
	}
	// Real modules, the examples, still deploy.
	for _, ex := range []string{"copy", "thumbnail"} {
		mod := wasmtest.Build(t, filepath.Join(testutil.RepoRoot(t), "examples", ex))
		if code, body := e.do(t, "POST", "/v1/functions", acmeToken, deployReq(fnDef(ex, "wasm", "acme-in", "acme-out"), string(mod))); code != http.StatusOK {
			t.Fatalf("deploy examples/%s: %d %s", ex, code, body)
		}
	}
}

// Issue 17 item 11: a deploy's compile went on, holding a deploy slot,
// after its client had gone away.
func TestWasmCompile_DeployCancelledWithRequest(t *testing.T) {
	e := wasmEnv(t)
	// Legal but slow to compile in all (400 functions of 3,000 blocks).
	slow, _ := json.Marshal(deployReq(fnDef("slow", "wasm", "acme-in", "acme-out"), string(wasmtest.ManyBlocks(400, 3000))))
	done := make(chan struct{})
	for range 2 { // every deploy slot
		go func() {
			defer func() { done <- struct{}{} }()
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", e.ts.URL+"/v1/functions", bytes.NewReader(slow))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+acmeToken)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				t.Errorf("slow deploy answered %d before its client gave up", resp.StatusCode)
			}
		}()
	}
	<-done
	<-done
	// The slots are free again once the compiles have stopped, which is
	// at the next function boundary.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	quick, _ := json.Marshal(deployReq(fnDef("quick", "wasm", "acme-in", "acme-out"), string(wasmtest.CompileBomb(1))))
	req, _ := http.NewRequestWithContext(ctx, "POST", e.ts.URL+"/v1/functions", bytes.NewReader(quick))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+acmeToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("deploy after two abandoned slow deploys: %v (their compiles still hold the deploy slots)", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("deploy after two abandoned slow deploys: %d", resp.StatusCode)
	}
}
