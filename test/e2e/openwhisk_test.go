package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk/owtest"
	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// wordcountAction is the example actionloop action, deployed as a user
// would: the script file itself.
func wordcountAction(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testutil.Missing(t, "/usr/bin/python3 (the wordcount action's interpreter)")
	}
	p, err := filepath.Abs("../../examples/wordcount/wordcount.py")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// wordCounts is the result of the wordcount actions.
type wordCounts struct {
	Words int `json:"words"`
	Lines int `json:"lines"`
}

// wordCountsAt reads the JSON result dedupfn stored as bucket/key.
func wordCountsAt(s *harness.Server, bucket, key string) wordCounts {
	s.T.Helper()
	var c wordCounts
	b := s.ReadObject(bucket, key)
	if err := json.Unmarshal(b, &c); err != nil {
		s.T.Fatalf("%s/%s = %q: %v", bucket, key, b, err)
	}
	return c
}

// activationsByKey returns the activation records of function fn by event key.
func activationsByKey(s *harness.Server, fn string) map[string]activation.Record {
	s.T.Helper()
	m := map[string]activation.Record{}
	for _, r := range s.Activations() {
		if r.Function == fn {
			m[r.Event.Key] = r
		}
	}
	return m
}

func resultCounts(t *testing.T, r activation.Record) wordCounts {
	t.Helper()
	var c wordCounts
	if err := json.Unmarshal(r.Result, &c); err != nil {
		t.Fatalf("activation of %s: result %q: %v", r.Event.Key, r.Result, err)
	}
	return c
}

// notJSON is an actionloop action whose result line is not JSON.
const notJSON = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do
  echo "broken: about to answer garbage" >&2
  echo "this is not json" >&3
