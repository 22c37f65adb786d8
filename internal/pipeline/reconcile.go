package pipeline

import (
	"context"
	"time"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/objects"
)

// Reconcile lists every triggered bucket once and sends each object that
// has no activation through the event path, as if its event had arrived:
// it finds the uploads whose notifications were dropped. It returns how
// many it found. Objects modified within the grace period are left to
// their events. An event that arrives later still maps to the activation
// the reconciler recorded (event.ID names the object version, not the
// path that saw it), so it runs nothing twice. dedupfn's own outputs are
// skipped without being read: they are noted in the index when written.
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
			if o.Modified.After(cutoff) || o.Modified.Before(pruned) || len(p.cfg.Registry.Match(o.Bucket, o.Key)) == 0 {
				return nil
			}
			seen, err := p.cfg.Index.ObjectSeen(ctx, o.Bucket, o.Key, o.ETag)
			if err != nil || seen {
				return err
			}
			if noted, err := p.isNotedOutput(ctx, o); err != nil || noted {
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
				Source: "reconcile", Name: "s3:ObjectCreated:Reconcile", Bucket: o.Bucket, Key: o.Key,
				VersionID: o.VersionID, ETag: o.ETag, Size: o.Size, Time: o.Modified,
			}
			n, err := p.handle(ctx, ev)
			if err != nil {
				return missed, err
			}
			if n == 0 {
				// Written by dedupfn before outputs were noted (or
				// otherwise not an input): note it so it is never read again.
				p.noteOutput(ctx, o)
				continue
			}
			missed++
		}
	}
	return missed, nil
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
