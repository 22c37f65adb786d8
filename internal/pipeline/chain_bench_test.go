package pipeline_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// chainBenchUploads and chainBenchWorkers shape BenchmarkChain: half the
// uploads are duplicates (of the first half's contents, under other
// keys), handled by that many uploaders at once.
const (
	chainBenchUploads = 2000
	chainBenchWorkers = 8
	chainBenchFnTime  = 2 * time.Millisecond // each run's compute
)

// slowStage is stageRuntime with chainBenchFnTime of compute per run.
type slowStage struct{ stageRuntime }

func (r *slowStage) Invoke(ctx context.Context, inv *runtime.Invocation) (runtime.Result, error) {
	time.Sleep(chainBenchFnTime)
	return r.stageRuntime.Invoke(ctx, inv)
}

// BenchmarkChain runs chainBenchUploads uploads (50 % duplicates) through
// a chain of 1 and of 3 functions on the embedded store, deduplicated and
// --no-dedup on every stage, and reports per stage the runs, the wall
// time, the function time, the p50/p99 of a duplicate's walk through the
// whole chain (its Handle, which returns once the last stage is
// recorded), and the reads of intermediate objects.
func BenchmarkChain(b *testing.B) {
	for _, stages := range []int{1, 3} {
		for _, dedup := range []bool{true, false} {
			name := fmt.Sprintf("stages=%d/dedup=%v", stages, dedup)
			b.Run(name, func(b *testing.B) {
				for range b.N {
					benchChain(b, stages, dedup)
				}
			})
		}
	}
}

func benchChain(b *testing.B, stages int, dedup bool) {
	ctx := b.Context()
	idx := testutil.BoltIndex(b)
	reg := registry.New(idx, nil)
	rt := &slowStage{stageRuntime{calls: map[string]int{}}}
	objs := &bucketReads{Store: store, gets: map[string]int{}}
	n := bucketSeq.Add(1)
	buckets := make([]string, stages+1)
	for i := range buckets {
		buckets[i] = fmt.Sprintf("cb%d-%d-%d", i, time.Now().UnixNano()%1e6, n)
		if err := store.MakeBucket(ctx, buckets[i]); err != nil {
			b.Fatal(err)
		}
	}
	for i := range stages {
		f := registry.Function{Name: fmt.Sprintf("s%d", i+1), Runtime: "stage", NoDedup: !dedup,
			Trigger: registry.Trigger{Bucket: buckets[i]}, Output: registry.Output{Bucket: buckets[i+1]}}
		if _, err := reg.Deploy(ctx, f, []byte("code of "+f.Name)); err != nil {
			b.Fatal(err)
		}
	}
	pipe, err := pipeline.New(pipeline.Config{
		Index: idx, Objects: objs, Registry: reg, Runtimes: map[string]runtime.Runtime{"stage": rt},
		Owner: "bench", SpoolDir: b.TempDir(), MaxRuns: 4,
	})
	if err != nil {
		b.Fatal(err)
	}
	// The uploads, made before the clock starts: the distinct half, then
	// the duplicates under other keys, as the built-in endpoint's events.
	evs := make([]event.Event, chainBenchUploads)
	for i := range evs {
		body := fmt.Sprintf("content %06d %s", i%(chainBenchUploads/2), strings.Repeat("x", 4000))
		key := fmt.Sprintf("u/%05d", i)
		info, err := store.Put(ctx, buckets[0], key, strings.NewReader(body), int64(len(body)), objects.PutOptions{})
		if err != nil {
			b.Fatal(err)
		}
		evs[i] = event.Event{Source: "embedded", Name: "s3:ObjectCreated:Put", Bucket: buckets[0], Key: key,
			ETag: info.ETag, Size: info.Size, SHA256: info.SHA256, Time: info.Modified}
	}
	intermediateReads := func() int {
		n := 0
		for _, bk := range buckets[1:stages] {
			n += objs.got(bk)
		}
		return n
	}
	var readsMid int
	var (
		mu   sync.Mutex
		walk []time.Duration // the duplicates' Handle latencies
	)
	start := time.Now()
	for half := range 2 {
		part := evs[half*chainBenchUploads/2 : (half+1)*chainBenchUploads/2]
		work := make(chan event.Event)
		var wg sync.WaitGroup
		for range chainBenchWorkers {
			wg.Go(func() {
				for ev := range work {
					t0 := time.Now()
					if err := pipe.Handle(ctx, ev); err != nil {
						b.Error(err)
					}
					if half == 1 {
						mu.Lock()
						walk = append(walk, time.Since(t0))
						mu.Unlock()
					}
				}
			})
		}
		for _, ev := range part {
			work <- ev
		}
		close(work)
		wg.Wait()
		if half == 0 {
			readsMid = intermediateReads()
		}
	}
	wall := time.Since(start)
	b.StopTimer()
	// Intermediate reads on the duplicates' walk alone: the first half's
	// runs read their inputs; count what the second half added.
	reads := intermediateReads() - readsMid
	slices.Sort(walk)
	runs := 0
	for i := range stages {
		r := rt.ran(fmt.Sprintf("s%d", i+1))
		runs += r
		b.ReportMetric(float64(r), fmt.Sprintf("runs_s%d", i+1))
	}
	b.ReportMetric(wall.Seconds(), "wall_s")
	b.ReportMetric(float64(runs)*chainBenchFnTime.Seconds(), "function_s")
	b.ReportMetric(float64(walk[len(walk)/2].Microseconds())/1000, "dup_walk_p50_ms")
	b.ReportMetric(float64(walk[len(walk)*99/100].Microseconds())/1000, "dup_walk_p99_ms")
	b.ReportMetric(float64(reads), "dup_intermediate_reads")
	if dedup && runs != stages*chainBenchUploads/2 {
		b.Errorf("%d runs over %d stages, want %d per stage", runs, stages, chainBenchUploads/2)
	}
}
