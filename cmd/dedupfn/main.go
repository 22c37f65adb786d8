// Command dedupfn runs functions on new objects in S3-compatible storage,
// at most once per distinct content. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// Backends shipped in the binary register their URL schemes.
	_ "github.com/dedupfn/dedupfn/internal/index/bolt"
	_ "github.com/dedupfn/dedupfn/internal/index/couchdb"
	_ "github.com/dedupfn/dedupfn/internal/index/postgres"
	_ "github.com/dedupfn/dedupfn/internal/objects/s3"
	_ "github.com/dedupfn/dedupfn/internal/objects/s3server"
	_ "github.com/dedupfn/dedupfn/internal/source/embedded"
	_ "github.com/dedupfn/dedupfn/internal/source/kafka"
	_ "github.com/dedupfn/dedupfn/internal/source/webhook"
)

func main() {
	// The first signal cancels ctx: serve drains and exits. A second one
	// (signal.NotifyContext has stopped catching) kills the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	if err := Run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dedupfn:", err)
		os.Exit(1)
	}
}

// Run executes the command line args.
func Run(ctx context.Context, args []string) error {
	root := newRootCmd()
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}
