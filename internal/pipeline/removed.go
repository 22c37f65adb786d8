package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// inputRemoved handles an object-removed event: for each function
// deployed with --on-input-delete delete that wrote an output for the
// object (the index says so: derivedDocKind), the output is deleted, and
// so in turn are the outputs made from it by functions downstream that
// also delete. It returns how many deletions it recorded. A removal the
// index knows nothing of deletes nothing; an object uploaded to the key
// again since is not gone, and keeps its outputs (its own event replaces
// them). An error means the event must be delivered again: deletions
// recorded before it stay, and the rest are done then.
func (p *Pipeline) inputRemoved(ctx context.Context, ev event.Event) (int, error) {
	ids, docs, err := p.derivedOf(ctx, ev.Bucket, ev.Key)
	if err != nil || len(docs) == 0 {
		return 0, err
	}
	sctx, cancel := p.callCtx(ctx)
	_, err = p.cfg.Objects.Stat(sctx, ev.Bucket, ev.Key)
	cancel()
	switch {
	case err == nil:
		return 0, nil // uploaded again since the delete
	case !errors.Is(err, objects.ErrNotFound):
		return 0, fmt.Errorf("pipeline: stat deleted input %s/%s: %w", ev.Bucket, ev.Key, err)
	}
	n := 0
	for i, d := range docs {
		fn, ok := p.function(d.Tenant, d.Function)
		if !ok || fn.OnInputDelete != registry.OnInputDeleteDelete || !p.inScope(fn) {
			continue // kept: the default, the function is gone, or its buckets are no longer its tenant's
		}
		done, err := p.deleteOutput(ctx, ev, fn, ids[i], d)
		if err != nil {
			return n, err
		}
		if done {
			n++
		}
	}
	return n, nil
}

// dropReplacedOutputs deletes, for a function deployed with
// --on-input-delete delete, the outputs it wrote earlier for j's input at
// other keys than the one it delivered now (an overwritten input whose
// output lands elsewhere, e.g. a JSON result instead of an object).
func (p *Pipeline) dropReplacedOutputs(ctx context.Context, j *job) error {
	out := j.rec.Output
	if out == nil || j.fn.OnInputDelete != registry.OnInputDeleteDelete {
		return nil
	}
	ids, docs, err := p.derivedOf(ctx, j.ev.Bucket, j.ev.Key)
	if err != nil {
		return err
	}
	replaced := j.ev
	replaced.Name = "s3:ObjectRemoved:Replaced"
	for i, d := range docs {
		if d.Tenant != j.fn.Tenant || d.Function != j.fn.Name || (d.Bucket == out.Bucket && d.Key == out.Key) {
			continue
		}
		if _, err := p.deleteOutput(ctx, replaced, j.fn, ids[i], d); err != nil {
			return err
		}
	}
	return nil
}

// function is the registry's function tenant/name, from its cache.
func (p *Pipeline) function(tenant, name string) (registry.Function, bool) {
	for _, f := range p.cfg.Registry.List(tenant) {
		if f.Name == name {
			return f, true
		}
	}
	return registry.Function{}, false
}

// deleteOutput deletes the output d that fn wrote for the object ev
// removed or replaced, if the index still says fn wrote it for that
// input and the store still holds those bytes (a user's object put there
// since stays), and records the deletion. Its order makes a redelivery
// finish what a crash cut short: the object, then what was made from it
// (downstream), then the record pointing to it, then the documents, then
// the deletion's activation (a crash between the last two loses only
// that record: the outputs are gone).
func (p *Pipeline) deleteOutput(ctx context.Context, ev event.Event, fn registry.Function, derivedID string, d derivedDoc) (bool, error) {
	prov, err := p.provenanceAt(ctx, d.Bucket, d.Key)
	if err != nil {
		return false, err
	}
	if prov == nil || prov.Input.Bucket != ev.Bucket || prov.Input.Key != ev.Key || prov.Tenant != fn.Tenant || prov.Function != fn.Name {
		// The key holds another input's output now, or nothing noted.
		return false, p.deleteDoc(ctx, derivedDocKind, derivedID)
	}
	start := time.Now()
	out := objects.Info{Bucket: d.Bucket, Key: d.Key}
	st, ours, err := p.holds(ctx, out, prov.SHA256)
	if err != nil {
		return false, err
	}
	// Gone already: deleted by an earlier delivery of this event that a
	// crash cut short (or by someone else); what was made from it and the
	// record of its deletion still follow.
	gone := !ours && st.Key == ""
	if ours {
		dctx, cancel := p.callCtx(ctx)
		err := p.cfg.Objects.Delete(dctx, d.Bucket, d.Key)
		cancel()
		if err != nil {
			return false, fmt.Errorf("pipeline: delete output %s/%s: %w", d.Bucket, d.Key, err)
		}
	}
	if ours || gone {
		cascade := event.Event{Source: chainSource, Name: "s3:ObjectRemoved:Cascade", Bucket: d.Bucket, Key: d.Key, Time: ev.Time}
		if _, err := p.inputRemoved(ctx, cascade); err != nil {
			return false, err
		}
	}
	if err := p.repoint(ctx, prov); err != nil {
		return false, err
	}
	for _, doc := range [][2]string{{copyDocKind, copyDocID(prov.DedupKey, objectRef{Bucket: d.Bucket, Key: d.Key})}, {outputDocKind, outputDocID(d.Bucket, d.Key)}, {derivedDocKind, derivedID}} {
		if doc[0] == copyDocKind && prov.DedupKey == "" {
			continue
		}
		if err := p.deleteDoc(ctx, doc[0], doc[1]); err != nil {
			return false, fmt.Errorf("pipeline: forget output %s/%s: %w", d.Bucket, d.Key, err)
		}
	}
	if !ours && !gone {
		return false, nil // replaced by someone else's object: it stays
	}
	removal := ev
	removal.Nonce = "removed:" + ev.Time.UTC().Format(time.RFC3339Nano) + ":" + outputDocID(d.Bucket, d.Key)
	j := newJob(removal, fn, start)
	j.ev = ev
	j.rec.Decision = activation.Delete
	j.rec.Stage = prov.Stage
	j.rec.Cause = prov.Activation
	j.rec.Root = &activation.Object{Bucket: prov.Root.Bucket, Key: prov.Root.Key}
	j.rec.Output = &activation.Object{Bucket: d.Bucket, Key: d.Key, SHA256: prov.SHA256}
	return true, p.record(p.withJob(ctx, j), j)
}

