package bolt_test

import (
	"errors"
	"path/filepath"
	"strings"
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
	path := filepath.Join(t.TempDir(), "index.db")
	db := openAt(t, path)
	defer func() { db.Close() }()
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
	// Done at once (early release), for every reader of this process;
	// its commit is queued, and made by the next write at the latest.
	if got, err := db.Get(t.Context(), "k"); err != nil || got.State != index.Done || got.Output == nil {
		t.Fatalf("Get right after Complete = %+v, %v; want the done record", got, err)
	}
	if c, err := db.Claim(t.Context(), "k", index.Parts{Function: "f"}, "b", time.Minute); err != nil || c.Outcome != index.Hit {
		t.Fatalf("claim right after Complete = %v, %v; want a hit", c.Outcome, err)
	}
	db.WaitQueuedForTest()
	if n := db.CommitsForTest(t) - before; n != 1 {
		t.Fatalf("claim, renew and complete made %d commits, want 1", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path)
	if got, err := db.Get(t.Context(), "k"); err != nil || got.State != index.Done {
		t.Fatalf("after a reopen, Get = %+v, %v; want the done record on disk", got, err)
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

// A completion whose queued commit fails leaves its claim running again,
// its lease over: the key's next claim runs it again, and its documents,
// which were read from memory meanwhile, are gone.
func TestRunningClaim_FailedCommitRunsAgain(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "index.db"))
	defer db.Close()
	c, err := db.Claim(t.Context(), "k", index.Parts{Function: "f"}, "a", time.Hour)
	if err != nil || c.Outcome != index.Miss {
		t.Fatalf("claim = %v, %v", c.Outcome, err)
	}
	tooLong := strings.Repeat("x", 40000) // over bbolt's key size: the commit fails
	docs := []index.Doc{{Kind: "output", ID: tooLong, Doc: []byte(`{}`)}}
	if err := db.Complete(t.Context(), "k", c.Record.Token, index.Completion{Output: &index.Output{Key: "o"}, Docs: docs}); err != nil {
		t.Fatalf("Complete = %v; want nil: its commit is queued", err)
	}
	db.WaitQueuedForTest()
	if got, err := db.Get(t.Context(), "k"); err != nil || got.State != index.Running || got.Token != "" {
		t.Fatalf("after the failed commit, Get = %+v, %v; want running, no owner", got, err)
	}
	again, err := db.Claim(t.Context(), "k", index.Parts{Function: "f"}, "b", time.Hour)
	if err != nil || again.Outcome != index.Miss || again.Record.Attempt != 2 {
		t.Fatalf("claim after the failed commit = %v (attempt %d), %v; want a miss, attempt 2", again.Outcome, again.Record.Attempt, err)
	}
	if _, err := db.GetDoc(t.Context(), "output", tooLong); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("GetDoc of the failed completion's document = %v, want not found", err)
	}
}
