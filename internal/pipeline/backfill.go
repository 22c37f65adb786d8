package pipeline

import (
	"context"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// backfillSource is the event source of Backfill's events; their runs
// wait behind live events' for a run slot.
const backfillSource = "backfill"

// Backfill sends one listed object through the event path for fn only,
// as if its event had arrived: same claims, and the activation id the
// event path gives that object version (event.ID names the version, not
// the path that saw it). So an object that already has an activation of
// fn's version (from its event, the reconciler or an earlier backfill) is
// left alone, and a later event for it records nothing twice.
//
// It returns the activation recorded, or nil when there was nothing to
// do: the object already has its activation, or is no input of fn
// (another trigger, a folder marker, a staged output, or dedupfn's own
// output). Where the store holds the object's SHA-256 both are known
// without reading it (see processed). An error means nothing
// final was recorded: send the object again later.
func (p *Pipeline) Backfill(ctx context.Context, fn registry.Function, o objects.Info) (*activation.Record, error) {
	if !fn.Matches(o.Bucket, o.Key) {
		return nil, nil
	}
	ev, err := event.Normalize(event.Event{
		Source: backfillSource, Name: "s3:ObjectCreated:Backfill", Bucket: o.Bucket, Key: o.Key,
		VersionID: o.VersionID, ETag: o.ETag, Size: o.Size, Time: o.Modified,
	})
	if err != nil {
		return nil, nil // not an input (folder marker, staging key); List never lists keyless objects
	}
	if done, err := p.processed(ctx, o, []registry.Function{fn}); err != nil || done {
		return nil, err
	}
	recs, err := p.process(ctx, ev, []registry.Function{fn}, false, "")
	if err != nil || len(recs) == 0 {
		return nil, err // nothing recorded: the activation was there already, or the object is dedupfn's output
	}
	return &recs[0], nil
}
