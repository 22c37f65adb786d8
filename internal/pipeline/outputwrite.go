package pipeline

import (
	"context"
	"errors"
	"io"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/runtime"
)

// writeOutput notes j's output at bucket/key with SHA-256 sum
// (noteOutput) and writes it from body, never over an object checkTarget
// refuses, and returns noteOutput's documents still to be written.
//
// Every write is conditional, decided by the store in the write itself:
// If-None-Match where the key was free, If-Match on the ETag checkTarget
// saw where it allows replacing an earlier output. An object put there
// in between (a user's upload) fails the condition, and is checked in
// its turn: an upload is never overwritten. An output that triggers a
// function has its documents written before it, so its key is checked
// (a HEAD) before them; one that triggers nothing is written with
// If-None-Match at once, one request where the key is free (every first
// write), and checked only where an object is there.
func (p *Pipeline) writeOutput(ctx context.Context, j *job, bucket, key, sum string, body func() io.Reader, size int64, opts objects.PutOptions) (objects.Info, []index.Doc, error) {
	triggers := p.triggers(bucket, key)
	var etag string // of the object checkTarget allows replacing; "" for a free key
	if triggers {
		var err error
		if etag, err = p.checkTarget(ctx, j, bucket, key); err != nil {
			return objects.Info{}, nil, err
		}
	}
	docs, err := p.noteOutput(ctx, j, bucket, key, sum, triggers, etag != "")
	if err != nil {
		return objects.Info{}, nil, err
	}
	for attempt := 1; ; attempt++ {
		cond := opts
		cond.IfNoneMatch, cond.IfMatch = etag == "", etag
		info, err := p.cfg.Objects.Put(ctx, bucket, key, body(), size, cond)
		switch {
		case err == nil:
			return info, docs, nil
		case !errors.Is(err, objects.ErrExists):
			return objects.Info{}, nil, storeError(err, "store output %s/%s", bucket, key)
		case attempt == maxGuardedWrites:
			return objects.Info{}, nil, runtime.Errorf(runtime.ClassPlatform, "store output %s/%s: the object there changed %d times while it was written", bucket, key, attempt)
		}
		if etag, err = p.checkTarget(ctx, j, bucket, key); err != nil {
			return objects.Info{}, nil, err
		}
	}
}

// maxGuardedWrites bounds writeOutput's conditional writes of one output
// whose key keeps changing under it.
const maxGuardedWrites = 3
