package pipeline_test

// Tests of the review of issue 17's fixes: each is named after the
// promise it checks and failed on the parent of its fix.

import (
	"context"
	"fmt"
	"testing"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// goneBucketStore is the store after bucket gone was deleted: every
// request to it is refused as no such bucket.
type goneBucketStore struct {
	objects.Store
	gone string
}

func (s goneBucketStore) refused(bucket string) error {
	return fmt.Errorf("objects: bucket %s: %w", bucket, objects.ErrNoSuchBucket)
}

func (s goneBucketStore) Stat(ctx context.Context, bucket, key string) (objects.Info, error) {
	if bucket == s.gone {
		return objects.Info{}, s.refused(bucket)
	}
	return s.Store.Stat(ctx, bucket, key)
}

func (s goneBucketStore) Copy(ctx context.Context, src objects.Info, dstBucket, dstKey string, opts objects.PutOptions) (objects.Info, error) {
	if src.Bucket == s.gone {
		return objects.Info{}, s.refused(src.Bucket)
	}
	if dstBucket == s.gone {
		return objects.Info{}, s.refused(dstBucket)
	}
	return s.Store.Copy(ctx, src, dstBucket, dstKey, opts)
}

// A hit whose recorded output lives in a bucket since deleted runs the
// function again: the missing source is the record's problem, not the
// event's. On the parent commit the hit was a dead letter of class
// store ("copy recorded output ...: no such bucket"), for every later
// hit of that content, and the record stayed.
func TestDeliver_DeletedSourceBucketIsAMissNotADeadLetter(t *testing.T) {
	e := newEnv(t)
	_, old, _ := newIndexAndBuckets(t, "old")
	e.deploy("upper", func(f *registry.Function) { f.Output.Bucket = old })
	e.handle(e.put("a.txt", "same content"))
	e.deploy("upper", nil) // same code and params, so the same key; outputs now go to e.out
	p := e.replica("after-delete", e.idx, goneBucketStore{Store: store, gone: old})
	for _, k := range []string{"b.txt", "c.txt"} {
		if err := p.Handle(t.Context(), e.put(k, "same content")); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range e.activations() {
		if r.DeadLetter {
			t.Errorf("%s: dead letter, class %q: %s", r.Event.Key, r.ErrorClass, r.Error)
		}
	}
	d := e.decisions()
	if d["b.txt"] != activation.Miss || d["c.txt"] != activation.Hit {
		t.Errorf("b.txt %s, want miss (its recorded output's bucket is gone); c.txt %s, want hit", d["b.txt"], d["c.txt"])
	}
	if got := e.rt.calls.Load(); got != 2 {
		t.Errorf("function ran %d times, want 2", got)
	}
	if got := e.output("c.txt"); got != "SAME CONTENT" {
		t.Errorf("c.txt output %q", got)
	}
}
