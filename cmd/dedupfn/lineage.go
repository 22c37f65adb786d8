package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newLineageCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "lineage s3://BUCKET/KEY",
		Short: "Show where an object came from (its chain back to the upload) and what was made from it",
		Long: `lineage shows an object's place in its pipelines, from the provenance dedupfn
keeps in its index for every object it writes: for an output, the chain of
functions back to the original upload (each step: bucket, key, function,
version, the activation that delivered it); for an input, every object
derived from it, stage by stage. --json prints the API's body.`,
		Example: `  dedupfn lineage s3://labels/a.jpg.json
  dedupfn lineage s3://images/a.jpg --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bucket, key, err := objectURL(args[0])
			if err != nil {
				return err
			}
			l, err := cf.client().Lineage(cmd.Context(), bucket, key)
			if err != nil {
				return err
			}
			if cf.json {
				return writeJSON(cmd.OutOrStdout(), l)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			if len(l.Chain) > 0 {
				fmt.Fprintln(tw, "CHAIN\tSTAGE\tFUNCTION\tACTIVATION")
				for _, s := range l.Chain {
					if s.Function == "" {
						fmt.Fprintf(tw, "s3://%s/%s\tupload\t\t\n", s.Bucket, s.Key)
						continue
					}
					fmt.Fprintf(tw, "s3://%s/%s\t%d\t%s@%s\t%s\n", s.Bucket, s.Key, s.Stage, s.Function, s.Version, s.Activation)
				}
			}
			if len(l.Derived) > 0 {
				if len(l.Chain) > 0 {
					fmt.Fprintln(tw, "\t\t\t")
				}
				fmt.Fprintln(tw, "DERIVED\tSTAGE\tFUNCTION\t")
				for _, d := range l.Derived {
					fmt.Fprintf(tw, "s3://%s/%s\t%d\t%s\t\n", d.Bucket, d.Key, d.Stage, d.Function)
				}
			}
			return tw.Flush()
		},
	}
	cf.register(cmd, true)
	return cmd
}

// objectURL splits s3://BUCKET/KEY.
func objectURL(s string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	bucket, key, _ = strings.Cut(rest, "/")
	if !ok || bucket == "" || key == "" {
		return "", "", fmt.Errorf("want s3://BUCKET/KEY, got %q", s)
	}
	return bucket, key, nil
}
