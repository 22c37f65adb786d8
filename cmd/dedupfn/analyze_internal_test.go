package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// NewAnalyzeStore starts the built-in endpoint (one per process: no other
// test of this package may hold one at the same time) and returns it with
// its s3:// URL, which carries no credentials.
func NewAnalyzeStore(t *testing.T) (objects.Store, string) {
	t.Helper()
	addr := testutil.FreeAddr(t)
	store, err := objects.Open(t.Context(), "embedded:", objects.Options{
		DataDir: t.TempDir(), Addr: addr, AccessKey: "analyze-access", SecretKey: "analyze-secret-key",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store, "s3://" + addr + "?tls=false"
}

// runAnalyzeCmd runs `dedupfn analyze args...` and returns its stdout.
func runAnalyzeCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newAnalyzeCmd()
	var stdout, stderr bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	err := cmd.ExecuteContext(t.Context())
	if err == nil && !strings.Contains(stderr.String(), "analyze: listed ") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
	return stdout.String(), err
}

func TestAnalyzeCmd(t *testing.T) {
	store, storeURL := NewAnalyzeStore(t)
	if err := store.MakeBucket(t.Context(), "photos"); err != nil {
		t.Fatal(err)
	}
	// 10 objects under "in/", 4 distinct: 4 × 100 B, 3 × 40 B, 2 × 10 B, 1 × 5 B.
	contents := map[string]string{
		"in/a1": strings.Repeat("a", 100), "in/a2": strings.Repeat("a", 100), "in/a3": strings.Repeat("a", 100), "in/a4": strings.Repeat("a", 100),
		"in/c1": strings.Repeat("c", 40), "in/c2": strings.Repeat("c", 40), "in/c3": strings.Repeat("c", 40),
		"in/b1": strings.Repeat("b", 10), "in/b2": strings.Repeat("b", 10),
		"in/d": "dddd!", "out/a": strings.Repeat("a", 100),
	}
	for k, v := range contents {
		if _, err := store.Put(t.Context(), "photos", k, strings.NewReader(v), int64(len(v)), objects.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("JSON", func(t *testing.T) {
		t.Setenv("DEDUPFN_S3_ACCESS_KEY", "analyze-access")
		t.Setenv("DEDUPFN_S3_SECRET_KEY", "analyze-secret-key")
		out, err := runAnalyzeCmd(t, "s3://photos/in/", "--objects", storeURL, "--json", "--fn-seconds", "0.5", "--top", "2", "--keys", "2", "--concurrency", "3")
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Objects          int64    `json:"objects"`
			Bytes            int64    `json:"bytes"`
			Distinct         int64    `json:"distinct"`
			DuplicateObjects int64    `json:"duplicate_objects"`
			DuplicateBytes   int64    `json:"duplicate_bytes"`
			DuplicateGroups  int64    `json:"duplicate_groups"`
			SavedSeconds     *float64 `json:"saved_seconds"`
			Groups           []struct {
				SHA256 string   `json:"sha256"`
				Count  int64    `json:"count"`
				Bytes  int64    `json:"bytes"`
				Keys   []string `json:"keys"`
			} `json:"groups"`
		}
		dec := json.NewDecoder(strings.NewReader(out))
		if err := dec.Decode(&got); err != nil || dec.More() {
			t.Fatalf("--json printed no single object (%v):\n%s", err, out)
		}
		for _, key := range []string{`"objects": 10`, `"bytes": 545`, `"distinct": 4`, `"duplicate_objects": 6`,
			`"duplicate_bytes": 390`, `"duplicate_groups": 3`, `"saved_seconds": 3`, `"sha256": "`} {
			if !strings.Contains(out, key) {
				t.Errorf("output lacks %s:\n%s", key, out)
			}
		}
		if got.Objects != 10 || got.Bytes != 545 || got.Distinct != 4 || got.DuplicateObjects != 6 ||
			got.DuplicateBytes != 300+80+10 || got.DuplicateGroups != 3 || got.SavedSeconds == nil || *got.SavedSeconds != 3 {
			t.Errorf("report: %+v\n%s", got, out)
		}
		type group struct {
			count, bytes int64
			keys         []string
		}
		var groups []group
		for _, g := range got.Groups {
			if len(g.SHA256) != 64 {
				t.Errorf("sha256 %q is not 64 hex digits", g.SHA256)
			}
			groups = append(groups, group{g.Count, g.Bytes, g.Keys})
		}
		want := []group{{4, 100, []string{"in/a1", "in/a2"}}, {3, 40, []string{"in/c1", "in/c2"}}}
		if !reflect.DeepEqual(groups, want) {
			t.Errorf("groups %+v, want %+v", groups, want)
		}
	})

	t.Run("Text", func(t *testing.T) {
		// The built-in endpoint's variables serve when the S3 ones are unset.
		t.Setenv("DEDUPFN_S3_ACCESS_KEY", "")
		t.Setenv("DEDUPFN_S3_SECRET_KEY", "")
		t.Setenv("DEDUPFN_ACCESS_KEY", "analyze-access")
		t.Setenv("DEDUPFN_SECRET_KEY", "analyze-secret-key")
		out, err := runAnalyzeCmd(t, "s3://photos", "--objects", storeURL, "--fn-seconds", "0.8")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{"objects            11", "distinct contents  4 (155 B)",
			"duplicate objects  7 (63.6%)", "largest duplicate groups (3 of 3, by wasted bytes):",
			"5       100 B  400 B   in/a1, in/a2, in/a3, … (2 more)",
			"compute saved      5.6s (7 runs × 0.800 s)"} {
			if !strings.Contains(out, line) {
				t.Errorf("output lacks %q:\n%s", line, out)
			}
		}
	})

	t.Run("FnMean", func(t *testing.T) {
		t.Setenv("DEDUPFN_S3_ACCESS_KEY", "analyze-access")
		t.Setenv("DEDUPFN_S3_SECRET_KEY", "analyze-secret-key")
		apiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/activations" || r.URL.Query().Get("fn") != "thumb" {
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, `[{"decision":"miss","function_ms":500},{"decision":"hit","function_ms":9000},{"decision":"miss","function_ms":1500}]`)
		}))
		defer apiSrv.Close()
		out, err := runAnalyzeCmd(t, "s3://photos/in/", "--objects", storeURL, "--json", "--fn", "thumb", "--api", apiSrv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, `"fn_seconds": 1,`) || !strings.Contains(out, `"saved_seconds": 6`) {
			t.Errorf("mean of runs 0.5 s and 1.5 s over 6 duplicates should save 6 s:\n%s", out)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			args    []string
			wantErr string
		}{
			{"NotS3", []string{"photos"}, `target must be s3://BUCKET[/PREFIX], got "photos"`},
			{"Embedded", []string{"s3://photos", "--objects", "embedded:"}, "--objects embedded: starts an endpoint of its own"},
			{"Concurrency", []string{"s3://photos", "--concurrency", "0"}, "--concurrency must be >= 1, got 0"},
			{"FnAndSeconds", []string{"s3://photos", "--fn", "x", "--fn-seconds", "1"}, "none of the others can be"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := runAnalyzeCmd(t, tc.args...)
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
			})
		}
	})
}

