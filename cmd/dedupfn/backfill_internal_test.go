package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/backfill"
)

// fakeBackfills is the API's backfill endpoints for one job per function:
// it reports the job running with no total, then half done, then in its
// final state: "ok" ends done, "bad" failed, "stop" canceled.
type fakeBackfills struct {
	mu    sync.Mutex
	req   backfill.Request // the last POST body
	polls map[string]int   // GETs per job id
}

func (f *fakeBackfills) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodPost && r.URL.Path == "/v1/backfills" {
		if err := json.NewDecoder(r.Body).Decode(&f.req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(fakeJob("job-"+f.req.Function, 0))
		return
	}
	id, ok := strings.CutPrefix(r.URL.Path, "/v1/backfills/")
	if r.Method != http.MethodGet || !ok {
		http.NotFound(w, r)
		return
	}
	f.polls[id]++
	json.NewEncoder(w).Encode(fakeJob(id, f.polls[id]))
}

func fakeJob(id string, step int) backfill.Job {
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	j := backfill.Job{ID: id, Function: strings.TrimPrefix(id, "job-"), Version: "v1", Bucket: "photos", State: backfill.Running,
		Concurrency: 4, Created: start, Updated: start}
	switch {
	case step == 1:
		j.TotalObjects, j.TotalBytes = 10, 10<<20
		j.Counters = backfill.Counters{Objects: 5, Bytes: 5 << 20, Runs: 2, Hits: 3}
	case step >= 2:
		j.TotalObjects, j.TotalBytes = 10, 10<<20
		j.Counters = backfill.Counters{Objects: 10, Bytes: 10 << 20, Runs: 4, Hits: 5, Errors: 1}
		j.Finished = start.Add(42 * time.Second)
		switch j.Function {
		case "ok":
			j.State = backfill.Done
		case "bad":
			j.State, j.Error = backfill.Failed, "list photos/: access denied"
		case "stop":
			j.State = backfill.Canceled
		}
	}
	return j
}

func startFakeBackfills(t *testing.T) (*fakeBackfills, string) {
	t.Helper()
	f := &fakeBackfills{polls: map[string]int{}}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return f, ts.URL
}

// runCLI runs dedupfn with args; stdout and stderr are buffers, not a
// terminal, so progress is plain lines.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err = root.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

func shortPolls(t *testing.T) {
	poll, every := backfillPoll, backfillLineEvery
	backfillPoll, backfillLineEvery = 5*time.Millisecond, 0
	t.Cleanup(func() { backfillPoll, backfillLineEvery = poll, every })
}

func TestBackfillCmd_PlainProgress(t *testing.T) {
	shortPolls(t)
	f, url := startFakeBackfills(t)
	stdout, stderr, err := runCLI(t, "backfill", "ok", "--api", url, "--rate", "25/s", "--concurrency", "2", "--prefix", "2024/")
	if err != nil {
		t.Fatalf("backfill of a job that ends done: %v\n%s", err, stderr)
	}
	if f.req != (backfill.Request{Function: "ok", Prefix: "2024/", Rate: 25, Concurrency: 2}) {
		t.Errorf("request %+v, want function ok, prefix 2024/, rate 25, concurrency 2", f.req)
	}
	for _, want := range []string{
		"backfill job-ok: function ok@v1, s3://photos/\n",
		"backfill job-ok: 0 objects, 0 B, runs 0, hits 0, waits 0, skipped 0, errors 0, 0.0 objects/s, ETA ?\n",
		"backfill job-ok: 5/10 objects (50%), 5.0 MiB/10.0 MiB, runs 2, hits 3, waits 0, skipped 0, errors 0, ",
		"backfill job-ok: 10/10 objects (100%), 10.0 MiB/10.0 MiB, runs 4, hits 5, waits 0, skipped 0, errors 1, ",
		"1 objects failed: dedupfn dlq list --fn ok\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.ContainsAny(stderr, "\r\x1b") {
		t.Errorf("stderr is not a terminal but got a bar's control characters: %q", stderr)
	}
	if want := "backfill job-ok done: 10 objects, 10.0 MiB, runs 4, hits 5, waits 0, skipped 0, errors 1 in 42s\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
}

func TestBackfillCmd_EndStates(t *testing.T) {
	shortPolls(t)
	_, url := startFakeBackfills(t)
	for _, tc := range []struct {
		fn, wantErr string
	}{
		{"ok", ""},
		{"bad", "backfill job-bad failed: list photos/: access denied"},
		{"stop", "backfill job-stop was canceled"},
	} {
		t.Run(tc.fn, func(t *testing.T) {
			stdout, _, err := runCLI(t, "backfill", tc.fn, "--api", url)
			if got := errString(err); got != tc.wantErr {
				t.Fatalf("error %q, want %q", got, tc.wantErr)
			}
			if !strings.HasPrefix(stdout, "backfill job-"+tc.fn+" ") {
				t.Errorf("no summary on stdout: %q", stdout)
			}
		})
	}
}

func TestBackfillCmd_Detach(t *testing.T) {
	f, url := startFakeBackfills(t)
	stdout, stderr, err := runCLI(t, "backfill", "ok", "--api", url, "--detach")
	if err != nil || stdout != "job-ok\n" || !strings.Contains(stderr, "dedupfn backfill status job-ok --follow") {
		t.Fatalf("--detach: %v, stdout %q, stderr %q; want the id alone on stdout", err, stdout, stderr)
	}
	if f.polls["job-ok"] != 0 {
		t.Errorf("--detach polled the job %d times", f.polls["job-ok"])
	}
	if _, _, err := runCLI(t, "backfill", "ok", "--api", url, "--rate", "fast"); err == nil || !strings.Contains(err.Error(), "--rate must be") {
		t.Errorf("--rate fast: %v, want a --rate error", err)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"0": 0, "50": 50, "50/s": 50, "0.5/s": 0.5, " 3/s ": 3} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "fast", "5/m", ""} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q): no error", in)
		}
	}
}

// The process exits 0 when the job is done and 1 when it failed or was
// canceled, with the reason on stderr: main is run in a child process.
func TestBackfillCmd_ExitCodes(t *testing.T) {
	if args := os.Getenv("DEDUPFN_TEST_MAIN_ARGS"); args != "" {
		backfillPoll = 5 * time.Millisecond
		os.Args = append([]string{"dedupfn"}, strings.Fields(args)...)
		main() // exits 1 on an error
		os.Exit(0)
	}
	_, url := startFakeBackfills(t)
	for _, tc := range []struct {
		fn     string
		code   int
		stderr string
	}{
		{"ok", 0, ""},
		{"bad", 1, "dedupfn: backfill job-bad failed: list photos/: access denied\n"},
		{"stop", 1, "dedupfn: backfill job-stop was canceled\n"},
	} {
		t.Run(tc.fn, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBackfillCmd_ExitCodes$")
			cmd.Env = append(os.Environ(), "DEDUPFN_TEST_MAIN_ARGS=backfill "+tc.fn+" --api "+url)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.HasSuffix(stderr.String(), tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and stderr ending %q", code, stderr.String(), tc.code, tc.stderr)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
