package pipeline

import (
	"context"
	"fmt"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// CheckBuckets refuses fn when its trigger or output bucket does not
// exist, with an error naming the bucket and how to create it (it wraps
// objects.ErrNoSuchBucket): deployed anyway, its events would never come,
// or every run would be a dead letter. Other store errors are returned
// as they are. An action (no buckets: registry.Function.IsAction) is
// refused as invalid (registry.ErrInvalid): dedupfn's own API deploys
// bucket functions; actions come through the OpenWhisk API, which has no
// buckets to check.
func (p *Pipeline) CheckBuckets(ctx context.Context, fn registry.Function) error {
	if fn.IsAction() {
		return fmt.Errorf("%w: function %s: trigger bucket must be set (a function without buckets is an OpenWhisk action: create it through /api/v1)", registry.ErrInvalid, fn.Name)
	}
	for _, b := range []struct{ role, name string }{{"trigger", fn.Trigger.Bucket}, {"output", fn.Output.Bucket}} {
		if b.role == "output" && b.name == fn.Trigger.Bucket {
			break // checked as the trigger
		}
		cctx, cancel := p.callCtx(ctx)
		ok, err := p.cfg.Objects.BucketExists(cctx, b.name)
		cancel()
		if err != nil {
			return fmt.Errorf("function %s: check %s bucket %s: %w", fn.Name, b.role, b.name, err)
		}
		if !ok {
			return fmt.Errorf("function %s: %s %w", fn.Name, b.role, objects.NoSuchBucket(b.name, nil))
		}
	}
	return nil
}
