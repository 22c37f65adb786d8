package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// ErrNoLineage is Lineage's answer for an object dedupfn knows nothing
// of: neither written by a function nor the input of one.
var ErrNoLineage = errors.New("no lineage")

// LineageStep is one object of a chain: the root (the upload) has only
// Bucket and Key; each later one the function that wrote it, its version,
// the activation that delivered it (a run or a hit) and its stage (1 for
// the function the upload triggered).
type LineageStep struct {
	Bucket     string `json:"bucket"`
	Key        string `json:"key"`
	Function   string `json:"function,omitempty"`
	Version    string `json:"version,omitempty"`
	Activation string `json:"activation,omitempty"`
	Stage      int    `json:"stage,omitempty"`
}

// Derived is an object made from another, directly or down a pipeline.
type Derived struct {
	Bucket   string `json:"bucket"`
	Key      string `json:"key"`
	Function string `json:"function"`
	Stage    int    `json:"stage"`
}

// Lineage is an object's place in its pipelines: Chain, root first, back
// to the upload it came from (the object itself last; only the object
// for an upload), and every object derived from it, stage by stage.
type Lineage struct {
	Chain   []LineageStep `json:"chain"`
	Derived []Derived     `json:"derived"`
}

// Lineage answers where the object at bucket/key came from and what was
// made from it, from the provenance in the index (which lives as long as
// the objects do: pruning activations does not cut it). Objects in
// buckets visible rejects are left out, so a tenant sees only its own;
// the caller checks the object's own bucket. ErrNoLineage when dedupfn
// knows nothing of the object.
func (p *Pipeline) Lineage(ctx context.Context, bucket, key string, visible func(bucket string) bool) (Lineage, error) {
	l := Lineage{Chain: []LineageStep{}, Derived: []Derived{}}
	prov, err := p.currentProvenance(ctx, bucket, key)
	if err != nil {
		return l, err
	}
	cur := objectRef{Bucket: bucket, Key: key}
	var steps []LineageStep
	for prov != nil && len(steps) <= registry.MaxChainStages {
		steps = append(steps, LineageStep{Bucket: cur.Bucket, Key: cur.Key, Function: prov.Function, Version: prov.Version, Activation: prov.Activation, Stage: prov.Stage})
		in := prov.Input
		// The input's own provenance continues the chain only while it
		// is the provenance of the bytes this output was made from.
		if prov, err = p.provenanceOf(ctx, in.Bucket, in.Key, in.SHA256); err != nil {
			return l, err
		}
		cur = objectRef{Bucket: in.Bucket, Key: in.Key}
	}
	if visible(cur.Bucket) {
		l.Chain = append(l.Chain, LineageStep{Bucket: cur.Bucket, Key: cur.Key})
	}
	for _, s := range slices.Backward(steps) {
		if visible(s.Bucket) {
			l.Chain = append(l.Chain, s)
		}
	}
	if l.Derived, err = p.derivedFrom(ctx, objectRef{Bucket: bucket, Key: key}, visible); err != nil {
		return l, err
	}
	if len(steps) == 0 && len(l.Derived) == 0 {
		return l, fmt.Errorf("%w: dedupfn knows nothing of %s/%s", ErrNoLineage, bucket, key)
	}
	return l, nil
}

// currentProvenance is the provenance of the object at bucket/key if the
// store still holds the bytes dedupfn wrote there, else nil.
func (p *Pipeline) currentProvenance(ctx context.Context, bucket, key string) (*provenance, error) {
	prov, err := p.provenanceAt(ctx, bucket, key)
	if err != nil || prov == nil {
		return nil, err
	}
	if _, ok, err := p.holds(ctx, objects.Info{Bucket: bucket, Key: key}, prov.SHA256); err != nil || !ok {
		return nil, err
	}
	return prov, nil
}

// derivedFrom walks the outputs made from o, breadth first (stage by
// stage), keeping those whose provenance still names their input.
func (p *Pipeline) derivedFrom(ctx context.Context, o objectRef, visible func(string) bool) ([]Derived, error) {
	out := []Derived{}
	seen := map[objectRef]bool{o: true}
	level := []objectRef{o}
	for depth := 0; len(level) > 0 && depth < registry.MaxChainStages; depth++ {
		var next []objectRef
		for _, in := range level {
			_, docs, err := p.derivedOf(ctx, in.Bucket, in.Key)
			if err != nil {
				return nil, err
			}
			for _, d := range docs {
				ref := objectRef{Bucket: d.Bucket, Key: d.Key}
				if seen[ref] {
					continue
				}
				prov, err := p.provenanceAt(ctx, d.Bucket, d.Key)
				if err != nil {
					return nil, err
				}
				if prov == nil || prov.Input.Bucket != in.Bucket || prov.Input.Key != in.Key {
					continue // the key holds another input's output now
				}
				seen[ref] = true
				next = append(next, ref)
				if visible(d.Bucket) {
					out = append(out, Derived{Bucket: d.Bucket, Key: d.Key, Function: prov.Function, Stage: prov.Stage})
				}
			}
		}
		level = next
	}
	return out, nil
}
