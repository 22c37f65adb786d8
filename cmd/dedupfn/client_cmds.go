package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
)

func newInvokeCmd() *cobra.Command {
	var (
		cf  clientFlags
		req pipeline.InvokeRequest
	)
	cmd := &cobra.Command{
		Use:   "invoke NAME --bucket B --key K",
		Short: "Run a function on one object now, through the same dedup as events",
		Long: `Run a function on one object now, through the same dedup as events.

The object must exist (else invoke fails, exit status 1, and records nothing) and
be one the function triggers on: its trigger bucket, prefix and suffixes. Pass
--any-key to run it on another object of yours anyway.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Function = args[0]
			rec, err := cf.client().Invoke(cmd.Context(), req)
			if err != nil {
				return err
			}
			if cf.json {
				return writeJSON(cmd.OutOrStdout(), rec)
			}
			if err := writeActivations(cmd.OutOrStdout(), []activation.Record{rec}, true, 0); err != nil {
				return err
			}
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
	cmd.Flags().BoolVar(&req.AnyKey, "any-key", false, "run even on an object outside the function's trigger (another bucket, prefix or suffix)")
	cmd.MarkFlagRequired("bucket")
	cmd.MarkFlagRequired("key")
	return cmd
}

func newActivationsCmd() *cobra.Command {
	var (
		cf       clientFlags
		fn       string
		since    string
		limit    int
		follow   bool
		every    time.Duration
		decision string
		errs     bool
	)
	cmd := &cobra.Command{
		Use:   "activations [ID]",
		Short: "List activation records, newest first (or show one by ID, or --follow new ones)",
		Long: `List activation records, newest first (or show one by ID, or --follow new ones).

ID is a full activation id or, as with git, any prefix of at least 8 characters
that names one of your activations only (the tables show 12); a prefix that
names several is refused with their ids.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cf.client()
			if len(args) == 1 {
				rec, err := c.Activation(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return writeJSON(cmd.OutOrStdout(), rec)
			}
			q := api.ActivationQuery{Function: fn, Limit: limit, Decision: activation.Decision(decision), ErrorsOnly: errs}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				q.Since = t
			}
			if follow {
				if every <= 0 {
					return fmt.Errorf("--interval must be > 0, got %s", every)
				}
				return followActivations(cmd.Context(), c, q, every, cmd.OutOrStdout(), cmd.ErrOrStderr(), cf.json)
			}
			recs, err := c.ListActivations(cmd.Context(), q)
			if err != nil {
				return err
			}
			return printActivations(cmd.OutOrStdout(), recs, cf.json)
		},
	}
	cf.register(cmd, true)
	cmd.Flags().StringVar(&fn, "fn", "", "only this function's activations")
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many (with --follow: shown before following)")
	cmd.Flags().StringVar(&since, "since", "", "only activations started at or after this: a duration back from now (10m, 2h) or an RFC 3339 time")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new activations as they are recorded, oldest first, until Ctrl-C (--json: one JSON object a line)")
	cmd.Flags().DurationVar(&every, "interval", time.Second, "with --follow, how often to ask the API")
	among := fmt.Sprintf(" (among the %d newest that match the other flags)", api.DefaultActivationScan)
	cmd.Flags().StringVar(&decision, "decision", "", "only activations with this decision: hit, miss, wait, error, skipped or delete"+among)
	cmd.Flags().BoolVar(&errs, "errors", false, "only failed or dead-lettered activations"+among)
	return cmd
}

// parseSince reads --since: a duration back from now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since duration must be >= 0 (it counts back from now), got %s", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since must be a duration such as 10m or an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", s)
	}
	return t, nil
}

// Defaults of activations --follow.
const (
	// followLookback is how far before the newest start seen each poll
	// asks again: an activation is recorded when it ends, so one that
	// started earlier may be recorded later. One recorded more than this
	// after a newer one started is not shown.
	followLookback = 10 * time.Minute
	// followPage is the most records one poll reads: more activations
	// than this started within followLookback are not all shown.
	followPage = 1000
)

