package bolt_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/index/bolt"
)

func openAt(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// A miss's claim writes nothing: its one commit is the completion.
func TestRunningClaim_CostsNoCommit(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "index.db"))
	defer db.Close()
	before := db.CommitsForTest(t)
	c, err := db.Claim(t.Context(), "k", index.Parts{Function: "f"}, "a", time.Minute)
	if err != nil || c.Outcome != index.Miss {
		t.Fatalf("claim = %v, %v", c.Outcome, err)
	}
	if err := db.Renew(t.Context(), "k", c.Record.Token, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := db.CommitsForTest(t) - before; n != 0 {
		t.Fatalf("a claim and a renewal made %d commits, want 0", n)
	}
	if got, err := db.Get(t.Context(), "k"); err != nil || got.State != index.Running || got.Token != c.Record.Token {
		t.Fatalf("Get of the running claim = %+v, %v", got, err)
	}
	if err := db.Complete(t.Context(), "k", c.Record.Token, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
		t.Fatal(err)
	}
	if n := db.CommitsForTest(t) - before; n != 1 {
		t.Fatalf("claim, renew and complete made %d commits, want 1", n)
	}
}

// The file is locked to one process: a claim running when it stopped
// had its owner stop with it, so after a restart the key is claimed at
// once instead of after the dead owner's lease.
func TestRunningClaim_EndsWithTheProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	db := openAt(t, path)
	if c, err := db.Claim(t.Context(), "k", index.Parts{Function: "f"}, "a", time.Hour); err != nil || c.Outcome != index.Miss {
		t.Fatalf("claim = %v, %v", c.Outcome, err)
	}
	if c, err := db.Claim(t.Context(), "k", index.Parts{Function: "f"}, "b", time.Hour); err != nil || c.Outcome != index.Wait {
		t.Fatalf("second claim = %v, %v; want wait", c.Outcome, err)
	}
	db.Close()
	db = openAt(t, path)
	defer db.Close()
	if c, err := db.Claim(t.Context(), "k", index.Parts{Function: "f"}, "b", time.Hour); err != nil || c.Outcome != index.Miss || c.Record.Attempt != 1 {
		t.Fatalf("claim after a restart = %v attempt %d, %v; want a miss", c.Outcome, c.Record.Attempt, err)
	}
}

// A claim whose remote activation is known is on disk: after a restart
// it is still held (the successor polls that activation when the lease
// ends), with its external id, and it ends as any claim does.
func TestRunningClaim_ExternalIDSurvivesARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	db := openAt(t, path)
	c, err := db.Claim(t.Context(), "k", index.Parts{Function: "f"}, "a", time.Hour)
	if err != nil || c.Outcome != index.Miss {
		t.Fatalf("claim = %v, %v", c.Outcome, err)
	}
	if err := db.SetExternalID(t.Context(), "k", c.Record.Token, "ow-123"); err != nil {
		t.Fatal(err)
	}
	if err := db.Renew(t.Context(), "k", c.Record.Token, time.Hour); err != nil {
		t.Fatalf("renew of a claim on disk: %v", err)
	}
	db.Close()
	db = openAt(t, path)
	defer db.Close()
	got, err := db.Get(t.Context(), "k")
	if err != nil || got.State != index.Running || got.ExternalID != "ow-123" || got.Token != c.Record.Token {
		t.Fatalf("after a restart: %+v, %v", got, err)
	}
	if w, err := db.Claim(t.Context(), "k", index.Parts{Function: "f"}, "b", time.Hour); err != nil || w.Outcome != index.Wait {
		t.Fatalf("claim after a restart = %v, %v; want wait", w.Outcome, err)
	}
	if err := db.Complete(t.Context(), "k", "stale", index.Completion{}); !errors.Is(err, index.ErrNotOwner) {
		t.Fatalf("complete with another token = %v, want ErrNotOwner", err)
	}
	if err := db.Complete(t.Context(), "k", c.Record.Token, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
		t.Fatal(err)
	}
	if h, err := db.Claim(t.Context(), "k", index.Parts{Function: "f"}, "b", time.Hour); err != nil || h.Outcome != index.Hit {
		t.Fatalf("claim after complete = %v, %v; want hit", h.Outcome, err)
	}
}
