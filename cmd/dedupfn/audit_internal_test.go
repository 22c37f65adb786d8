package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/registry"
)

func markedFn(name, tenant, policy string) registry.Function {
	return registry.Function{
		Tenant: tenant, Name: name, Version: "v-" + name,
		Audit: registry.Audit{Rate: 0.01, OnMismatch: policy},
		Nondeterministic: &registry.Nondeterministic{
			Version: "v-" + name, At: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC), Activation: "act-" + name,
			RecordedDigest: strings.Repeat("a", 64), AuditDigest: strings.Repeat("b", 64),
		},
	}
}

func TestStats_ListsNondeterministicFunctions(t *testing.T) {
	fns := []registry.Function{
		markedFn("zeta", "t1", registry.OnMismatchWarn),
		{Tenant: "t1", Name: "pure", Version: "v1"},
		markedFn("alpha", "t1", registry.OnMismatchDisableDedup),
	}
	out := statsOutput{Stats: activation.Stats{Events: 7, Runs: 3, Hits: 4}, Nondeterministic: nondeterministicFns(fns)}
	var buf bytes.Buffer
	if err := writeStats(&buf, out); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	totals, list, ok := strings.Cut(text, "nondeterministic functions (2)")
	if !ok {
		t.Fatalf("no list of nondeterministic functions in:\n%s", text)
	}
	if !strings.Contains(totals, "events") || !strings.Contains(totals, "time saved") {
		t.Fatalf("totals missing before the list:\n%s", text)
	}
	alpha, zeta := strings.Index(list, "alpha"), strings.Index(list, "zeta")
	if alpha < 0 || zeta < alpha || strings.Contains(list, "pure") {
		t.Fatalf("list should hold alpha then zeta, not pure:\n%s", list)
	}
	for _, want := range []string{"v-alpha", "disable-dedup", "warn", "act-alpha", strings.Repeat("a", 12), strings.Repeat("b", 12)} {
		if !strings.Contains(list, want) {
			t.Errorf("list lacks %q:\n%s", want, list)
		}
	}

	buf.Reset()
	if err := writeStats(&buf, statsOutput{Stats: out.Stats}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "nondeterministic") {
		t.Fatalf("a list without nondeterministic functions:\n%s", buf.String())
	}
}

func TestStats_JSON(t *testing.T) {
	b, _ := json.Marshal(statsOutput{Stats: activation.Stats{Events: 2, Hits: 1}})
	if string(b) != `{"events":2,"runs":0,"hits":1,"waits":0,"errors":0,"skipped":0,"deletes":0,"dead_letters":0,"function_ms":0,"saved_ms":0}` {
		t.Fatalf("stats --json without nondeterministic functions changed shape: %s", b)
	}
	b, _ = json.Marshal(statsOutput{Stats: activation.Stats{Events: 2}, Nondeterministic: nondeterministicFns([]registry.Function{markedFn("f", "t", "")})})
	var got struct {
		Events           int64
		Nondeterministic []map[string]any
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Events != 2 || len(got.Nondeterministic) != 1 {
		t.Fatalf("stats --json %s", b)
	}
	n := got.Nondeterministic[0]
	for k, v := range map[string]any{"tenant": "t", "function": "f", "version": "v-f", "on_mismatch": "warn", "activation": "act-f", "audit_digest": strings.Repeat("b", 64)} {
		if n[k] != v {
			t.Errorf("nondeterministic[0].%s = %v, want %v (%s)", k, n[k], v, b)
		}
	}
}

func TestWarnNondeterministic(t *testing.T) {
	var buf bytes.Buffer
	warnNondeterministic(&buf, registry.Function{Name: "pure"})
	if buf.Len() != 0 {
		t.Fatalf("warning for an unmarked function: %q", buf.String())
	}
	for policy, effect := range map[string]string{
		registry.OnMismatchWarn:         "still reused",
		registry.OnMismatchDisableDedup: "every event runs it",
	} {
		buf.Reset()
		warnNondeterministic(&buf, markedFn("f", "t", policy))
		for _, want := range []string{"NONDETERMINISTIC", "v-f", "act-f", strings.Repeat("a", 64), strings.Repeat("b", 64), effect} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("%s: warning lacks %q: %s", policy, want, buf.String())
			}
		}
	}
}

// deployWith runs fn deploy with args against a fake API and returns
// the function it sent.
func deployWith(t *testing.T, args ...string) registry.Function {
	t.Helper()
	var sent api.DeployRequest
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/functions" {
			http.NotFound(w, r)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&sent); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f := sent.Function
		f.Version = "v1"
		json.NewEncoder(w).Encode(api.DeployResponse{Function: f, NewVersion: true})
	}))
	defer ts.Close()
	wasm := filepath.Join(t.TempDir(), "f.wasm")
	if err := os.WriteFile(wasm, []byte("\x00asm"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := newFnDeployCmd()
	cmd.SetArgs(append([]string{"f", "--api", ts.URL, "--token", "", "--wasm", wasm, "--bucket", "in", "--output-bucket", "out"}, args...))
	cmd.SetContext(t.Context())
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	return sent.Function
}

func TestFnDeploy_AuditFlags(t *testing.T) {
	if f := deployWith(t); f.Audit != (registry.Audit{}) {
		t.Fatalf("no audit flags sent %+v, want no audit", f.Audit)
	}
	if f := deployWith(t, "--audit-rate", "0.01"); f.Audit != (registry.Audit{Rate: 0.01, OnMismatch: registry.OnMismatchWarn}) {
		t.Fatalf("--audit-rate 0.01 sent %+v", f.Audit)
	}
	if f := deployWith(t, "--audit-rate", "1", "--on-mismatch", "disable-dedup"); f.Audit != (registry.Audit{Rate: 1, OnMismatch: registry.OnMismatchDisableDedup}) {
		t.Fatalf("--audit-rate 1 --on-mismatch disable-dedup sent %+v", f.Audit)
	}
}
