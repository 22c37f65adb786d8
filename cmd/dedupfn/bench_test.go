package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dedupfn/dedupfn/internal/runtime/wasm/wasmtest"
)

// pkgDir is this package's directory, read before any test runs: the
// built-in S3 endpoint that other tests start in this process changes the
// working directory to its (temporary, later removed) data directory.
var pkgDir = func() string {
	d, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return d
}()

// TestBenchSmoke runs a short `dedupfn bench --json` as a user would (the
// binary starts its own serve) and checks the report: every key present
// and sane, runs == distinct contents. No timing is asserted: the
// figures belong to the machine.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds dedupfn and runs a bench")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "dedupfn")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = pkgDir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	wasmFile := filepath.Join(dir, "copy.wasm")
	if err := os.WriteFile(wasmFile, wasmtest.Build(t, filepath.Join(pkgDir, "..", "..", "examples", "copy")), 0o600); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(dir, "e2e.pprof")
	cmd := exec.CommandContext(t.Context(), bin, "bench", "--objects", "100", "--uploaders", "4", "--json", "--wasm", wasmFile, "--cpuprofile", prof)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dedupfn bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var rep map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("bench --json printed no JSON object: %v\n%s", err, stdout.String())
	}
	num := func(m map[string]any, k string) float64 {
		t.Helper()
		v, ok := m[k].(float64)
		if !ok {
			t.Fatalf("key %q missing or not a number in %s", k, stdout.String())
		}
		return v
	}
	for _, k := range []string{"raw_puts_per_s", "events_per_s", "ratio", "hit_p50_ms", "hit_p99_ms", "miss_overhead_p50_ms"} {
		if v := num(rep, k); v <= 0 {
			t.Errorf("%s = %v, want > 0", k, v)
		}
	}
	if p50, p99 := num(rep, "hit_p50_ms"), num(rep, "hit_p99_ms"); p99 < p50 {
		t.Errorf("hit p99 %v < p50 %v", p99, p50)
	}
	if c := num(rep, "ceiling_ratio"); c <= 0 || c >= 1 || num(rep, "function_alone_s") <= 0 {
		t.Errorf("ceiling_ratio %v, function_alone_s %v: want a ratio in (0, 1) from a positive time", c, num(rep, "function_alone_s"))
	}
	// The store-alone phase: its time, added to the function's, against
	// the e2e phase's; a hit's Copy and a miss's Put both measured.
	for _, k := range []string{"store_alone_s", "e2e_s", "store_ceiling_ratio", "store_alone_hit_write_p50_ms", "store_alone_hit_write_p99_ms", "store_alone_miss_write_p50_ms"} {
		if v := num(rep, k); v <= 0 {
			t.Errorf("%s = %v, want > 0", k, v)
		}
	}
	if sa, e2e := num(rep, "store_alone_s"), num(rep, "e2e_s"); sa >= e2e*10 {
		t.Errorf("store_alone_s %v against e2e_s %v: the store work alone cannot take 10× the whole pipeline's", sa, e2e)
	}
	if got, want := num(rep, "store_ceiling_ratio"), (num(rep, "store_alone_s")+num(rep, "function_alone_s"))/num(rep, "e2e_s"); got < want*0.999 || got > want*1.001 {
		t.Errorf("store_ceiling_ratio %v, want (store_alone_s + function_alone_s) / e2e_s = %v", got, want)
	}
	for _, f := range []string{prof, prof + ".block", prof + ".mutex"} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("--cpuprofile: %s missing or empty (%v)", f, err)
		}
	}
	if runs, distinct := num(rep, "runs"), num(rep, "distinct"); runs != 50 || distinct != 50 {
		t.Errorf("runs %v, distinct %v: want 50 and 50 for 100 uploads with 50%% duplicates", runs, distinct)
	}
	if e := num(rep, "errors"); e != 0 {
		t.Errorf("errors = %v", e)
	}
	base, ok := rep["baseline"].(map[string]any)
	if !ok {
		t.Fatalf("no baseline comparison in %s", stdout.String())
	}
	if e := num(base, "errors"); e != 0 {
		t.Errorf("baseline errors = %v", e)
	}
	if runs := num(base, "runs"); runs != 100 {
		t.Errorf("baseline runs = %v, want 100 (one per upload with --no-dedup)", runs)
	}
	if r := num(base, "runs_ratio"); r != 2 {
		t.Errorf("baseline runs_ratio = %v, want 2", r)
	}
	for _, k := range []string{"function_ms", "wall_s", "dedup_function_ms", "dedup_wall_s", "function_time_ratio", "wall_time_ratio"} {
		if v := num(base, k); v <= 0 {
			t.Errorf("baseline %s = %v, want > 0", k, v)
		}
	}
}
