package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/pipeline"
)

func newInvokeCmd() *cobra.Command {
	var (
		cf  clientFlags
		req pipeline.InvokeRequest
	)
	cmd := &cobra.Command{
		Use:   "invoke NAME --bucket B --key K",
		Short: "Run a function on one object now, through the same dedup as events",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Function = args[0]
			rec, err := cf.client().Invoke(cmd.Context(), req)
			if err != nil {
				return err
			}
			if cf.json {
				return printJSON(rec)
			}
			printActivations([]activation.Record{rec})
			if rec.Decision == activation.Error {
				return fmt.Errorf("activation %s failed: %s", rec.ID, rec.Error)
			}
			return nil
		},
	}
	cf.register(cmd, true)
	cmd.Flags().StringVar(&req.Bucket, "bucket", "", "bucket of the input object (required)")
	cmd.Flags().StringVar(&req.Key, "key", "", "key of the input object (required)")
	cmd.Flags().BoolVar(&req.Force, "force", false, "run even if a result is recorded, and replace it")
	cmd.MarkFlagRequired("bucket")
	cmd.MarkFlagRequired("key")
	return cmd
}

func newActivationsCmd() *cobra.Command {
	var (
		cf    clientFlags
		fn    string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "activations [ID]",
		Short: "List activation records, newest first (or show one by ID)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cf.client()
			if len(args) == 1 {
				rec, err := c.Activation(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printJSON(rec)
			}
			recs, err := c.Activations(cmd.Context(), fn, limit)
			if err != nil {
				return err
			}
			if cf.json {
				return printJSON(recs)
			}
			printActivations(recs)
			return nil
		},
	}
	cf.register(cmd, true)
	cmd.Flags().StringVar(&fn, "fn", "", "only this function's activations")
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many")
	return cmd
}

func printActivations(recs []activation.Record) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tFUNCTION\tOBJECT\tDECISION\tTOTAL_MS\tFN_MS\tSAVED_MS\tOUTPUT/ERROR")
	for _, r := range recs {
		out := r.Error
		if out == "" && r.Output != nil {
			out = r.Output.Bucket + "/" + r.Output.Key
		}
		if len(out) > 80 {
			out = out[:77] + "..."
		}
		decision := string(r.Decision)
		if r.DeadLetter {
			decision += " (dead letter)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s@%s\t%s/%s\t%s\t%.1f\t%.1f\t%.1f\t%s\n",
			r.ID[:12], r.Start.Local().Format("15:04:05"), r.Function, r.Version, r.Event.Bucket, r.Event.Key,
			decision, r.Timings.TotalMS, r.FunctionMS, r.SavedMS, out)
	}
	tw.Flush()
}

func newStatsCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use: "stats", Short: "Totals: events, runs, hits, errors and compute saved", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := cf.client().Stats(cmd.Context())
			if err != nil {
				return err
			}
			if cf.json {
				return printJSON(st)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
			fmt.Fprintf(tw, "events\t%d\nruns\t%d\nhits\t%d\nwaits\t%d\nerrors\t%d\nskipped\t%d\ndead letters\t%d\n",
				st.Events, st.Runs, st.Hits, st.Waits, st.Errors, st.Skipped, st.DeadLetters)
			fmt.Fprintf(tw, "function time\t%.3f s\ntime saved\t%.3f s\n", st.FunctionMS/1000, st.SavedMS/1000)
			return tw.Flush()
		},
	}
	cf.register(cmd, true)
	return cmd
}

func newPurgeCmd() *cobra.Command {
	var (
		cf  clientFlags
		req api.PurgeRequest
	)
	cmd := &cobra.Command{
		Use:   "purge --fn NAME [--key DEDUP_KEY]",
		Short: "Forget recorded results so the next events run again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := cf.client().Purge(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Printf("purged %d record(s) of %s\n", n, req.Function)
			return nil
		},
	}
	cf.register(cmd, false)
	cmd.Flags().StringVar(&req.Function, "fn", "", "function whose records to purge (required)")
	cmd.Flags().StringVar(&req.Key, "key", "", "only this dedup key (as shown by `dedupfn explain`)")
	cmd.MarkFlagRequired("fn")
	return cmd
}

func newExplainCmd() *cobra.Command {
	var (
		cf              clientFlags
		fn, bucket, key string
	)
	cmd := &cobra.Command{
		Use:   "explain --fn NAME --bucket B --key K",
		Short: "Show an object's dedup key, its parts, and whether it would hit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			x, err := cf.client().Explain(cmd.Context(), fn, bucket, key)
			if err != nil {
				return err
			}
			if cf.json {
				return printJSON(x)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
			fmt.Fprintf(tw, "function\t%s@%s\nobject\t%s/%s\nfingerprint\t%s\ndedup key\t%s\n", x.Function, x.Version, x.Bucket, x.Key, x.Fingerprint, x.DedupKey)
			fmt.Fprintf(tw, "  tenant\t%s\n  code digest\t%s\n  params\t%s\n  runtime\t%s\n", x.Parts.Tenant, x.Parts.CodeDigest, x.Parts.Params, x.Parts.RuntimeVersion)
			fmt.Fprintf(tw, "would run\t%v\nwhy\t%s\n", x.WouldRun, x.Reason)
			return tw.Flush()
		},
	}
	cf.register(cmd, true)
	cmd.Flags().StringVar(&fn, "fn", "", "function (required)")
	cmd.Flags().StringVar(&bucket, "bucket", "", "bucket (required)")
	cmd.Flags().StringVar(&key, "key", "", "object key (required)")
	for _, f := range []string{"fn", "bucket", "key"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}
