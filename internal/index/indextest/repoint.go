package indextest

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
)

// RepointOutput checks that RepointOutput changes only the Output and
// Updated of a Done record still last updated at the time given, and
// answers ErrNotFound, changing nothing, for every other record.
func RepointOutput(t *testing.T, idx index.Index) {
	ctx := t.Context()
	out := index.Output{Bucket: "b", Key: "o1", ETag: "e1", Size: 3, ContentType: "image/jpeg", SHA256: "ab"}
	r := mustMiss(t, idx, "k", "a", lease)
	if err := idx.SetExternalID(ctx, "k", r.Token, "ext"); err != nil {
		t.Fatal(err)
	}
	if err := idx.Complete(ctx, "k", r.Token, index.Completion{Output: &out, Result: json.RawMessage(`{"ok":true}`), FunctionMS: 12.5}); err != nil {
		t.Fatal(err)
	}
	done := mustGet(t, idx, "k")
	time.Sleep(2 * time.Millisecond) // so that now is after done.Updated on any clock

	moved := index.Output{Bucket: "b2", Key: "o2", ETag: "e2", Size: 3, SHA256: "ab", ResultObject: true}
	if err := idx.RepointOutput(ctx, "k", done.Updated, moved); err != nil {
		t.Fatalf("RepointOutput of a Done record: %v", err)
	}
	got := mustGet(t, idx, "k")
	if got.Output == nil || *got.Output != moved {
		t.Fatalf("output after RepointOutput = %+v, want %+v", got.Output, moved)
	}
	if !got.Updated.After(done.Updated) {
		t.Fatalf("updated after RepointOutput = %s, want after %s", got.Updated, done.Updated)
	}
	want := done
	want.Output, want.Updated = &moved, got.Updated
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("RepointOutput changed more than output and updated:\n got %+v\nwant %+v", got, want)
	}

	// Another replica repointed (or deleted and claimed) since: the old
	// update time no longer matches.
	if err := idx.RepointOutput(ctx, "k", done.Updated, out); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("RepointOutput with a stale update time = %v, want ErrNotFound", err)
	}
	if again := mustGet(t, idx, "k"); !reflect.DeepEqual(again, got) {
		t.Fatalf("a stale RepointOutput changed the record:\n got %+v\nwant %+v", again, got)
	}
	// The current update time repoints again.
	if err := idx.RepointOutput(ctx, "k", got.Updated, out); err != nil {
		t.Fatalf("RepointOutput with the current update time: %v", err)
	}
	if back := mustGet(t, idx, "k"); *back.Output != out {
		t.Fatalf("output after the second RepointOutput = %+v, want %+v", back.Output, out)
	}

	if err := idx.RepointOutput(ctx, "absent", done.Updated, out); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("RepointOutput of an absent key = %v, want ErrNotFound", err)
	}
	if _, err := idx.Get(ctx, "absent"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("RepointOutput of an absent key created a record: %v", err)
	}

	running := mustMiss(t, idx, "run", "a", lease)
	if err := idx.RepointOutput(ctx, "run", running.Updated, out); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("RepointOutput of a running claim = %v, want ErrNotFound", err)
	}
	if got := mustGet(t, idx, "run"); got.State != index.Running || got.Output != nil || got.Token != running.Token || !got.Updated.Equal(running.Updated) {
		t.Fatalf("RepointOutput changed a running claim: %+v", got)
	}

	failed := mustMiss(t, idx, "failed", "a", lease)
	if err := idx.Fail(ctx, "failed", failed.Token, "boom", "function", true); err != nil {
		t.Fatal(err)
	}
	f := mustGet(t, idx, "failed")
	if err := idx.RepointOutput(ctx, "failed", f.Updated, out); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("RepointOutput of a cached failure = %v, want ErrNotFound", err)
	}
	if got := mustGet(t, idx, "failed"); !reflect.DeepEqual(got, f) {
		t.Fatalf("RepointOutput changed a cached failure:\n got %+v\nwant %+v", got, f)
	}
}

func mustGet(t *testing.T, idx index.Claims, key string) index.Record {
	t.Helper()
	r, err := idx.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return r
}
