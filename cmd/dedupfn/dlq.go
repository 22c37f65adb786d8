package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
)

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Dead letters: activations that failed for good (list, retry)",
	}
	cmd.AddCommand(newDLQListCmd(), newDLQRetryCmd())
	return cmd
}

// dlqFlags select dead letters, as list and retry --all do.
type dlqFlags struct {
	fn, since string
	limit     int
}

func (f *dlqFlags) register(cmd *cobra.Command, limitDefault int) {
	cmd.Flags().StringVar(&f.fn, "fn", "", "only this function's dead letters")
	cmd.Flags().StringVar(&f.since, "since", "", "only those started at or after this: a duration back from now (10m, 2h) or an RFC 3339 time")
	cmd.Flags().IntVar(&f.limit, "limit", limitDefault, "at most this many")
}

func (f *dlqFlags) query() (api.ActivationQuery, error) {
	q := api.ActivationQuery{Function: f.fn, Limit: f.limit}
	if f.since != "" {
		t, err := parseSince(f.since, time.Now())
		if err != nil {
			return q, err
		}
		q.Since = t
	}
	return q, nil
}

func newDLQListCmd() *cobra.Command {
	var (
		cf clientFlags
		df dlqFlags
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters not retried yet, newest first",
		Long: `List dead letters not retried yet, newest first. A dead letter retried
with "dlq retry" is no longer listed; if its retry failed for good, the
retry is listed in its place. Only the newest ` + fmt.Sprint(api.DefaultDLQScan) + ` activations matching
--fn and --since are looked through.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := df.query()
			if err != nil {
				return err
			}
			recs, err := cf.client().DeadLetters(cmd.Context(), q)
			if err != nil {
				return err
			}
			return printActivations(cmd.OutOrStdout(), recs, cf.json)
		},
	}
	cf.register(cmd, true)
	df.register(cmd, 20)
	return cmd
}

func newDLQRetryCmd() *cobra.Command {
	var (
		cf  clientFlags
		df  dlqFlags
		all bool
	)
	cmd := &cobra.Command{
		Use:   "retry [ID | --all]",
		Short: "Run dead letters' events again, once their cause is fixed",
		Long: `Run a dead letter's event again through the function's current version,
typically after deploying a fix. The same object version is read (one
replaced since is recorded as skipped). A new activation is recorded, its
retry_of naming the dead letter, which is kept as it was; the retry is
printed. --all retries every dead letter "dlq list" would show (with the
same --fn, --since and --limit).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return errors.New("dlq retry takes an activation ID or --all")
			}
			c := cf.client()
			ids := args
			if all {
				q, err := df.query()
				if err != nil {
					return err
				}
				dead, err := c.DeadLetters(cmd.Context(), q)
				if err != nil {
					return err
				}
				ids = nil
				for _, r := range dead {
					ids = append(ids, r.ID)
				}
			}
			var (
				recs   []activation.Record
				failed int
			)
			for _, id := range ids {
				rec, err := c.Retry(cmd.Context(), id)
				if err != nil {
					if cmd.Context().Err() != nil {
						return err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "dedupfn: retry %s: %v\n", id, err)
					failed++
					continue
				}
				recs = append(recs, rec)
				if rec.Decision == activation.Error {
					failed++
				}
			}
			if cf.json || len(recs) > 0 {
				if err := printActivations(cmd.OutOrStdout(), recs, cf.json); err != nil {
					return err
				}
			}
			switch {
			case all && len(ids) == 0:
				fmt.Fprintln(cmd.ErrOrStderr(), "no dead letters to retry")
			case failed > 0:
				return fmt.Errorf("%d of %d retries failed", failed, len(ids))
			}
			return nil
		},
	}
	cf.register(cmd, true)
	df.register(cmd, 100)
	cmd.Flags().BoolVar(&all, "all", false, "retry every dead letter listed (see --fn, --since, --limit)")
	return cmd
}
