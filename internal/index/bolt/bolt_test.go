package bolt_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/index/bolt"
	"github.com/dedupfn/dedupfn/internal/index/indextest"
)

func TestConformance(t *testing.T) {
	indextest.Run(t, func(t testing.TB) index.Index {
		db, err := bolt.OpenFile(filepath.Join(t.TempDir(), "index.db"))
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

func TestOpenURL(t *testing.T) {
	dir := t.TempDir()
	for _, raw := range []string{"bolt:" + filepath.Join(dir, "a.db"), "bolt://" + filepath.Join(dir, "b.db")} {
		idx, err := index.Open(t.Context(), raw, index.Options{})
		if err != nil {
			t.Fatalf("Open(%s): %v", raw, err)
		}
		idx.Close()
	}
	if _, err := bolt.Open(t.Context(), &url.URL{Scheme: "bolt"}, index.Options{}); err == nil || !strings.Contains(err.Error(), "must name a file") {
		t.Fatalf("Open without a path: %v", err)
	}
	if _, err := index.Open(t.Context(), "bolt://data/index.db", index.Options{}); err == nil || !strings.Contains(err.Error(), `got host "data"`) {
		t.Fatalf("Open of bolt://data/index.db: %v, want the host refused", err)
	}
}

// bolt:relative/path is relative to the working directory, and missing
// directories are created.
func TestOpenRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	idx, err := index.Open(t.Context(), "bolt:data/sub/index.db", index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if _, err := os.Stat(filepath.Join(dir, "data", "sub", "index.db")); err != nil {
		t.Fatalf("index file not where the relative path says: %v", err)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	db, err := bolt.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := db.Claim(t.Context(), "k", index.Parts{Function: "f"}, "a", time.Minute)
	if err := db.Complete(t.Context(), "k", c.Record.Token, index.Completion{Output: &index.Output{Key: "o"}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = bolt.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if c, _ := db.Claim(t.Context(), "k", index.Parts{}, "b", time.Minute); c.Outcome != index.Hit {
		t.Fatalf("after reopen: %v, want hit", c.Outcome)
	}
}

func TestSecondProcessGetsClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	db, err := bolt.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = bolt.OpenFile(path) // bbolt's flock is per open file: a second open in-process blocks like a second process
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second open: %v, want a clear lock error", err)
	}
}

// A record without a lease deadline counts as locked, never free.
func TestZeroLeaseIsLocked(t *testing.T) {
	db, err := bolt.OpenFile(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	indextest.ZeroLeaseIsLocked(t, db, db.ClearLeaseForTest)
}

// TestDocRevisions: bolt counts document writes per kind, so the
// registry polls a number instead of re-reading every definition
// (issue 17 item 12).
func TestDocRevisions(t *testing.T) {
	db, err := bolt.OpenFile(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	indextest.DocRevisions(t, db)
}

// A Complete refused for a stale token stores none of its documents.
func TestCompleteDocsOnlyWithTheClaim(t *testing.T) {
	db, err := bolt.OpenFile(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	indextest.DocsOnlyWithTheClaim(t, db)
}
