package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// fakeAPI serves each path's JSON body, as a dedupfn server would.
func fakeAPI(t *testing.T, bodies map[string]any) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// runCmd runs cmd with args and returns its stdout.
func runCmd(t *testing.T, cmd *cobra.Command, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("%s %v: %v\n%s", cmd.Name(), args, err, stderr.String())
	}
	return stdout.String()
}

// panicStack is an error as a crashing function leaves it: many lines,
// tabs, and a trailing newline.
const panicStack = "function: exit status 2: panic: runtime error: index out of range [3] with length 3\n\n" +
	"goroutine 1 [running]:\nmain.main()\n\t/src/thumb/main.go:12 +0x1d\n"

func TestTables_MultiLineErrorIsOneLine(t *testing.T) {
	recs := []activation.Record{
		{ID: "aaaaaaaaaaaaaaaa", Function: "thumb", Version: "v1", Event: activation.Object{Bucket: "in", Key: "a.jpg"},
			Decision: activation.Error, DeadLetter: true, Error: panicStack, Start: time.Now()},
		{ID: "bbbbbbbbbbbbbbbb", Function: "thumb", Version: "v1", Event: activation.Object{Bucket: "in", Key: "b.jpg"},
			Decision: activation.Error, Error: "stderr: bad input\n", Start: time.Now()},
	}
	apiURL := fakeAPI(t, map[string]any{"/v1/activations": recs, "/v1/dlq": recs})
	for _, args := range [][]string{{"activations"}, {"dlq", "list"}} {
		cmd := newRootCmd()
		out := runCmd(t, cmd, append(args, "--api", apiURL)...)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("%v: want a header and one line per record, got %d lines:\n%s", args, len(lines), out)
		}
		if !strings.Contains(lines[1], "panic: runtime error: index out of range") || !strings.HasSuffix(lines[1], "…") {
			t.Errorf("%v: the panic's row should start its error and end with …: %q", args, lines[1])
		}
		if !strings.HasSuffix(lines[2], "stderr: bad input") {
			t.Errorf("%v: a trailing newline should be dropped: %q", args, lines[2])
		}

		out = runCmd(t, newRootCmd(), append(args, "--api", apiURL, "--json")...)
		var got []activation.Record
		if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 || got[0].Error != panicStack {
			t.Errorf("%v --json should keep the whole error (err %v):\n%s", args, err, out)
		}
	}
}

func TestStats_WaitsAreAmongHits(t *testing.T) {
	var buf bytes.Buffer
	if err := writeStats(&buf, statsOutput{Stats: activation.Stats{Events: 20, Runs: 8, Hits: 12, Waits: 10}}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "12, 10 of them after waiting") {
		t.Errorf("stats should say the waits are among the hits:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "waits") {
			t.Errorf("a waits line reads as counted apart from the hits: %q", line)
		}
	}
}

