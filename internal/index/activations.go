package index

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
)

// Activations are the activation records and their totals: what the API
// lists and counts, and what the pipeline records. All methods are safe
// for concurrent use, from any number of goroutines and replicas.
type Activations interface {
	// AddActivation stores an activation record. Idempotent on r.ID: a
	// second add with the same ID changes nothing and does not count twice
	// (as long as the first is kept: see PruneActivations).
	//
	// docs are stored as PutDocs would, also when the record is already
	// there: with it, in one transaction, on bolt and PostgreSQL (the
	// pipeline's provenance of the output an event wrote, so that the
	// event ends in one commit); before it on CouchDB.
	AddActivation(ctx context.Context, r activation.Record, docs ...Doc) error
	// GetActivation returns the record with id, or ErrNotFound.
	GetActivation(ctx context.Context, id string) (activation.Record, error)
	// ActivationsByPrefix returns the records of tenant ("" = of every
	// tenant) whose id starts with prefix, in id order: at most limit of
	// them (limit > 0). Another tenant's records are never returned, and
	// never take a place within the limit. It reads the records with the
	// prefix only (an index range), not the whole listing: short ids are
	// resolved with it.
	ActivationsByPrefix(ctx context.Context, prefix, tenant string, limit int) ([]activation.Record, error)
	// Activations returns records matching f, newest first: at most
	// ActivationsLimit(f) of them.
	Activations(ctx context.Context, f activation.Filter) ([]activation.Record, error)
	// Stats returns totals over all activations of tenant ("" = all) ever
	// added: pruning activations does not lower them.
	Stats(ctx context.Context, tenant string) (activation.Stats, error)
	// FunctionStats returns the totals of each function of tenant ("" =
	// of every tenant), sorted by tenant, then function (see
	// SortFunctionStats), counted exactly like Stats: each activation id
	// once, and pruning does not lower them, so a tenant's functions add
	// up to its Stats. A function without activations is not listed.
	// In a store written before these totals existed they start from the
	// activations still kept when it was first opened by a version that
	// has them: pruned ones count in Stats only.
	FunctionStats(ctx context.Context, tenant string) ([]activation.FunctionStats, error)
	// PruneActivations deletes the activation records that started before
	// before, with their listing entries, and returns how many it deleted. Stats keep counting them. Idempotent; safe to run
	// on several replicas at once (each record is counted once).
	PruneActivations(ctx context.Context, before time.Time) (int, error)
}

// DefaultActivationsLimit is how many records Activations returns when
// the filter sets no limit.
const DefaultActivationsLimit = 100

// ActivationsLimit is how many records Activations returns for f: its
// Limit, or DefaultActivationsLimit when that is not > 0.
func ActivationsLimit(f activation.Filter) int {
	if f.Limit <= 0 {
		return DefaultActivationsLimit
	}
	return f.Limit
}

// SortFunctionStats sorts per-function totals as FunctionStats returns
// them: by tenant, then function.
func SortFunctionStats(fs []activation.FunctionStats) {
	slices.SortFunc(fs, func(a, b activation.FunctionStats) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Function, b.Function))
	})
}