// TestAnalyze_WrongCredentialsSaySo: analyze with credentials the store
// does not know says they were refused, not "objects: not found".
func TestAnalyze_WrongCredentialsSaySo(t *testing.T) {
	store, storeURL := NewAnalyzeStore(t)
	if err := store.MakeBucket(t.Context(), "photos"); err != nil {
		t.Fatal(err)
	}
	for _, creds := range [][2]string{{"nobody", "analyze-secret-key"}, {"analyze-access", "wrong-secret-key"}} {
		t.Setenv("DEDUPFN_S3_ACCESS_KEY", creds[0])
		t.Setenv("DEDUPFN_S3_SECRET_KEY", creds[1])
		_, err := runAnalyzeCmd(t, "s3://photos", "--objects", storeURL)
		if err == nil || !strings.Contains(err.Error(), "refused the credentials") || strings.Contains(err.Error(), "not found") {
			t.Errorf("access key %s: error %v, want one saying the store refused the credentials", creds[0], err)
		}
	}
}

// TestAnalyze_FnUsesMedianAndSaysSo: --fn takes the median of the
// function's recent runs, which one 20 MB image among small photos does
// not move, and the report says where the run time came from.
func TestAnalyze_FnUsesMedianAndSaysSo(t *testing.T) {
	store, storeURL := NewAnalyzeStore(t)
	if err := store.MakeBucket(t.Context(), "photos"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if _, err := store.Put(t.Context(), "photos", k, strings.NewReader("same"), 4, objects.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("DEDUPFN_S3_ACCESS_KEY", "analyze-access")
	t.Setenv("DEDUPFN_S3_SECRET_KEY", "analyze-secret-key")
	apiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Four small photos of 100 ms and one big image of 9.7 s: a mean of 2.02 s.
		fmt.Fprint(w, `[{"decision":"miss","function_ms":100},{"decision":"miss","function_ms":9700},{"decision":"hit","function_ms":9700},
			{"decision":"miss","function_ms":90},{"decision":"miss","function_ms":110},{"decision":"miss","function_ms":100}]`)
	}))
	defer apiSrv.Close()
	out, err := runAnalyzeCmd(t, "s3://photos", "--objects", storeURL, "--fn", "thumb", "--api", apiSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "compute saved      100ms (1 runs × 0.100 s, the median of 5 recent runs of thumb)") {
		t.Errorf("want the median run time, 0.1 s, and its source:\n%s", out)
	}
	out, err = runAnalyzeCmd(t, "s3://photos", "--objects", storeURL, "--fn", "thumb", "--api", apiSrv.URL, "--json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"fn_seconds": 0.1,`) || !strings.Contains(out, `"fn_seconds_source": "the median of 5 recent runs of thumb"`) {
		t.Errorf("--json lacks the median and its source:\n%s", out)
	}
}

