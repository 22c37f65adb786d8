package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm"
)

// openRuntimes starts every runtime this binary ships, keyed by name.
func openRuntimes(dataDir string, inlineLimit int64, logger *slog.Logger) (map[string]runtime.Runtime, func(), error) {
	rts := map[string]runtime.Runtime{}
	closeAll := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, rt := range rts {
			rt.Close(ctx)
		}
	}
	w, err := wasm.New(wasm.Options{CacheDir: filepath.Join(dataDir, "cache", "wasm"), Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	rts[w.Name()] = w
	p, err := process.New(process.Options{WorkDir: filepath.Join(dataDir, "cache", "process"), InlineLimit: inlineLimit, Logger: logger})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	rts[p.Name()] = p
	ow, err := openwhisk.New(openwhisk.Options{InlineLimit: inlineLimit, Logger: logger})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	rts[ow.Name()] = ow
	return rts, closeAll, nil
}

// createOpenWhiskAction creates or updates a native (blackbox) action on
// a remote OpenWhisk from an executable or a zip with exec at its root.
func createOpenWhiskAction(ctx context.Context, api, action, execFile string) error {
	auth := os.Getenv("DEDUPFN_OPENWHISK_AUTH")
	if auth == "" {
		return fmt.Errorf("--openwhisk-create needs DEDUPFN_OPENWHISK_AUTH=UUID:KEY")
	}
	code, err := os.ReadFile(execFile)
	if err != nil {
		return fmt.Errorf("read --exec: %w", err)
	}
	version, err := openwhisk.CreateAction(ctx, http.DefaultClient, api, auth, action, openwhisk.KindNative, code, nil)
	if err != nil {
		return err
	}
	fmt.Printf("OpenWhisk action %s is at version %s\n", action, version)
	return nil
}