// followActivations prints the activations q selects (its Limit newest
// first, as a listing would) and then, every interval until ctx ends,
// those recorded since: each once, oldest first. It polls with a since
// cursor kept followLookback behind the newest start seen, remembering
// the ids it printed within that window. It prints to w, as JSON lines
// if asJSON, else as table rows. An API error is reported on stderr and
// the poll tried again.
func followActivations(ctx context.Context, c *api.Client, q api.ActivationQuery, every time.Duration, w, stderr io.Writer, asJSON bool) error {
	seen := map[string]time.Time{} // printed ids by start, within the window
	floor := q.Since               // nothing before it is shown
	var newest time.Time
	header := !asJSON
	first := true
	for {
		page := q
		if !first {
			page.Limit = followPage
			page.Since = floor
			if !newest.IsZero() {
				page.Since = later(floor, newest.Add(-followLookback))
			}
		}
		recs, err := c.ListActivations(ctx, page)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && first:
			return err // a wrong --api or token: say so at once
		case err != nil:
			fmt.Fprintln(stderr, "dedupfn: activations --follow:", err)
		}
		if first && q.Limit > 0 && len(recs) >= q.Limit {
			// Only the newest Limit are shown: older ones are not "new".
			floor = later(floor, recs[len(recs)-1].Start)
		}
		first = false
		var fresh []activation.Record
		for _, r := range recs {
			if _, ok := seen[r.ID]; ok || r.Start.Before(floor) {
				continue
			}
			seen[r.ID] = r.Start
			fresh = append(fresh, r)
			newest = later(newest, r.Start)
		}
		slices.SortStableFunc(fresh, func(a, b activation.Record) int {
			return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.ID, b.ID))
		})
		if err := writeFollowed(w, fresh, asJSON, header); err != nil {
			return err
		}
		header = header && len(fresh) == 0
		for id, start := range seen { // forget what no poll asks for again
			if start.Before(newest.Add(-followLookback)) {
				delete(seen, id)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// writeFollowed writes the records one poll of --follow found: as JSON
// lines, or as table rows (after the header, if header).
func writeFollowed(w io.Writer, recs []activation.Record, asJSON, header bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	if len(recs) == 0 {
		return nil
	}
	return writeActivations(w, recs, header, 12)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func newStatsCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use: "stats", Short: "Totals: events, runs, hits, errors and compute saved", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := cf.client()
			st, err := c.Stats(cmd.Context())
			if err != nil {
				return err
			}
			fns, err := c.Functions(cmd.Context())
			if err != nil {
				return err
			}
			out := statsOutput{Stats: st, Nondeterministic: nondeterministicFns(fns)}
			if cf.json {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			return writeStats(cmd.OutOrStdout(), out)
		},
	}
	cf.register(cmd, true)
	return cmd
}

// statsOutput is what stats prints: the totals, then the functions whose
// current version an audit found nondeterministic.
type statsOutput struct {
	activation.Stats
	Nondeterministic []nondeterministicFn `json:"nondeterministic,omitempty"`
}

// nondeterministicFn is one function in stats' list of nondeterministic ones.
type nondeterministicFn struct {
	Tenant     string `json:"tenant"`
	Function   string `json:"function"`
	OnMismatch string `json:"on_mismatch"`
	registry.Nondeterministic
}

func nondeterministicFns(fns []registry.Function) []nondeterministicFn {
	var out []nondeterministicFn
	for _, f := range fns {
		if f.Nondeterministic != nil {
			out = append(out, nondeterministicFn{Tenant: f.Tenant, Function: f.Name, OnMismatch: cmp.Or(f.Audit.OnMismatch, registry.OnMismatchWarn), Nondeterministic: *f.Nondeterministic})
		}
	}
	slices.SortFunc(out, func(a, b nondeterministicFn) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Function, b.Function))
	})
	return out
}

