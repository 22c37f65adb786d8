package pipeline

import (
	"context"

	"github.com/dedupfn/dedupfn/internal/event"
)

// inputRemoved handles an object-removed event: see issue 20; filled in by
// the pipeline's owner.
func (p *Pipeline) inputRemoved(ctx context.Context, ev event.Event) (int, error) { return 0, nil }
