package couchdb

import "testing"

// DesignVersionForTest is the version of the design document this
// version writes.
const DesignVersionForTest = designVersion

// ClearLeaseForTest removes the lease_until field of a claim document, as
// a document written by hand or by an older version may lack it (see
// indextest.ZeroLeaseIsLocked).
func (d *DB) ClearLeaseForTest(t testing.TB, key string) {
	t.Helper()
	var doc map[string]any
	if err := d.db.Get(t.Context(), claimPrefix+key).ScanDoc(&doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "lease_until")
	if _, err := d.db.Put(t.Context(), claimPrefix+key, doc); err != nil {
		t.Fatal(err)
	}
}

// SetListPageForTest makes prefixRange read n documents a request until
// the test ends, so that a test crosses page boundaries with few documents.
func SetListPageForTest(t testing.TB, n int) {
	t.Helper()
	old := listPage
	listPage = n
	t.Cleanup(func() { listPage = old })
}
