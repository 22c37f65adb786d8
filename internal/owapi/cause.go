package owapi

import "github.com/dedupfn/dedupfn/internal/activation"

// setCause records the activation that caused rec.
func setCause(rec *activation.Record, cause string) {}

// recordCause is the activation that caused rec.
func recordCause(rec activation.Record) string { return "" }
