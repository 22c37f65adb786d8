package index

import (
	"context"
	"log/slog"
	"time"
)

// Defaults of activation retention.
const (
	// DefaultActivationRetention is how long activation records are kept
	// (serve --activation-retention).
	DefaultActivationRetention = 30 * 24 * time.Hour
	// DefaultPruneInterval is how often RunPruner prunes.
	DefaultPruneInterval = time.Hour
)

// RunPruner deletes the activation records older than retention from idx
// when it starts and then every interval (<= 0: DefaultPruneInterval),
// until ctx ends. retention <= 0 keeps everything: it returns at once.
// Errors are logged, at most once a minute, and retried at the next tick;
// replicas sharing an index may all run it.
func RunPruner(ctx context.Context, idx Activations, retention, interval time.Duration, logger *slog.Logger) {
	if retention <= 0 {
		return
	}
	if interval <= 0 {
		interval = DefaultPruneInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "index.pruner")
	var lastErr time.Time
	prune := func() {
		n, err := idx.PruneActivations(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil && time.Since(lastErr) > time.Minute:
			lastErr = time.Now()
			logger.Warn("prune activations", "retention", retention, "pruned", n, "err", err)
		case err == nil && n > 0:
			logger.Info("pruned activations", "retention", retention, "pruned", n)
		}
	}
	prune()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			prune()
		}
	}
}
