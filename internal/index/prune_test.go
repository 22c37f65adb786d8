package index_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/index/bolt"
)

// TestRunPruner: the pruning loop deletes activations older than the
// retention, on start and then every interval, keeps newer ones, and
// returns when its context ends; retention 0 keeps everything.
func TestRunPruner(t *testing.T) {
	db, err := bolt.OpenFile(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	add := func(id string, age time.Duration) {
		t.Helper()
		if err := db.AddActivation(t.Context(), activation.Record{ID: id, Tenant: "t", Function: "f", Start: time.Now().Add(-age)}); err != nil {
			t.Fatal(err)
		}
	}
	add("old", 2*time.Hour)
	add("new", time.Minute)

	// Retention 0: returns at once, prunes nothing.
	done := make(chan struct{})
	go func() { index.RunPruner(t.Context(), db, 0, time.Millisecond, nil); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunPruner with retention 0 did not return")
	}
	if _, err := db.GetActivation(t.Context(), "old"); err != nil {
		t.Fatalf("retention 0 pruned: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done = make(chan struct{})
	go func() { index.RunPruner(ctx, db, time.Hour, 20*time.Millisecond, nil); close(done) }()
	waitGone := func(id string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := db.GetActivation(t.Context(), id); errors.Is(err, index.ErrNotFound) {
				return
			}
		}
		t.Fatalf("activation %s older than the retention still there", id)
	}
	waitGone("old")
	add("old2", 3*time.Hour) // pruned by a later tick, not only the first
	waitGone("old2")
	if _, err := db.GetActivation(t.Context(), "new"); err != nil {
		t.Fatalf("activation within the retention pruned: %v", err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunPruner did not return after its context ended")
	}
}
