package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/registry"
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

// tableCellMax is the most characters a table shows of an error or key:
// --json and "activations ID" show all of it.
const tableCellMax = 80

// oneLine fits s in one table cell of at most max characters: every run
// of whitespace (a panic's newlines and tabs, a trailing newline) becomes
// one space, and what goes past max is cut, ending in "…".
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
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
		decision := string(r.Decision)
		if r.DeadLetter {
			decision += " (dead letter)"
		}
		// A hit or wait did not run the function: its FunctionMS is the
		// recorded run's, shown only as what it saved.
		fnMS, savedMS := "", ""
		if r.Decision == activation.Hit || r.Decision == activation.Wait {
			savedMS = fmt.Sprintf("%.1f", r.SavedMS)
		} else if r.FunctionMS > 0 || r.Decision == activation.Miss {
			fnMS = fmt.Sprintf("%.1f", r.FunctionMS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s@%s\t%s\t%s\t%.1f\t%s\t%s\t%s\n",
			r.ID[:min(12, len(r.ID))], r.Start.Local().Format("15:04:05"), r.Function, r.Version,
			oneLine(r.Event.Bucket+"/"+r.Event.Key, tableCellMax), decision, r.Timings.TotalMS, fnMS, savedMS, oneLine(out, tableCellMax))
	}
	return tw.Flush()
}

// functionView is a function's definition as fn get prints it: its
// limits as durations people read ("60s"), the rest as the API sends it.
// The API's own JSON keeps nanoseconds: other clients read it.
type functionView struct {
	api.FunctionInfo
	Limits limitsView `json:"limits"` // shadows Function.Limits
}

// newFunctionView is f as fn get prints it. A function stored before
// on_input_delete existed keeps its outputs: it shows "keep".
func newFunctionView(f api.FunctionInfo) functionView {
	if f.OnInputDelete == "" {
		f.OnInputDelete = registry.OnInputDeleteKeep
	}
	if f.Upstream == nil {
		f.Upstream = []string{}
	}
	if f.Downstream == nil {
		f.Downstream = []string{}
	}
	return functionView{FunctionInfo: f, Limits: newLimitsView(f.Limits)}
}

type limitsView struct {
	Timeout   string `json:"timeout"`
	Lease     string `json:"lease"`
	MemoryMB  int    `json:"memory_mb"`
	Retention string `json:"retention,omitempty"`
}

func newLimitsView(l registry.Limits) limitsView {
	v := limitsView{Timeout: shortDuration(l.Timeout), Lease: shortDuration(l.Lease), MemoryMB: l.MemoryMB}
	if l.Retention != 0 {
		v.Retention = shortDuration(l.Retention)
	}
	return v
}

// shortDuration writes d as time.ParseDuration reads it, in whole hours
// or seconds when it is one ("168h", "60s", not "1m0s"), else as
// time.Duration does ("1.5s").
func shortDuration(d time.Duration) string {
	switch {
	case d != 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
