//go:build !faultinject

package main

import (
	"log/slog"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
)

// injectFaults is a no-op in release builds; see faults_inject.go.
func injectFaults(idx index.Index, store objects.Store, _ *slog.Logger) (index.Index, objects.Store, error) {
	return idx, store, nil
}
