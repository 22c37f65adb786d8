package postgres

// SchemaVersionForTest is the newest embedded migration's version.
func SchemaVersionForTest() int { return schemaVersion() }
