package pipeline_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// BenchmarkInvokeDirect is a blocking direct invocation (InvokeDirect, as
// POST .../actions/NAME?blocking=true calls it) of a trivial nodejs action
// (a warm process of the process runtime, bolt index): miss, a new
// parameter value each time (run, claim, commit, record); hit, the same
// parameters each time (claim finds the result, record); no-dedup, the
// same action deployed NoDedup (run and record, no claim). Reports the
// p50 and p99 latency.
func BenchmarkInvokeDirect(b *testing.B) {
	if _, err := os.Stat("/usr/bin/node"); err != nil {
		testutil.Missing(b, "/usr/bin/node")
	}
	for _, tc := range []struct {
		name    string
		noDedup bool
		same    bool // the same parameters every time
		want    activation.Decision
	}{
		{"miss", false, false, activation.Miss},
		{"hit", false, true, activation.Hit},
		{"no-dedup", true, true, activation.Miss},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pipe, fn := newDirectBench(b, tc.noDedup)
			invoke := func(i int) activation.Record {
				params := `{"n":0}`
				if !tc.same {
					params = `{"n":` + strconv.Itoa(i) + `}`
				}
				rec, err := pipe.InvokeDirect(b.Context(), pipeline.DirectRequest{Function: fn, Params: json.RawMessage(params)})
				if err != nil {
					b.Fatal(err)
				}
				return rec
			}
			invoke(-1) // warms the process (and, for hit, records the result)
			var lat []time.Duration
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				t := time.Now()
				rec := invoke(i)
				lat = append(lat, time.Since(t))
				if rec.Decision != tc.want {
					b.Fatalf("decision %s (%s), want %s", rec.Decision, rec.Error, tc.want)
				}
				i++
			}
			b.StopTimer()
			reportP50(b, lat)
			reportP99(b, lat)
		})
	}
}

// newDirectBench is a pipeline with the process runtime and one trivial
// nodejs action.
func newDirectBench(b *testing.B, noDedup bool) (*pipeline.Pipeline, registry.Function) {
	b.Helper()
	rt, err := process.New(process.Options{WorkDir: b.TempDir(), Node: "/usr/bin/node"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(context.Background()) })
	idx := testutil.BoltIndex(b)
	reg := registry.New(idx, nil)
	pipe, err := pipeline.New(pipeline.Config{
		Index: idx, Objects: store, Registry: reg, Runtimes: map[string]runtime.Runtime{"process": rt},
		Owner: "bench", SpoolDir: b.TempDir(),
	})
	if err != nil {
		b.Fatal(err)
	}
	code, cfg, err := process.ActionCode("nodejs:20", []byte(`function main(args) { return {n: args.n, twice: 2 * args.n}; }`), false, "")
	if err != nil {
		b.Fatal(err)
	}
	fn, err := reg.Deploy(b.Context(), registry.Function{Name: "trivial", Runtime: "process", Config: cfg, NoDedup: noDedup}, code)
	if err != nil {
		b.Fatal(err)
	}
	return pipe, fn
}

// reportP99 reports the 99th percentile of per-op latencies.
func reportP99(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	s := slices.Sorted(slices.Values(lat))
	b.ReportMetric(float64(s[len(s)*99/100].Nanoseconds()), "p99-ns")
}