// TestAnalyze_BuiltInEndpointReadsNothing: over HTTP, the built-in
// endpoint's HEADs in checksum mode carry the SHA-256 it stored on each
// write, so analyze reads no object's bytes: every object is a HEAD, and
// the endpoint serves no object GET (counted by a proxy in front of it).
func TestAnalyze_BuiltInEndpointReadsNothing(t *testing.T) {
	store, storeURL := NewAnalyzeStore(t)
	if err := store.MakeBucket(t.Context(), "docs"); err != nil {
		t.Fatal(err)
	}
	// Small objects (HEADed while the store vouches) and one above the
	// 1 MiB stat threshold; 3 pairs of duplicates.
	bodies := map[string]string{
		"a": "alpha", "a-copy": "alpha", "b": "beta", "b-copy": "beta", "c": "gamma",
		"big": strings.Repeat("x", 2<<20), "big-copy": strings.Repeat("x", 2<<20), "empty": "",
	}
	for k, v := range bodies {
		if _, err := store.Put(t.Context(), "docs", k, strings.NewReader(v), int64(len(v)), objects.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := url.Parse("http://" + strings.TrimSuffix(strings.TrimPrefix(storeURL, "s3://"), "?tls=false"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	requests := map[string]int{} // "GET object", "HEAD object", "GET bucket"
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		// The Host and path pass unchanged: the client signed them.
		pr.Out.URL.Scheme, pr.Out.URL.Host = u.Scheme, u.Host
		what := "bucket"
		if strings.Count(strings.Trim(pr.In.URL.Path, "/"), "/") > 0 {
			what = "object"
		}
		mu.Lock()
		requests[pr.In.Method+" "+what]++
		mu.Unlock()
	}})
	defer proxy.Close()
	t.Setenv("DEDUPFN_S3_ACCESS_KEY", "analyze-access")
	t.Setenv("DEDUPFN_S3_SECRET_KEY", "analyze-secret-key")
	out, err := runAnalyzeCmd(t, "s3://docs", "--objects", "s3://"+strings.TrimPrefix(proxy.URL, "http://")+"?tls=false", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Objects   int64 `json:"objects"`
		Distinct  int64 `json:"distinct"`
		ZeroRead  int64 `json:"zero_read"`
		ReadBytes int64 `json:"read_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if got.Objects != 8 || got.Distinct != 5 || got.ZeroRead != 8 || got.ReadBytes != 0 {
		t.Errorf("objects %d, distinct %d, zero read %d, read bytes %d: want 8, 5, 8 and 0\n%s", got.Objects, got.Distinct, got.ZeroRead, got.ReadBytes, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if requests["GET object"] != 0 || requests["HEAD object"] != 8 {
		t.Errorf("requests at the endpoint %v: want 8 object HEADs and no object GET", requests)
	}
}
