package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm"
)

// openRuntimes starts every runtime this binary ships, keyed by name; ow
// holds the OpenWhisk runtime's host settings (API, Allow).
func openRuntimes(dataDir string, inlineLimit int64, ow openwhisk.Options, pf processFlags, wf wasmFlags, logger *slog.Logger) (map[string]runtime.Runtime, func(), error) {
	rts := map[string]runtime.Runtime{}
	closeAll := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, rt := range rts {
			rt.Close(ctx)
		}
	}
	w, err := wasm.New(wasm.Options{CacheDir: filepath.Join(dataDir, "cache", "wasm"), Logger: logger, CodeLimits: wf.limits})
	if err != nil {
		return nil, nil, err
	}
	rts[w.Name()] = w
	p, err := process.New(process.Options{
		WorkDir: filepath.Join(dataDir, "cache", "process"), InlineLimit: inlineLimit, Logger: logger,
		ExecUser: pf.execUser, MaxResultBytes: pf.maxResult,
	})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	rts[p.Name()] = p
	ow.InlineLimit, ow.Logger = inlineLimit, logger
	owRT, err := openwhisk.New(ow)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	rts[owRT.Name()] = owRT
	return rts, closeAll, nil
}

// processFlags are serve's settings of the process runtime (--exec).
type processFlags struct {
	execUser  string
	maxResult int
}

func (f *processFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.execUser, "exec-user", "", "run --exec actions as this user (name or uid; the server must run as root and --data must be searchable by it); "+
		"without it actions run as the server's user and can read the server's environment, secrets included, through /proc")
	sizeVar(fl, &f.maxResult, "max-result", process.DefaultMaxResultBytes, 1, 1, "largest result an --exec action may write on fd 3, such as 1MiB (a bare number is bytes); a larger one fails the activation")
}

// wasmFlags are serve's limits on the functions of a wasm module, checked
// at deploy and before any compile (docs/security.md).
type wasmFlags struct {
	limits wasm.CodeLimits
}

func (f *wasmFlags) register(fl *pflag.FlagSet) {
	sizeVar(fl, &f.limits.FunctionBytes, "wasm-max-function-bytes", wasm.DefaultMaxFunctionBytes, 1, 1,
		"largest function body a wasm module may have, such as 512KiB (a bare number is bytes); a larger one is refused at deploy")
	fl.IntVar(&f.limits.Branches, "wasm-max-function-branches", wasm.DefaultMaxFunctionBranches,
		"most blocks, loops, ifs, elses, branches and br_table targets in one function of a wasm module (compile time grows with their square)")
	fl.IntVar(&f.limits.Nesting, "wasm-max-function-nesting", wasm.DefaultMaxFunctionNesting,
		"deepest nesting of blocks, loops and ifs in one function of a wasm module")
	fl.IntVar(&f.limits.Locals, "wasm-max-function-locals", wasm.DefaultMaxFunctionLocals,
		"most locals one function of a wasm module may declare")
	fl.IntVar(&f.limits.BranchValues, "wasm-max-function-branch-values", wasm.DefaultMaxFunctionBranchValues,
		"largest branches times values (locals, parameters, and the parameters and results of the largest block type) of one function of a wasm module (compile time grows with it)")
}

// createOpenWhiskAction creates or updates a native (blackbox) action on
// a remote OpenWhisk from an executable or a zip with exec at its root,
// and says so on w.
func createOpenWhiskAction(ctx context.Context, w io.Writer, api, action, execFile string) error {
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
	fmt.Fprintf(w, "OpenWhisk action %s is at version %s\n", action, version)
	return nil
}
