package postgres

import "time"

// SchemaVersionForTest is the newest embedded migration's version.
func SchemaVersionForTest() int { return schemaVersion() }

// SkewClockForTest sets d's view of the time skew ahead of (or, negative,
// behind) the real clock, as on a replica whose clock is off. Call it
// before d is used.
func SkewClockForTest(d *DB, skew time.Duration) {
	d.clock = func() time.Time { return time.Now().Add(skew) }
}
