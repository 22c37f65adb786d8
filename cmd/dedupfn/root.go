package main

import (
	"cmp"
	"os"

	"github.com/spf13/cobra"

	"github.com/dedupfn/dedupfn/internal/api"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "dedupfn",
		Short: "Run a function on every new object, at most once per distinct content",
		Long: `dedupfn sits between S3-compatible object storage and a function runtime.
It fingerprints each new object and runs each function at most once per
distinct content; duplicates get the recorded output without a run.

Start the server with 'dedupfn serve'; the other commands talk to it
through its API (--api or DEDUPFN_API, default http://127.0.0.1:8080).`,
		SilenceUsage:  true,
		SilenceErrors: true, // main prints the error once
		Version:       Version,
	}
	root.AddCommand(newServeCmd(), newFnCmd(), newInvokeCmd(), newActivationsCmd(), newDLQCmd(),
		newStatsCmd(), newPurgeCmd(), newExplainCmd(), newLineageCmd(), newBenchCmd(), newAnalyzeCmd())
	root.AddCommand(newBackfillCmd())
	return root
}

// clientFlags are the flags every client command shares.
type clientFlags struct {
	api, token, tenant string
	json               bool
}

func (f *clientFlags) register(cmd *cobra.Command, withJSON bool) {
	cmd.Flags().StringVar(&f.api, "api", cmp.Or(os.Getenv("DEDUPFN_API"), "http://127.0.0.1:8080"), "API URL of a dedupfn server (env DEDUPFN_API)")
	cmd.Flags().StringVar(&f.token, "token", os.Getenv("DEDUPFN_API_TOKEN"), "API bearer token (env DEDUPFN_API_TOKEN)")
	cmd.Flags().StringVar(&f.tenant, "tenant", os.Getenv("DEDUPFN_TENANT"), "tenant to act for, with an admin token (env DEDUPFN_TENANT)")
	if withJSON {
		cmd.Flags().BoolVar(&f.json, "json", false, "print JSON for machines")
	}
}

func (f *clientFlags) client() *api.Client {
	return &api.Client{BaseURL: f.api, Token: f.token, Tenant: f.tenant}
}
