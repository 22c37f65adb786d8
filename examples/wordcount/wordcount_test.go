package wordcount_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// chunk is wordcount.py's read size: words spanning it must count once.
const chunk = 1 << 20

// action returns wordcount.py as dedupfn would deploy it.
func action(tb testing.TB) runtime.Function {
	tb.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testutil.Missing(tb, "/usr/bin/python3 (the action's interpreter)")
	}
	code, err := os.ReadFile("wordcount.py")
	if err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(code)
	d := hex.EncodeToString(sum[:])
	return runtime.Function{Tenant: "t1", Name: "wordcount", Version: d[:12], CodeDigest: d, Code: code}
}

func newRuntime(tb testing.TB, opts process.Options) *process.Runtime {
	tb.Helper()
	opts.WorkDir = tb.TempDir()
	r, err := process.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close(tb.Context()) })
	return r
}

type counts struct {
	Words int `json:"words"`
	Lines int `json:"lines"`
}

// invoke runs the action on text described as obj (Input and Size are
// filled in) and decodes its result.
func invoke(tb testing.TB, r *process.Runtime, fn runtime.Function, obj runtime.ObjectRef, text string) (counts, runtime.Result, error) {
	tb.Helper()
	obj.Size = int64(len(text))
	var out bytes.Buffer
	res, err := r.Invoke(tb.Context(), &runtime.Invocation{
		Function: fn,
		Input:    strings.NewReader(text),
		Object:   obj,
		Output:   &out,
		Limits:   runtime.Limits{Timeout: 30 * time.Second, MaxOutputBytes: 1 << 20, MaxLogBytes: 64 << 10},
	})
	var c counts
	if err == nil {
		if res.OutputWritten || out.Len() > 0 {
			tb.Fatalf("the action wrote an output object (%d bytes); it only returns a result", out.Len())
		}
		if jerr := json.Unmarshal(res.Result, &c); jerr != nil {
			tb.Fatalf("result %s: %v", res.Result, jerr)
		}
	}
	return c, res, err
}

// TestInline counts objects passed inline as base64 "body", on one warm
// process.
func TestInline(t *testing.T) {
	fn := action(t)
	r := newRuntime(t, process.Options{InlineLimit: 4 << 20})
	tests := []struct {
		name  string
		text  string
		words int
		lines int
	}{
		{"Empty", "", 0, 0},
		{"OneLine", "hello world", 2, 1},
		{"TrailingNewline", "one two\nthree\n", 3, 2},
		{"Whitespace", "  a\t b \r\n\n  c  \n", 3, 3},
		{"UTF8", "héllo wörld ☃\n", 3, 1},
		{"WordAcrossChunks", strings.Repeat("x", chunk-1) + "yy zz\n", 2, 1},
		{"SpaceAtChunkEdge", strings.Repeat("x", chunk-1) + " zz", 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, res, err := invoke(t, r, fn, runtime.ObjectRef{Bucket: "texts", Key: tt.name + ".txt"}, tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if got != (counts{tt.words, tt.lines}) {
				t.Fatalf("result %s, want %d words and %d lines", res.Result, tt.words, tt.lines)
			}
			if !strings.Contains(res.Logs, "stderr: wordcount: "+tt.name+".txt: ") || !strings.Contains(res.Logs, "read from inline body") {
				t.Fatalf("logs %q lack the action's stderr line", res.Logs)
			}
			if strings.Count(res.Logs, "\n") != 1 {
				t.Fatalf("logs %q: want exactly this activation's one line", res.Logs)
			}
		})
	}
}

// TestGetURL: an object over the inline limit is fetched from get_url.
func TestGetURL(t *testing.T) {
	fn := action(t)
	text := strings.Repeat("lorem ipsum dolor\n", 100_000) // 1.8 MB
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/texts/big.txt" || r.URL.Query().Get("X-Amz-Signature") != "sig" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(text))
	}))
	t.Cleanup(srv.Close)
	r := newRuntime(t, process.Options{}) // default inline limit: 1 MiB
	got, res, err := invoke(t, r, fn, runtime.ObjectRef{Bucket: "texts", Key: "big.txt", GetURL: srv.URL + "/texts/big.txt?X-Amz-Signature=sig"}, text)
	if err != nil {
		t.Fatal(err)
	}
	if got != (counts{300_000, 100_000}) {
		t.Fatalf("result %s, want 300000 words and 100000 lines", res.Result)
	}
	if !strings.Contains(res.Logs, "read from get_url (1800000 bytes)") {
		t.Fatalf("logs %q: want the object read from get_url", res.Logs)
	}
}

// TestErrorResult: an object the action cannot read is an {"error": ...}
// result, a function error with the action's stderr; the process stays
// warm and serves the next activation.
func TestErrorResult(t *testing.T) {
	fn := action(t)
	r := newRuntime(t, process.Options{InlineLimit: -1})
	_, res, err := invoke(t, r, fn, runtime.ObjectRef{Bucket: "texts", Key: "lost.txt"}, "never sent")
	var rerr *runtime.Error
	if !errors.As(err, &rerr) || rerr.Class != runtime.ClassFunction {
		t.Fatalf("err = %v, want a function error", err)
	}
	if !strings.Contains(rerr.Stderr, "wordcount: lost.txt: no inline body and no get_url") {
		t.Fatalf("stderr %q lacks the reason", rerr.Stderr)
	}
	if !strings.Contains(string(res.Result), `"error"`) {
		t.Fatalf("result %s: want the error result kept", res.Result)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("still warm")) }))
	t.Cleanup(srv.Close)
	got, _, err := invoke(t, r, fn, runtime.ObjectRef{Bucket: "texts", Key: "ok.txt", GetURL: srv.URL}, "still warm")
	if err != nil || got != (counts{2, 1}) {
		t.Fatalf("after an error result: %+v, %v; want 2 words, 1 line", got, err)
	}
}