func writeStats(w io.Writer, out statsOutput) error {
	st := out.Stats
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	// Waits are hits that first waited for a concurrent run: say so, as
	// the dashboard does, so they are not added to the hits.
	hits := fmt.Sprint(st.Hits)
	if st.Waits > 0 {
		hits += fmt.Sprintf(", %d of them after waiting for a run of the same content", st.Waits)
	}
	fmt.Fprintf(tw, "events\t%d\nruns\t%d\nhits\t%s\nerrors\t%d\nskipped\t%d\n", st.Events, st.Runs, hits, st.Errors, st.Skipped)
	if st.Deletes > 0 { // only with --on-input-delete delete: no line to puzzle over otherwise
		fmt.Fprintf(tw, "deleted outputs\t%d\n", st.Deletes)
	}
	fmt.Fprintf(tw, "dead letters\t%d\n", st.DeadLetters)
	fmt.Fprintf(tw, "function time\t%.3f s\ntime saved\t%.3f s\n", st.FunctionMS/1000, st.SavedMS/1000)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.Nondeterministic) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nnondeterministic functions (%d): an audit re-ran a hit and got another output\n", len(out.Nondeterministic))
	tw = tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tTENANT\tVERSION\tSINCE\tON MISMATCH\tACTIVATION\tRECORDED SHA256\tAUDIT SHA256")
	for _, n := range out.Nondeterministic {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Function, n.Tenant, n.Version,
			n.At.Local().Format(time.RFC3339), n.OnMismatch, n.Activation, shortDigest(n.RecordedDigest), shortDigest(n.AuditDigest))
	}
	return tw.Flush()
}

// shortDigest abbreviates a hex digest for a table.
func shortDigest(digest string) string { return digest[:min(12, len(digest))] }

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
			fmt.Fprintf(cmd.OutOrStdout(), "purged %d record(s) of %s\n", n, req.Function)
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
				return writeJSON(cmd.OutOrStdout(), x)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			fmt.Fprintf(tw, "function\t%s@%s\nobject\t%s/%s\nfingerprint\t%s\ndedup key\t%s\n", x.Function, x.Version, x.Bucket, x.Key, x.Fingerprint, x.DedupKey)
			params, config := paramsText(x.Parts.Params)
			fmt.Fprintf(tw, "  tenant\t%s\n  code digest\t%s\n  params\t%s\n", x.Parts.Tenant, x.Parts.CodeDigest, params)
			if config != "" {
				fmt.Fprintf(tw, "  config\t%s\n", config)
			}
			fmt.Fprintf(tw, "  runtime\t%s\n", x.Parts.RuntimeVersion)
			if x.Output != nil {
				fmt.Fprintf(tw, "output\t%s/%s\n", x.Output.Bucket, x.Output.Key)
			}
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

// paramsText reads the params part of a dedup key, canonical JSON of the
// params then of the runtime config ({"size":"128"}{}), as key=value
// lists for people ("size=128", "none"). A part too long to keep in the
// key is a digest ("sha256:…"): it is returned as such, with no config.
func paramsText(part string) (params, config string) {
	if strings.HasPrefix(part, "sha256:") {
		return part + " (too long to keep in the key: stored apart)", ""
	}
	dec := json.NewDecoder(strings.NewReader(part))
	var lists [2]string
	for i := range lists {
		var m map[string]string
		if err := dec.Decode(&m); err != nil {
			return part, "" // not the canonical form: show it as it is
		}
		kvs := make([]string, 0, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v := m[k]
			if v == "" || strings.ContainsAny(v, " \t\n\"=") {
				v = strconv.Quote(v)
			}
			kvs = append(kvs, k+"="+v)
		}
		lists[i] = cmp.Or(strings.Join(kvs, " "), "none")
	}
	return lists[0], lists[1]
}
