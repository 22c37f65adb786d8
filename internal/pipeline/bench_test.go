package pipeline_test

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
)

// hitBench is a pipeline on a bolt index and the embedded store, with one
// function deployed and one 4 KiB content already run: every event of
// its keys is a hit.
type hitBench struct {
	pipe *pipeline.Pipeline
	idx  index.Index
	evs  []event.Event // events of keys holding the run content
	seq  atomic.Int64
}

// newHitBench uploads the content under keys+1 keys and handles the
// first (the miss that records the result).
func newHitBench(b *testing.B, keys int) *hitBench {
	b.Helper()
	ctx := b.Context()
	idx, in, out := newIndexAndBuckets(b, "bench-")
	reg := registry.New(idx, nil)
	if _, err := reg.Deploy(ctx, registry.Function{Name: "upper", Runtime: "test",
		Trigger: registry.Trigger{Bucket: in}, Output: registry.Output{Bucket: out}}, []byte("code of upper")); err != nil {
		b.Fatal(err)
	}
	pipe, err := pipeline.New(pipeline.Config{
		Index: idx, Objects: store, Registry: reg, Runtimes: map[string]runtime.Runtime{"test": &testRuntime{}},
		Owner: "bench", SpoolDir: b.TempDir(),
	})
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("dedupfn "), 512)
	h := &hitBench{pipe: pipe, idx: idx}
	for i := range keys + 1 {
		key := fmt.Sprintf("obj/%04d", i)
		info, err := store.Put(ctx, in, key, bytes.NewReader(body), int64(len(body)), objects.PutOptions{})
		if err != nil {
			b.Fatal(err)
		}
		h.evs = append(h.evs, event.Event{Source: "bench", Name: "s3:ObjectCreated:Put", Bucket: in, Key: key,
			ETag: info.ETag, Size: info.Size, SHA256: info.SHA256, Time: time.Now()})
	}
	h.handle(b, 0) // the miss
	h.evs = h.evs[1:]
	return h
}

// handle handles event i (mod len) as a new upload of the same bytes
// (its own nonce, so not a redelivery of an event already recorded).
func (h *hitBench) handle(b *testing.B, i int) {
	ev := h.evs[i%len(h.evs)]
	ev.Nonce = strconv.FormatInt(h.seq.Add(1), 10)
	if err := h.pipe.Handle(b.Context(), ev); err != nil {
		b.Fatal(err)
	}
}

// check fails b unless every event after the first was a hit.
func (h *hitBench) check(b *testing.B) {
	st, err := h.idx.Stats(b.Context(), "")
	if err != nil {
		b.Fatal(err)
	}
	if st.Runs != 1 || st.Errors != 0 || st.Hits != st.Events-1 {
		b.Fatalf("stats %+v: want 1 run and only hits after it", st)
	}
}

// BenchmarkPipelineHit is Handle of an event whose content has a
// recorded result (warm bolt index, embedded store, 4 KiB): everything a
// hit does, fingerprint, claim, delivery of the output, activation
// record. serial: one at a time, events carrying the store's SHA-256 as
// the embedded source's do; serial-read: events without it (an S3 with
// no trusted checksum), so the hit reads and hashes the object; parallel:
// 16 goroutines, with the SHA-256.
func BenchmarkPipelineHit(b *testing.B) {
	for _, tc := range []struct {
		name    string
		trusted bool
	}{{"serial", true}, {"serial-read", false}} {
		b.Run(tc.name, func(b *testing.B) {
			benchHitSerial(b, tc.trusted)
		})
	}
	b.Run("parallel", func(b *testing.B) {
		h := newHitBench(b, 16)
		var next atomic.Int64
		b.SetParallelism(8) // 16 goroutines on 2 cores
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.handle(b, int(next.Add(1)))
			}
		})
		b.StopTimer()
		h.check(b)
	})
}

func benchHitSerial(b *testing.B, trusted bool) {
	h := newHitBench(b, 16)
	if !trusted {
		for i := range h.evs {
			h.evs[i].SHA256 = ""
		}
	}
	var lat []time.Duration
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		t := time.Now()
		h.handle(b, i)
		lat = append(lat, time.Since(t))
		i++
	}
	b.StopTimer()
	h.check(b)
	reportP50(b, lat)
}

// reportP50 reports the median of per-op latencies.
func reportP50(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
}
