package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// reconcileSource is the event source of the reconciler's events.
const reconcileSource = "reconcile"

// Reconcile lists every triggered bucket once and sends each object that
// has no activation through the event path, as if its event had arrived:
// it finds the uploads whose notifications were dropped. It returns how
// many it found. Objects modified within the grace period are left to
// their events. An event that arrives later still maps to the activation
// the reconciler recorded (event.ID names the object version, not the
// path that saw it), so it runs nothing twice. Where the store holds the
// object's SHA-256 (the built-in endpoint; MinIO/S3 with a full-object
// checksum) a processed object and dedupfn's own outputs (noted in the
// index when written) are skipped without being read; elsewhere the
// object is read, since only its bytes tell its content (an ETag does not).
func (p *Pipeline) Reconcile(ctx context.Context, grace time.Duration) (int, error) {
	missed := 0
	cutoff := time.Now().Add(-grace)
	var pruned time.Time // objects older than this may have lost their records to pruning
	if r := p.cfg.ActivationRetention; r > 0 {
		pruned = time.Now().Add(-r)
	}
	for _, bucket := range p.cfg.Registry.Buckets() {
		var todo []objects.Info
		err := p.cfg.Objects.List(ctx, bucket, "", "", func(o objects.Info) error {
			if o.Modified.After(cutoff) || o.Modified.Before(pruned) {
				return nil
			}
			fns := p.match(o.Bucket, o.Key)
			if len(fns) == 0 {
				return nil
			}
			if done, err := p.processed(ctx, o, fns); err != nil || done {
				return err
			}
			todo = append(todo, o)
			return nil
		})
		if err != nil {
			return missed, err
		}
		for _, o := range todo {
			ev := event.Event{
				Source: reconcileSource, Name: "s3:ObjectCreated:Reconcile", Bucket: o.Bucket, Key: o.Key,
				VersionID: o.VersionID, ETag: o.ETag, Size: o.Size, Time: o.Modified,
			}
			n, err := p.handle(ctx, ev)
			if err != nil {
				return missed, err
			}
			if n > 0 {
				missed++
			}
		}
	}
	n, err := p.reconcileRemoved(ctx)
	return missed + n, err
}

// reconcileRemoved finds the inputs deleted without an event that reached
// dedupfn, for the functions deployed with --on-input-delete delete: each
// output noted for such a function whose input is gone is handled as the
// input's removed event would have been. It returns how many inputs it
// found gone with outputs to delete.
func (p *Pipeline) reconcileRemoved(ctx context.Context) (int, error) {
	deletes := false
	for _, f := range p.cfg.Registry.List("") {
		deletes = deletes || f.OnInputDelete == registry.OnInputDeleteDelete
	}
	if !deletes {
		return 0, nil
	}
	// The inputs first, the store after: no store call inside the
	// index's listing (a read transaction on bolt).
	inputs := map[objectRef]bool{}
	err := docsPrefix(ctx, p.cfg.Index, outputDocKind, "", func(_ string, prov provenance) error {
		if f, ok := p.function(prov.Tenant, prov.Function); ok && f.OnInputDelete == registry.OnInputDeleteDelete && p.inScope(f) {
			inputs[objectRef{Bucket: prov.Input.Bucket, Key: prov.Input.Key}] = true
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pipeline: list outputs: %w", err)
	}
	var gone []objectRef
	for in := range inputs {
		sctx, cancel := p.callCtx(ctx)
		_, err := p.cfg.Objects.Stat(sctx, in.Bucket, in.Key)
		cancel()
		switch {
		case errors.Is(err, objects.ErrNotFound):
			gone = append(gone, in)
		case err != nil: // the next round sees it
			p.logger.Warn("reconcile deletes: stat input", "bucket", in.Bucket, "key", in.Key, "err", err)
		}
	}
	n := 0
	for _, in := range gone {
		ev := event.Event{Source: reconcileSource, Name: "s3:ObjectRemoved:Reconcile", Bucket: in.Bucket, Key: in.Key, Time: time.Now().UTC()}
		deleted, err := p.inputRemoved(ctx, ev)
		if err != nil {
			return n, err
		}
		if deleted > 0 {
			n++
		}
	}
	return n, nil
}

// processed reports, without reading o, whether it needs nothing: it is
// dedupfn's own output, or each of fns has an activation for o's content.
// It reports false when the store holds no SHA-256 of o: only its bytes
// then tell its content, which the event path reads.
func (p *Pipeline) processed(ctx context.Context, o objects.Info, fns []registry.Function) (bool, error) {
	sum := o.SHA256
	if sum == "" {
		sctx, cancel := p.callCtx(ctx)
		st, err := p.cfg.Objects.Stat(sctx, o.Bucket, o.Key)
		cancel()
		switch {
		case errors.Is(err, objects.ErrNotFound):
			return true, nil // deleted since the listing
		case err != nil:
			return false, fmt.Errorf("pipeline: stat %s/%s: %w", o.Bucket, o.Key, err)
		case st.VersionID != o.VersionID:
			return false, nil // overwritten since the listing: let the event path see it
		}
		sum = st.SHA256
	}
	if sum == "" {
		return false, nil
	}
	ev := event.Event{Source: reconcileSource, Bucket: o.Bucket, Key: o.Key, VersionID: o.VersionID, SHA256: sum, Time: o.Modified}
	ev, fns, l, err := p.linked(ctx, ev, fns)
	if err != nil || len(fns) == 0 {
		return len(fns) == 0, err
	}
	pending, _, err := p.unrecorded(ctx, ev, fns, time.Now(), l)
	return len(pending) == 0, err
}

// RunReconciler reconciles every interval until ctx ends.
func (p *Pipeline) RunReconciler(ctx context.Context, interval, grace time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := p.Reconcile(ctx, grace)
			if n > 0 {
				p.metrics.reconciled.Add(float64(n))
				p.logger.Warn("reconciler found objects whose events the source missed", "count", n)
			}
			if err != nil && ctx.Err() == nil {
				p.logger.Error("reconcile", "err", err)
			}
		}
	}
}
