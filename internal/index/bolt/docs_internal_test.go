package bolt

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/dedupfn/dedupfn/internal/index"
)

func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := OpenFile(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestPutDocs_OneCommit: the documents of one PutDocs are one write
// transaction, whatever their kinds.
func TestPutDocs_OneCommit(t *testing.T) {
	db := openTest(t)
	start := db.CommitsForTest(t)
	err := db.PutDocs(t.Context(), []index.Doc{
		{Kind: "derived", ID: "a", Doc: []byte(`{}`)},
		{Kind: "output", ID: "b", Doc: []byte(`{}`)},
		{Kind: "copy", ID: "c", Doc: []byte(`{}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := db.CommitsForTest(t) - start; n != 1 {
		t.Fatalf("PutDocs of 3 documents made %d commits, want 1", n)
	}
}

// TestPutDocs_GroupCommit: document writes that arrive while another
// write commits share the next commit, instead of one commit each.
func TestPutDocs_GroupCommit(t *testing.T) {
	db := openTest(t)
	start := db.CommitsForTest(t)
	started, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the commit in flight
		defer wg.Done()
		var once sync.Once
		db.w.Update(func(*bbolt.Tx) error {
			once.Do(func() { close(started) })
			<-release
			return nil
		})
	}()
	<-started
	const writers = 16
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint(i)
			if i%2 == 0 {
				errs[i] = db.PutDoc(t.Context(), "output", id, []byte(`{}`))
			} else {
				errs[i] = db.PutDocs(t.Context(), []index.Doc{{Kind: "derived", ID: id, Doc: []byte(`{}`)}, {Kind: "output", ID: id, Doc: []byte(`{}`)}})
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // let them queue behind the commit in flight
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	n := db.CommitsForTest(t) - start
	t.Logf("%d document writers behind one commit: %d commits in all", writers, n)
	if n > writers/2 {
		t.Fatalf("%d concurrent document writes made %d commits, want them to share (about 2)", writers, n)
	}
}