// holds reports whether the object o holds the bytes with SHA-256 sum,
// with its info: a zero Info (no key) when it is gone.
func (p *Pipeline) holds(ctx context.Context, o objects.Info, sum string) (objects.Info, bool, error) {
	sctx, cancel := p.callCtx(ctx)
	st, err := p.cfg.Objects.Stat(sctx, o.Bucket, o.Key)
	cancel()
	if err == nil {
		var got string
		if got, err = p.deliveredSHA256(ctx, st); err == nil {
			return st, got == sum, nil
		}
	}
	if errors.Is(err, objects.ErrNotFound) {
		return objects.Info{}, false, nil
	}
	return st, false, fmt.Errorf("pipeline: check output %s/%s: %w", o.Bucket, o.Key, err)
}

// repoint keeps the dedup record whose output is the deleted object with
// provenance prov usable: it is re-pointed to another live copy of the
// same bytes (a hit's delivery elsewhere), or dropped when there is none,
// so that the next upload of that content runs again.
func (p *Pipeline) repoint(ctx context.Context, prov *provenance) error {
	if prov.DedupKey == "" {
		return nil
	}
	gctx, cancel := p.callCtx(ctx)
	rec, err := p.cfg.Index.Get(gctx, prov.DedupKey)
	cancel()
	switch {
	case errors.Is(err, index.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("pipeline: read record %s: %w", prov.DedupKey, err)
	case rec.State != index.Done || rec.Output == nil || rec.Output.Bucket != prov.Bucket || rec.Output.Key != prov.Key:
		return nil // the record's output is another copy: it stays usable
	}
	var copies []objectRef
	lctx, cancel := p.callCtx(ctx)
	err = docsPrefix(lctx, p.cfg.Index, copyDocKind, prov.DedupKey+".", func(_ string, c objectRef) error {
		if c.Bucket != prov.Bucket || c.Key != prov.Key {
			copies = append(copies, c)
		}
		return nil
	})
	cancel()
	if err != nil {
		return fmt.Errorf("pipeline: look up copies of %s: %w", prov.DedupKey, err)
	}
	for _, c := range copies {
		cp, err := p.provenanceOf(ctx, c.Bucket, c.Key, rec.Output.SHA256)
		if err != nil {
			return err
		}
		if cp == nil || cp.DedupKey != prov.DedupKey {
			continue
		}
		st, ok, err := p.holds(ctx, objects.Info{Bucket: c.Bucket, Key: c.Key}, rec.Output.SHA256)
		if err != nil || !ok {
			continue // gone too, replaced, or unreadable: try the next
		}
		moved := *rec.Output
		moved.Bucket, moved.Key, moved.ETag, moved.Size = c.Bucket, c.Key, st.ETag, st.Size
		rctx, cancel := p.callCtx(ctx)
		err = p.cfg.Index.RepointOutput(rctx, prov.DedupKey, rec.Updated, moved)
		cancel()
		if err == nil || errors.Is(err, index.ErrNotFound) {
			return nil // re-pointed, or changed since: its new state stands
		}
		return fmt.Errorf("pipeline: re-point record %s: %w", prov.DedupKey, err)
	}
	if err := p.deleteResult(ctx, prov.DedupKey, rec.Updated); err != nil {
		return fmt.Errorf("pipeline: drop record %s: %w", prov.DedupKey, err)
	}
	return nil
}
