package pipeline_test

import (
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// Issue 19 item 3: a missing output bucket is a permanent store error.
// It was a platform error, retried 3 times (running the function each
// time) and shown as the store's raw XML; now the function runs once and
// the event is one dead letter with a one-line message naming the bucket.
// The same holds with --no-dedup, and on a hit whose output is copied.
func TestMissingOutputBucket_OneDeadLetterNoRerun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noDedup bool
	}{{"Dedup", false}, {"NoDedup", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			missing := e.out + "-missing"
			e.deploy("upper", func(f *registry.Function) { f.Output.Bucket = missing; f.NoDedup = tc.noDedup })
			e.handle(e.put("cat.jpg", "meow"))
			if got := e.rt.calls.Load(); got != 1 {
				t.Errorf("function executed %d times, want 1: retrying cannot create the bucket", got)
			}
			recs := e.activations()
			if len(recs) != 1 {
				t.Fatalf("%d activations, want 1", len(recs))
			}
			wantStoreDeadLetter(t, recs[0], missing)
		})
	}
}

// Issue 19 item 3: an event from a bucket that does not exist (deleted
// since the upload) is a dead letter naming it, not "skipped: deleted or
// overwritten since the event", and runs nothing.
func TestMissingTriggerBucket_DeadLetter(t *testing.T) {
	e := newEnv(t)
	missing := e.in + "-missing"
	e.deploy("upper", func(f *registry.Function) { f.Trigger.Bucket = missing })
	e.handle(event.Event{Source: "test", Bucket: missing, Key: "cat.jpg", ETag: "x", Size: 4})
	if got := e.rt.calls.Load(); got != 0 {
		t.Errorf("function executed %d times, want 0", got)
	}
	recs := e.activations()
	if len(recs) != 1 {
		t.Fatalf("%d activations, want 1", len(recs))
	}
	wantStoreDeadLetter(t, recs[0], missing)
}

func wantStoreDeadLetter(t *testing.T, r activation.Record, bucket string) {
	t.Helper()
	if r.Decision != activation.Error || !r.DeadLetter || r.ErrorClass != "store" || r.Attempts > 1 {
		t.Errorf("decision %s, dead letter %v, class %q, attempts %d; want a store error, dead-lettered after one attempt",
			r.Decision, r.DeadLetter, r.ErrorClass, r.Attempts)
	}
	if !strings.Contains(r.Error, `bucket "`+bucket+`" does not exist`) || !strings.Contains(r.Error, "s3 mb s3://"+bucket) ||
		strings.ContainsAny(r.Error, "<\n") {
		t.Errorf("error %q: want one line naming bucket %s and how to create it", r.Error, bucket)
	}
}

// Issue 19 item 3: a hit whose output bucket is missing (redeployed onto
// it: the version, and so the result, stays) is one dead letter too, and
// neither runs the function nor forgets the recorded result.
func TestMissingOutputBucket_HitDeadLetter(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	e.handle(e.put("a.jpg", "same"))
	missing := e.out + "-missing"
	e.deploy("upper", func(f *registry.Function) { f.Output.Bucket = missing })
	e.handle(e.put("b.jpg", "same"))
	if got := e.rt.calls.Load(); got != 1 {
		t.Errorf("function executed %d times, want 1 (the first upload's run)", got)
	}
	var rec activation.Record
	for _, r := range e.activations() {
		if r.Event.Key == "b.jpg" {
			rec = r
		}
	}
	wantStoreDeadLetter(t, rec, missing)
	e.deploy("upper", nil) // back to the bucket that exists: the result is still there
	e.handle(e.put("c.jpg", "same"))
	if d := e.decisions()["c.jpg"]; d != activation.Hit || e.rt.calls.Load() != 1 {
		t.Errorf("c.jpg after redeploying onto the existing bucket: %s, %d executions; want a hit, 1", d, e.rt.calls.Load())
	}
}
