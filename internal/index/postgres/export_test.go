package postgres

import (
	"testing"
	"time"
)

// SchemaVersionForTest is the newest embedded migration's version.
func SchemaVersionForTest() int { return schemaVersion() }

// SkewClockForTest sets d's view of the time skew ahead of (or, negative,
// behind) the real clock, as on a replica whose clock is off. Call it
// before d is used.
func SkewClockForTest(d *DB, skew time.Duration) {
	d.clock = func() time.Time { return time.Now().Add(skew) }
}

// ClearLeaseForTest sets a claim's lease_until to NULL, as a row written
// by hand or damaged may have it (see indextest.ZeroLeaseIsLocked).
func (d *DB) ClearLeaseForTest(t testing.TB, key string) {
	t.Helper()
	if _, err := d.pool.Exec(t.Context(), `UPDATE dedupfn_claims SET lease_until = NULL WHERE key = $1`, key); err != nil {
		t.Fatal(err)
	}
}

// DocsPrefixSQLForTest is DocsPrefix's statement, for its plan.
const DocsPrefixSQLForTest = docsPrefixSQL
