package testutil

import (
	"path/filepath"
	"testing"

	"github.com/dedupfn/dedupfn/internal/index"
	_ "github.com/dedupfn/dedupfn/internal/index/bolt" // registers bolt:
)

// BoltIndex opens a bolt index in a directory of tb's own, closed when tb
// ends: the embedded index a test's pipeline, registry or API runs on.
func BoltIndex(tb testing.TB) index.Index {
	tb.Helper()
	idx, err := index.Open(tb.Context(), "bolt:"+filepath.Join(tb.TempDir(), "index.db"), index.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { idx.Close() })
	return idx
}
