package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/dedupfn/dedupfn/internal/activation"
)

// Every command prints through cmd.OutOrStdout() and cmd.ErrOrStderr(),
// never os.Stdout or os.Stderr: a test runs it with buffers.

// writeJSON writes v to w as indented JSON, for --json.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printActivations writes recs to w: for --json as one JSON array, else
// as a table.
func printActivations(w io.Writer, recs []activation.Record, asJSON bool) error {
	if asJSON {
		return writeJSON(w, recs)
	}
	return writeActivations(w, recs, true, 0)
}

// writeActivations writes recs to w as table rows, after the header if
// header. minWidth is the columns' least width: activations --follow
// keeps them steady from one poll's rows to the next.
func writeActivations(w io.Writer, recs []activation.Record, header bool, minWidth int) error {
	tw := tabwriter.NewWriter(w, minWidth, 2, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "ID\tTIME\tFUNCTION\tOBJECT\tDECISION\tTOTAL_MS\tFN_MS\tSAVED_MS\tOUTPUT/ERROR")
	}
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
			r.ID[:min(12, len(r.ID))], r.Start.Local().Format("15:04:05"), r.Function, r.Version, r.Event.Bucket, r.Event.Key,
			decision, r.Timings.TotalMS, r.FunctionMS, r.SavedMS, out)
	}
	return tw.Flush()
}
