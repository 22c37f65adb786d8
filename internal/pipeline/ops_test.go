package pipeline_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
)

func TestRetry_DeadLetterAfterFix(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.deploy("conv", func(f *registry.Function) { f.Params = map[string]string{"mode": "fail"} })
	e.handle(e.put("a.txt", "data"))
	recs := e.activations()
	if len(recs) != 1 || !recs[0].DeadLetter {
		t.Fatalf("records %+v: want one dead letter", recs)
	}
	dead := recs[0]

	t.Run("NotFixed", func(t *testing.T) {
		rec, err := e.pipe.Retry(ctx, dead)
		if err != nil || rec.Decision != activation.Error || !rec.DeadLetter || rec.RetryOf != dead.ID || rec.ID == dead.ID {
			t.Fatalf("Retry = %+v, %v; want a new dead letter retrying %s", rec, err, dead.ID)
		}
	})
	t.Run("Fixed", func(t *testing.T) {
		e.deploy("conv", nil) // the fix: a new version without the failure
		rec, err := e.pipe.Retry(ctx, dead)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Decision != activation.Miss || rec.DeadLetter || rec.RetryOf != dead.ID || rec.ID == dead.ID || rec.Output == nil {
			t.Fatalf("Retry = %+v; want a new successful activation retrying %s", rec, dead.ID)
		}
		if got := e.output(rec.Output.Key); got != "DATA" {
			t.Fatalf("output %q, want DATA", got)
		}
		stored, err := e.idx.GetActivation(ctx, rec.ID)
		if err != nil || stored.RetryOf != dead.ID {
			t.Fatalf("stored retry %+v, %v", stored, err)
		}
		if old, err := e.idx.GetActivation(ctx, dead.ID); err != nil || !old.DeadLetter {
			t.Fatalf("the dead letter must be kept as it was: %+v, %v", old, err)
		}
	})
	t.Run("NotDeadLetter", func(t *testing.T) {
		ok := e.activations()[0]
		if _, err := e.pipe.Retry(ctx, ok); !errors.Is(err, pipeline.ErrNotRetryable) {
			t.Fatalf("Retry of %s (%s) = %v, want ErrNotRetryable", ok.ID, ok.Decision, err)
		}
	})
	t.Run("Malformed", func(t *testing.T) {
		bad := activation.Record{ID: "x", DeadLetter: true, Decision: activation.Error, ErrorClass: "event"}
		if _, err := e.pipe.Retry(ctx, bad); !errors.Is(err, pipeline.ErrNotRetryable) {
			t.Fatalf("Retry of a malformed event = %v, want ErrNotRetryable", err)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for the handler's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogs_EveryLineNamesTheEvent: each line logged on an event's behalf
// (here a retried run and its record) is JSON carrying the activation id,
// function, bucket and key.
func TestLogs_EveryLineNamesTheEvent(t *testing.T) {
	e := newEnv(t)
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := pipeline.New(pipeline.Config{
		Index: e.idx, Objects: store, Registry: e.reg, Runtimes: map[string]runtime.Runtime{"test": e.rt},
		Owner: "log-test", SpoolDir: t.TempDir(), RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.deploy("flaky", func(f *registry.Function) { f.Params = map[string]string{"mode": "flaky"} })
	if err := p.Handle(t.Context(), e.put("a.txt", "data")); err != nil {
		t.Fatal(err)
	}
	recs := e.activations()
	if len(recs) != 1 {
		t.Fatalf("records %+v, want 1", recs)
	}
	want := map[string]string{"activation": recs[0].ID, "fn": "flaky", "bucket": e.in, "key": "a.txt"}
	msgs := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader([]byte(buf.String())))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, sc.Text())
		}
		msgs[line["msg"].(string)] = true
		for k, v := range want {
			if line[k] != v {
				t.Errorf("line %s: %s = %v, want %q", sc.Text(), k, line[k], v)
			}
		}
	}
	for _, m := range []string{"run failed, retrying", "activation recorded"} {
		if !msgs[m] {
			t.Errorf("no %q line in:\n%s", m, buf.String())
		}
	}
}
