package pipeline

import (
	"context"
	"errors"
	"io"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
)

// writeOutput notes j's output at bucket/key with SHA-256 sum
// (noteOutput) and writes it from body, never over an object checkTarget
// refuses, and returns noteOutput's documents still to be written.
//
// An output that triggers a function has its documents written before
// it, so its key is checked (a HEAD) before them, as ever. One that
// triggers nothing has them written later: it is written with
// If-None-Match first, one request where the key is free (every first
// write), and checked only where an object is there already, then
// written over it only if checkTarget allows (an earlier output of the
// same function for the same input).
func (p *Pipeline) writeOutput(ctx context.Context, j *job, bucket, key, sum string, body func() io.Reader, size int64, opts objects.PutOptions) (objects.Info, []index.Doc, error) {
	triggers := p.triggers(bucket, key)
	if triggers {
		if err := p.checkTarget(ctx, j, bucket, key); err != nil {
			return objects.Info{}, nil, err
		}
	}
	docs, err := p.noteOutput(ctx, j, bucket, key, sum, triggers)
	if err != nil {
		return objects.Info{}, nil, err
	}
	if !triggers {
		cond := opts
		cond.IfNoneMatch = true
		info, err := p.cfg.Objects.Put(ctx, bucket, key, body(), size, cond)
		if !errors.Is(err, objects.ErrExists) {
			if err != nil {
				return objects.Info{}, nil, storeError(err, "store output %s/%s", bucket, key)
			}
			return info, docs, nil
		}
		if err := p.checkTarget(ctx, j, bucket, key); err != nil {
			return objects.Info{}, nil, err
		}
	}
	info, err := p.cfg.Objects.Put(ctx, bucket, key, body(), size, opts)
	if err != nil {
		return objects.Info{}, nil, storeError(err, "store output %s/%s", bucket, key)
	}
	return info, docs, nil
}
