package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// BenchmarkOpenWhiskInvoke times a blocking invocation of a trivial
// nodejs action through dedupfn's OpenWhisk API (POST
// /api/v1/namespaces/_/actions/NAME?blocking=true&result=true, as the npm
// client sends it), one at a time: a miss (new parameters each time), a
// hit (the same parameters again), and the same action annotated
// dedupfn-dedup: false, whose every invocation runs. p50 and p99 of each,
// side by side in one run.
func BenchmarkOpenWhiskInvoke(b *testing.B) {
	if _, err := exec.LookPath("node"); err != nil {
		testutil.Missing(b, "node not on PATH")
	}
	s := harness.NewServer(b, b.TempDir())
	s.Env = []string{"DEDUPFN_OPENWHISK_KEYS=guest=" + owGuestKey}
	s.Start()
	user, key, _ := strings.Cut(owGuestKey, ":")
	call := func(method, path string, body any) (int, []byte) {
		var r io.Reader
		if body != nil {
			j, _ := json.Marshal(body)
			r = bytes.NewReader(j)
		}
		req, _ := http.NewRequestWithContext(b.Context(), method, "http://"+s.API+"/api/v1/namespaces/_/"+path, r)
		req.SetBasicAuth(user, key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	code := "function main(p) { return { v: p.v } }"
	for _, a := range []struct {
		name  string
		dedup bool
	}{{"trivial", true}, {"trivial-nodedup", false}} {
		action := map[string]any{"exec": map[string]any{"kind": "nodejs:20", "code": code}}
		if !a.dedup {
			action["annotations"] = []map[string]any{{"key": "dedupfn-dedup", "value": false}}
		}
		if st, body := call("PUT", "actions/"+a.name+"?overwrite=true", action); st != http.StatusOK {
			b.Fatalf("create %s: %d %s", a.name, st, body)
		}
	}
	invoke := func(name string, v int) time.Duration {
		t0 := time.Now()
		st, body := call("POST", "actions/"+name+"?blocking=true&result=true", map[string]any{"v": v})
		d := time.Since(t0)
		if st != http.StatusOK || !strings.Contains(string(body), fmt.Sprintf(`"v":%d`, v)) {
			b.Fatalf("invoke %s: %d %s", name, st, body)
		}
		return d
	}
	invoke("trivial", -1)         // warm: the process starts
	invoke("trivial-nodedup", -1) // and this one's
	const n = 300
	b.ResetTimer()
	for iter := range b.N {
		base := iter * n // new parameters for each iteration's misses
		phases := []struct {
			name string
			run  func(i int) time.Duration
		}{
			{"miss", func(i int) time.Duration { return invoke("trivial", base+i) }},
			{"hit", func(i int) time.Duration { return invoke("trivial", base+i) }}, // the misses' parameters again
			{"nodedup", func(i int) time.Duration { return invoke("trivial-nodedup", base+i) }},
		}
		for _, ph := range phases {
			lat := make([]time.Duration, n)
			for i := range n {
				lat[i] = ph.run(i)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[n/2].Microseconds())/1000, ph.name+"_p50_ms")
			b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, ph.name+"_p99_ms")
		}
	}
}