done
`

// TestProcessWordcount runs the example actionloop action in the process
// runtime: duplicates cost no run, results are stored as KEY.json and
// kept on the activations with the action's logs; a large object is read
// through the presigned get_url; a non-JSON result is a function error.
func TestProcessWordcount(t *testing.T) {
	t.Parallel()
	wc := wordcountAction(t)
	s := harness.StartServer(t, t.TempDir(), "--create-bucket", "texts", "--create-bucket", "counts")
	s.CLI("fn", "deploy", "wordcount", "--exec", wc, "--bucket", "texts", "--suffix", ".txt", "--output-bucket", "counts")

	const fox = "the quick brown fox\njumps over the lazy dog\n"
	s.PutText("texts", "a.txt", fox)
	s.WaitEvents(1, 60*time.Second)
	s.PutText("texts", "b/copy.txt", fox)
	s.WaitEvents(2, 30*time.Second)
	s.PutText("texts", "c.txt", "hello world")
	st := s.WaitEvents(3, 60*time.Second)
	if st.Events != 3 || st.Runs != 2 || st.Hits != 1 || st.Errors != 0 {
		t.Fatalf("stats %+v, want events 3, runs 2, hits 1, errors 0", st)
	}

	want := map[string]wordCounts{"a.txt": {9, 2}, "b/copy.txt": {9, 2}, "c.txt": {2, 1}}
	for key, w := range want {
		if got := wordCountsAt(s, "counts", key+".json"); got != w {
			t.Errorf("counts/%s.json = %+v, want %+v", key, got, w)
		}
	}
	recs := activationsByKey(s, "wordcount")
	for key, dec := range map[string]activation.Decision{"a.txt": "miss", "b/copy.txt": "hit", "c.txt": "miss"} {
		r := recs[key]
		if r.Decision != dec {
			t.Fatalf("activation of %s: decision %q, want %q", key, r.Decision, dec)
		}
		if got := resultCounts(t, r); got != want[key] {
			t.Errorf("activation of %s: result %s, want %+v", key, r.Result, want[key])
		}
		if r.Output == nil || r.Output.Bucket != "counts" || r.Output.Key != key+".json" {
			t.Errorf("activation of %s: output %+v, want counts/%s.json", key, r.Output, key)
		}
		if dec == "miss" {
			line := fmt.Sprintf("stderr: wordcount: %s: %d words, %d lines, read from inline body", key, want[key].Words, want[key].Lines)
			if !strings.Contains(r.Logs, line) {
				t.Errorf("activation of %s: logs %q lack %q", key, r.Logs, line)
			}
		}
	}
	if recs["b/copy.txt"].SavedMS <= 0 || recs["b/copy.txt"].Key != recs["a.txt"].Key {
		t.Errorf("hit: saved %vms, dedup key %s vs %s: want time saved and a's key", recs["b/copy.txt"].SavedMS, recs["b/copy.txt"].Key, recs["a.txt"].Key)
	}

	// Over the 1 MiB inline limit, the action reads the presigned get_url.
	big := strings.Repeat("lorem ipsum dolor\n", 100_000) // 1.8 MB
	s.PutText("texts", "big.txt", big)
	s.WaitEvents(4, 60*time.Second)
	if got := wordCountsAt(s, "counts", "big.txt.json"); got != (wordCounts{300_000, 100_000}) {
		t.Errorf("counts/big.txt.json = %+v, want 300000 words, 100000 lines", got)
	}
	if r := activationsByKey(s, "wordcount")["big.txt"]; r.Decision != "miss" || !strings.Contains(r.Logs, "read from get_url (1800000 bytes)") {
		t.Errorf("big.txt: decision %q, logs %q: want a run that read get_url", r.Decision, r.Logs)
	}

	// A result line that is not JSON is a function error, with the logs.
	broken := filepath.Join(t.TempDir(), "broken.sh")
	if err := os.WriteFile(broken, []byte(notJSON), 0o755); err != nil {
		t.Fatal(err)
	}
	s.CLI("fn", "deploy", "broken", "--exec", broken, "--bucket", "texts", "--suffix", ".bad", "--output-bucket", "counts")
	s.PutText("texts", "x.bad", "anything")
	st = s.WaitEvents(5, 60*time.Second)
	if st.Errors != 1 {
		t.Fatalf("stats %+v, want 1 error", st)
	}
	r := activationsByKey(s, "broken")["x.bad"]
	if r.Decision != "error" || r.ErrorClass != "function" || !strings.Contains(r.Error, "not a JSON object") {
		t.Fatalf("activation of x.bad: decision %q class %q error %q, want a function error about the non-JSON result", r.Decision, r.ErrorClass, r.Error)
	}
	if !strings.Contains(r.Logs, "broken: about to answer garbage") {
		t.Errorf("activation of x.bad: logs %q lack the action's stderr", r.Logs)
	}
	if _, err := s.MinIO().StatObject(t.Context(), "counts", "x.bad.json", minio.StatObjectOptions{}); err == nil {
		t.Errorf("a failed run stored an output")
	}
}

// startOpenWhisk runs the in-test OpenWhisk controller on 127.0.0.1, and
// a server whose serve and CLI have its key, with the extra flags.
func startOpenWhisk(t *testing.T, extra ...string) (*owtest.Server, string, *harness.Server) {
	t.Helper()
	ow := owtest.New()
	srv := httptest.NewServer(ow)
	t.Cleanup(func() { srv.Close(); ow.Close() })
	s := harness.NewServer(t, t.TempDir())
	s.Env = []string{"DEDUPFN_OPENWHISK_AUTH=" + ow.Auth}
	s.Start(append(extra, "--openwhisk-allow", srv.URL)...)
	return ow, srv.URL, s
}

// owWordcount is a word-count action in Go: inline body or get_url. Keys
// starting with "slow" take longer than the controller's blocking wait.
func owWordcount(ctx context.Context, p map[string]any, logf func(string, ...any)) (map[string]any, error) {
	key, _ := p["key"].(string)
	var data []byte
	if b, ok := p["body"].(string); ok {
		var err error
		if data, err = base64.StdEncoding.DecodeString(b); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
	} else {
		u, _ := p["get_url"].(string)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if data, err = io.ReadAll(resp.Body); err != nil {
			return nil, err
		}
	}
	if strings.HasPrefix(key, "slow") {
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	words, lines := len(strings.Fields(string(data))), strings.Count(string(data), "\n")
	logf("counted %s: %d words", key, words)
	return map[string]any{"words": words, "lines": lines}, nil
}

// owActivation reads an activation record from the controller.
func owActivation(t *testing.T, api, auth, id string) map[string]any {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, api+"/api/v1/namespaces/_/activations/"+id, nil)
	user, pass, _ := strings.Cut(auth, ":")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rec map[string]any
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&rec) != nil {
		t.Fatalf("OpenWhisk activation %s: status %d", id, resp.StatusCode)
	}
	return rec
}

var activationID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestOpenWhiskRemote puts dedupfn in front of an existing OpenWhisk:
// duplicates are not invoked, the OpenWhisk activationId is on the
// activation, a blocking timeout (202) is polled, and updating the action
// invalidates recorded results.
func TestOpenWhiskRemote(t *testing.T) {
	t.Parallel()
	ow, api, s := startOpenWhisk(t, "--create-bucket", "texts", "--create-bucket", "counts", "--describe-ttl", "2s")
	ow.Register("wordcount", owWordcount)
	s.CLI("fn", "deploy", "wcremote", "--openwhisk-action", "/guest/wordcount", "--openwhisk-api", api,
		"--bucket", "texts", "--suffix", ".txt", "--output-bucket", "counts")

	const text = "to be or not to be\nthat is the question\n"
	s.PutText("texts", "a.txt", text)
	s.WaitEvents(1, 60*time.Second)
	s.PutText("texts", "b.txt", text)
	s.PutText("texts", "c.txt", text)
	s.WaitEvents(3, 30*time.Second)
	s.PutText("texts", "d.txt", "one two three")
	st := s.WaitEvents(4, 60*time.Second)
	if n := ow.Invokes("wordcount"); n != 2 {
		t.Fatalf("OpenWhisk invoked %d times for 2 distinct contents", n)
	}
	if st.Runs != 2 || st.Hits != 2 || st.Errors != 0 {
		t.Fatalf("stats %+v, want runs 2, hits 2, errors 0", st)
	}
	want := map[string]wordCounts{"a.txt": {10, 2}, "b.txt": {10, 2}, "c.txt": {10, 2}, "d.txt": {3, 0}}
	recs := activationsByKey(s, "wcremote")
	for key, w := range want {
		if got := wordCountsAt(s, "counts", key+".json"); got != w {
			t.Errorf("counts/%s.json = %+v, want %+v", key, got, w)
		}
		if got := resultCounts(t, recs[key]); got != w {
			t.Errorf("activation of %s: result %s, want %+v", key, recs[key].Result, w)
		}
	}
	for _, key := range []string{"a.txt", "d.txt"} {
		r := recs[key]
		if r.Decision != "miss" || !activationID.MatchString(r.ExternalID) {
			t.Fatalf("activation of %s: decision %q, external_id %q: want a run with the OpenWhisk activationId", key, r.Decision, r.ExternalID)
		}
		rec := owActivation(t, api, ow.Auth, r.ExternalID)
		if rec["activationId"] != r.ExternalID || !strings.Contains(fmt.Sprint(rec["logs"]), "counted "+key) {
			t.Errorf("OpenWhisk activation %s is not the run of %s: %v", r.ExternalID, key, rec)
		}
		if !strings.Contains(r.Logs, "stdout: counted "+key) {
			t.Errorf("activation of %s: logs %q lack the OpenWhisk activation's logs", key, r.Logs)
		}
	}

	// The blocking invoke times out (202): dedupfn polls the activation.
	ow.SetBlockingTimeout(50 * time.Millisecond)
	s.PutText("texts", "slow.txt", "slow slow")
	s.WaitEvents(5, 60*time.Second)
	r := activationsByKey(s, "wcremote")["slow.txt"]
	if r.Decision != "miss" || !activationID.MatchString(r.ExternalID) || resultCounts(t, r) != (wordCounts{2, 0}) {
		t.Fatalf("after a 202: decision %q, external_id %q, result %s: want a run polled to its result", r.Decision, r.ExternalID, r.Result)
	}
	if n := ow.Invokes("wordcount"); n != 3 {
		t.Fatalf("OpenWhisk invoked %d times, want 3: a 202 must be polled, not invoked again", n)
	}
	ow.SetBlockingTimeout(owtest.DefaultBlockingTimeout)

	// Updating the action (a new version) changes the dedup key once
	// dedupfn re-reads the action, at most DescribeTTL after its last read.
	if testing.Short() {
		return
	}
	ow.Register("wordcount", owWordcount)
	if a, _ := ow.Action("wordcount"); a.Version == "0.0.1" {
		t.Fatalf("the update did not bump the version")
	}
	time.Sleep(3 * time.Second) // past --describe-ttl
	s.PutText("texts", "e.txt", text)
	s.WaitEvents(6, 60*time.Second)
	if n := ow.Invokes("wordcount"); n != 4 {
		t.Fatalf("OpenWhisk invoked %d times, want 4: the updated action must run content it ran before", n)
	}
	recs = activationsByKey(s, "wcremote")
	if e := recs["e.txt"]; e.Decision != "miss" || e.Key == recs["a.txt"].Key || resultCounts(t, e) != want["a.txt"] {
		t.Fatalf("after the update: decision %q, dedup key %s (old %s): want a run under a new key", e.Decision, e.Key, recs["a.txt"].Key)
	}
}

// TestOpenWhiskCreate: fn deploy --openwhisk-create uploads the action as
// a native (blackbox) action, and dedupfn invokes it.
func TestOpenWhiskCreate(t *testing.T) {
	t.Parallel()
	wc := wordcountAction(t)
	ow, api, s := startOpenWhisk(t, "--create-bucket", "texts", "--create-bucket", "counts")
	out := s.CLI("fn", "deploy", "wc", "--openwhisk-action", "wordcount", "--openwhisk-api", api,
		"--openwhisk-create", "--exec", wc, "--bucket", "texts", "--output-bucket", "counts")
	if !strings.Contains(out, "OpenWhisk action wordcount is at version 0.0.1") {
		t.Fatalf("deploy output %q: want the created action's version", out)
	}
	a, ok := ow.Action("wordcount")
	if !ok {
		t.Fatal("the action was not created on OpenWhisk")
	}
	if a.Exec.Kind != "blackbox" || a.Exec.Image != "openwhisk/dockerskeleton" || !a.Exec.Binary {
		t.Fatalf("exec %+v: want a binary blackbox action on openwhisk/dockerskeleton", a.Exec)
	}
	code, err := base64.StdEncoding.DecodeString(a.Exec.Code)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(code), int64(len(code)))
	if err != nil {
		t.Fatalf("action code is not a zip: %v", err)
	}
	script, _ := os.ReadFile(wc)
	if len(zr.File) != 1 || zr.File[0].Name != "exec" || zr.File[0].Mode().Perm()&0o111 == 0 {
		t.Fatalf("zip holds %v, want one executable named exec", zr.File)
	}
	f, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, script) {
		t.Fatalf("exec in the zip is not the deployed script")
	}

	// The in-test controller runs actions it has no Go code for by
	// echoing their parameters: the inline body comes back and, by the
	// base64 "body" convention, is the output object.
	s.PutText("texts", "a.txt", "echo me")
	s.WaitEvents(1, 60*time.Second)
	if n := ow.Invokes("wordcount"); n != 1 {
		t.Fatalf("OpenWhisk invoked %d times, want 1", n)
	}
	r := activationsByKey(s, "wc")["a.txt"]
	var res map[string]any
	if err := json.Unmarshal(r.Result, &res); err != nil {
		t.Fatalf("result %q: %v", r.Result, err)
	}
	if r.Decision != "miss" || !activationID.MatchString(r.ExternalID) || res["key"] != "a.txt" || res["bucket"] != "texts" || res["get_url"] == nil || res["put_url"] == nil {
		t.Fatalf("activation %+v: want a run whose echoed params carry the object and its presigned URLs", r)
	}
	if got := s.ReadObject("counts", "a.txt"); string(got) != "echo me" {
		t.Fatalf("counts/a.txt = %q, want the echoed body", got)
	}
}