// TestStats_DeletesApart: outputs deleted with their inputs get their own
// line, apart from runs and hits, and only when there were some.
func TestStats_DeletesApart(t *testing.T) {
	var buf bytes.Buffer
	if err := writeStats(&buf, statsOutput{Stats: activation.Stats{Events: 9, Runs: 3, Hits: 2, Deletes: 4}}); err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, line := range strings.Split(buf.String(), "\n") {
		name, value, _ := strings.Cut(line, "  ")
		lines[name] = strings.TrimSpace(value)
	}
	if lines["deleted outputs"] != "4" || lines["runs"] != "3" || lines["hits"] != "2" {
		t.Errorf("stats should show 4 deleted outputs apart from 3 runs and 2 hits:\n%s", buf.String())
	}
	buf.Reset()
	if err := writeStats(&buf, statsOutput{Stats: activation.Stats{Events: 5, Runs: 3, Hits: 2}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "deleted") {
		t.Errorf("stats without deletes should not show a deletes line:\n%s", buf.String())
	}
}

func TestActivations_HitShowsSavedNotRun(t *testing.T) {
	recs := []activation.Record{
		{ID: "hhhhhhhhhhhh", Function: "f", Decision: activation.Hit, FunctionMS: 120, SavedMS: 120, Timings: activation.Timings{TotalMS: 3}},
		{ID: "mmmmmmmmmmmm", Function: "f", Decision: activation.Miss, FunctionMS: 118.5, Timings: activation.Timings{TotalMS: 130}},
	}
	var buf bytes.Buffer
	if err := writeActivations(&buf, recs, true, 0); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	header := lines[0]
	col := func(line, name string) string { // the field under name
		i := strings.Index(header, name)
		rest := line[i:]
		if j := strings.Index(rest, " "); j >= 0 {
			rest = rest[:j]
		}
		return rest
	}
	if got := col(lines[1], "FN_MS"); got != "" {
		t.Errorf("a hit's FN_MS is %q, want blank: the function did not run\n%s", got, buf.String())
	}
	if got := col(lines[1], "SAVED_MS"); got != "120.0" {
		t.Errorf("a hit's SAVED_MS is %q, want 120.0\n%s", got, buf.String())
	}
	if got, saved := col(lines[2], "FN_MS"), col(lines[2], "SAVED_MS"); got != "118.5" || saved != "" {
		t.Errorf("a run's FN_MS, SAVED_MS are %q, %q, want 118.5 and blank\n%s", got, saved, buf.String())
	}
}

func TestFnGet_LimitsAsDurations(t *testing.T) {
	f := registry.Function{Tenant: "t", Name: "thumb", Runtime: "wasm", Version: "v1",
		Limits: registry.Limits{Timeout: 60 * time.Second, Lease: 90 * time.Second, MemoryMB: 128, Retention: 168 * time.Hour}}
	apiURL := fakeAPI(t, map[string]any{"/v1/functions/thumb": f})
	out := runCmd(t, newRootCmd(), "fn", "get", "thumb", "--api", apiURL)
	for _, want := range []string{`"timeout": "60s"`, `"lease": "90s"`, `"retention": "168h"`, `"memory_mb": 128`, `"name": "thumb"`} {
		if !strings.Contains(out, want) {
			t.Errorf("fn get lacks %s:\n%s", want, out)
		}
	}
	raw := runCmd(t, newRootCmd(), "fn", "get", "thumb", "--api", apiURL, "--raw")
	var back registry.Function
	if err := json.Unmarshal([]byte(raw), &back); err != nil || back.Limits != f.Limits {
		t.Errorf("fn get --raw should be the API's definition (err %v):\n%s", err, raw)
	}
}

func TestExplain_ParamsReadable(t *testing.T) {
	x := map[string]any{"function": "thumb", "version": "v1", "bucket": "in", "key": "a.jpg",
		"parts": map[string]any{"params": `{"quality":"high","size":"128"}{"memory":"256"}`}}
	apiURL := fakeAPI(t, map[string]any{"/v1/explain": x})
	out := runCmd(t, newRootCmd(), "explain", "--fn", "thumb", "--bucket", "in", "--key", "a.jpg", "--api", apiURL)
	if !strings.Contains(out, "params       quality=high size=128\n") || !strings.Contains(out, "config       memory=256\n") {
		t.Errorf("explain should print params and config as key=value:\n%s", out)
	}
	if strings.Contains(out, "{") {
		t.Errorf("explain prints raw JSON:\n%s", out)
	}
}

func TestParamsText(t *testing.T) {
	for in, want := range map[string][2]string{
		"{}{}":                           {"none", "none"},
		`{"a":"x y"}{}`:                  {`a="x y"`, "none"},
		"sha256:abc":                     {"sha256:abc (too long to keep in the key: stored apart)", ""},
		`{"size":"128"}{"k":"v","j":""}`: {"size=128", `j="" k=v`},
	} {
		p, c := paramsText(in)
		if p != want[0] || c != want[1] {
			t.Errorf("paramsText(%q) = %q, %q, want %q, %q", in, p, c, want[0], want[1])
		}
	}
}

// Issue 20 item 4: fn list shows each function's upstream and downstream
// functions, fn get lists them.
func TestFnList_UpstreamDownstream(t *testing.T) {
	fn := func(name, in, out string, up, down []string) api.FunctionInfo {
		return api.FunctionInfo{Function: registry.Function{Tenant: "t", Name: name, Runtime: "wasm", Version: "v1",
			Trigger: registry.Trigger{Bucket: in}, Output: registry.Output{Bucket: out, KeyTemplate: "{key}"}}, Upstream: up, Downstream: down}
	}
	fns := []api.FunctionInfo{
		fn("thumbnail", "images", "thumbs", []string{}, []string{"classify"}),
		fn("classify", "thumbs", "labels", []string{"thumbnail"}, []string{"index", "other/audit"}),
	}
	apiURL := fakeAPI(t, map[string]any{"/v1/functions": fns, "/v1/functions/classify": fns[1]})
	out := runCmd(t, newRootCmd(), "fn", "list", "--api", apiURL)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], "UPSTREAM   DOWNSTREAM") {
		t.Fatalf("want a header ending UPSTREAM DOWNSTREAM and two rows:\n%s", out)
	}
	for i, want := range []string{"- classify", "thumbnail index,other/audit"} {
		f := strings.Fields(lines[i+1])
		if got := strings.Join(f[len(f)-2:], " "); got != want {
			t.Errorf("row %d ends %q, want %q:\n%s", i+1, got, want, out)
		}
	}
	get := runCmd(t, newRootCmd(), "fn", "get", "classify", "--api", apiURL)
	if !strings.Contains(get, `"upstream": [
    "thumbnail"
  ]`) || !strings.Contains(get, `"other/audit"`) {
		t.Errorf("fn get lacks upstream and downstream:\n%s", get)
	}
}
