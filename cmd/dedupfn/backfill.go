package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/backfill"
	"github.com/dedupfn/dedupfn/internal/bytesize"
)

// How `dedupfn backfill` follows a job; tests shorten them.
var (
	// backfillPoll is how often the job is read from the API.
	backfillPoll = 500 * time.Millisecond
	// backfillLineEvery is how often a plain progress line is printed
	// when stderr is not a terminal.
	backfillLineEvery = 5 * time.Second
	// backfillPollErrors is how many reads in a row may fail before the
	// command gives up following (the job goes on on the server).
	backfillPollErrors = 20
)

func newBackfillCmd() *cobra.Command {
	var (
		cf     clientFlags
		req    backfill.Request
		rate   string
		detach bool
	)
	cmd := &cobra.Command{
		Use:   "backfill NAME [--bucket B] [--prefix P] [--rate N/s] [--concurrency N] [--detach]",
		Short: "Send the objects already in a function's bucket through it (status, cancel)",
		Long: `Bring a bucket's existing objects under a function: the server lists the
function's trigger bucket (under --prefix, default the trigger's prefix) and
sends every object that has no activation of the function's current version
through the same dedup as its event would have taken: one run per distinct
content, and the activation id the event would get, so a late event or the
reconciler never runs it again.

The job runs on the server: it survives a restart of the server (or of this
command) and resumes where it stopped. This command follows it until it ends,
with a progress bar on a terminal and a plain line every few seconds
otherwise, and exits 0 once it is done, non-zero if it failed or was
canceled. --detach prints the job id and returns at once; follow it later
with 'dedupfn backfill status ID --follow'. Ctrl-C stops following, not the
job: 'dedupfn backfill cancel ID' stops it.

--rate and --concurrency keep live uploads first: backfill runs share the
server's function slots (serve --runs) with events.

A function named status or cancel: dedupfn backfill -- status.`,
		Example: `  dedupfn backfill thumbnail
  dedupfn backfill thumbnail --prefix 2024/ --rate 50/s --concurrency 2
  dedupfn backfill thumbnail --detach
  dedupfn backfill status
  dedupfn backfill cancel 0193a4c2e1f07b91c2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Function = args[0]
			r, err := parseRate(rate)
			if err != nil {
				return err
			}
			req.Rate = r
			c := cf.client()
			job, err := c.StartBackfill(cmd.Context(), req)
			if err != nil {
				return err
			}
			if detach {
				fmt.Fprintln(cmd.OutOrStdout(), job.ID)
				fmt.Fprintf(cmd.ErrOrStderr(), "backfill %s started; follow it with: dedupfn backfill status %s --follow\n", job.ID, job.ID)
				return nil
			}
			return followBackfill(cmd.Context(), c, job, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cf.register(cmd, false)
	fl := cmd.Flags()
	fl.StringVar(&req.Bucket, "bucket", "", "bucket to list (default, and it must be, the function's trigger bucket)")
	fl.StringVar(&req.Prefix, "prefix", "", "only keys under this prefix, within the trigger's (default the trigger's prefix)")
	fl.StringVar(&rate, "rate", "0", "at most this many objects a second, e.g. 50 or 50/s (0 = no limit)")
	fl.IntVar(&req.Concurrency, "concurrency", backfill.DefaultConcurrency, fmt.Sprintf("objects in flight at once (1 to %d)", backfill.MaxConcurrency))
	fl.BoolVar(&detach, "detach", false, "print the job id and return; the job runs on")
	cmd.AddCommand(newBackfillStatusCmd(), newBackfillCancelCmd())
	return cmd
}

// parseRate reads --rate: N or N/s objects a second.
func parseRate(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "/s"), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("--rate must be a number of objects a second >= 0, such as 50 or 50/s, got %q", s)
	}
	return v, nil
}

func newBackfillStatusCmd() *cobra.Command {
	var (
		cf     clientFlags
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "status [ID]",
		Short: "List backfill jobs, newest first, or show one (--follow: until it ends)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cf.client()
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				if follow {
					return errors.New("--follow needs a job ID")
				}
				jobs, err := c.Backfills(cmd.Context())
				if err != nil {
					return err
				}
				if cf.json {
					return writeJSON(out, jobs)
				}
				printBackfills(out, jobs)
				return nil
			}
			job, err := c.Backfill(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if follow {
				return followBackfill(cmd.Context(), c, job, out, cmd.ErrOrStderr())
			}
			if cf.json {
				return writeJSON(out, job)
			}
			printBackfill(out, job)
			return nil
		},
	}
	cf.register(cmd, true)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the job until it ends, as backfill does (exit 0 when done)")
	return cmd
}

func newBackfillCancelCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Stop a backfill job (objects in flight finish first)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			job, err := cf.client().CancelBackfill(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if job.State == backfill.Running {
				fmt.Fprintf(cmd.OutOrStdout(), "backfill %s: cancel requested; it stops once its objects in flight finish\n", job.ID)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backfill %s %s after %d objects\n", job.ID, job.State, job.Objects)
			return nil
		},
	}
	cf.register(cmd, false)
	return cmd
}

// followBackfill polls job until it ends, showing its progress on stderr,
// then prints a summary on stdout. It returns nil when the job is done,
// and an error saying so when it failed or was canceled.
func followBackfill(ctx context.Context, c *api.Client, job backfill.Job, stdout, stderr io.Writer) error {
	p := newBackfillProgress(stderr, job)
	failures := 0
	for job.State == backfill.Running {
		select {
		case <-ctx.Done():
			p.finish()
			return fmt.Errorf("stopped following backfill %s, which goes on on the server: dedupfn backfill status %s --follow; dedupfn backfill cancel %s", job.ID, job.ID, job.ID)
		case <-time.After(backfillPoll):
		}
		next, err := c.Backfill(ctx, job.ID)
		switch {
		case err != nil && ctx.Err() != nil:
			continue // reported above
		case err != nil:
			if failures++; failures >= backfillPollErrors {
				p.finish()
				return fmt.Errorf("backfill %s: cannot read it (%w); it goes on on the server: dedupfn backfill status %s", job.ID, err, job.ID)
			}
			continue
		}
		failures = 0
		job = next
		p.update(job)
	}
	p.finish()
	fmt.Fprintln(stdout, backfillSummary(job))
	switch job.State {
	case backfill.Done:
		if job.Errors > 0 {
			fmt.Fprintf(stderr, "%d objects failed: dedupfn dlq list --fn %s\n", job.Errors, job.Function)
		}
		return nil
	case backfill.Failed:
		return fmt.Errorf("backfill %s failed: %s", job.ID, job.Error)
	case backfill.Canceled:
		return fmt.Errorf("backfill %s was canceled", job.ID)
	}
	return fmt.Errorf("backfill %s ended in unknown state %q", job.ID, job.State)
}

// backfillProgress shows a job's progress: a bar (objects, bytes, runs,
// hits, errors, rate, ETA) on a terminal, else a plain line every
// backfillLineEvery.
type backfillProgress struct {
	p         *progress
	start     time.Time // first seen
	startObjs int64     // objects done then
}

func newBackfillProgress(w io.Writer, job backfill.Job) *backfillProgress {
	p := &backfillProgress{p: newProgress(w), start: time.Now(), startObjs: job.Objects}
	p.p.linef("backfill %s: function %s@%s, s3://%s/%s", job.ID, job.Function, job.Version, job.Bucket, job.Prefix)
	p.showBar(job)
	p.update(job)
	return p
}

// showBar shows the job's bar, on a terminal.
func (p *backfillProgress) showBar(job backfill.Job) {
	max := int64(-1) // a spinner until the total is known
	if job.TotalObjects > 0 {
		max = job.TotalObjects
	}
	p.p.startBar(max, p.description(job), progressbar.OptionShowCount())
	p.p.set(job.Objects)
}

// description is barDescription with the rate since the job was first
// seen, once there is one.
func (p *backfillProgress) description(job backfill.Job) string {
	return withRate(barDescription(job), job.Objects-p.startObjs, job.TotalObjects-p.startObjs, time.Since(p.start))
}

func (p *backfillProgress) update(job backfill.Job) {
	if p.p.barShown() {
		if job.TotalObjects > 0 {
			p.p.setMax(job.TotalObjects)
		}
		p.p.describe(p.description(job))
		p.p.set(job.Objects)
		return
	}
	if !p.p.lineDue(backfillLineEvery) && job.State == backfill.Running {
		return
	}
	done := fmt.Sprintf("%d objects, %s", job.Objects, bytesize.Format(job.Bytes))
	if job.TotalObjects > 0 {
		done = fmt.Sprintf("%d/%d objects (%.0f%%), %s/%s", job.Objects, job.TotalObjects,
			100*float64(job.Objects)/float64(job.TotalObjects), bytesize.Format(job.Bytes), bytesize.Format(job.TotalBytes))
	}
	rate := float64(job.Objects-p.startObjs) / time.Since(p.start).Seconds()
	eta := "?"
	if rate > 0 && job.TotalObjects > 0 {
		eta = time.Duration(float64(max(job.TotalObjects-job.Objects, 0)) / rate * float64(time.Second)).Round(time.Second).String()
	}
	p.p.linef("backfill %s: %s, %s, %.1f objects/s, ETA %s", job.ID, done, backfillCounts(job), rate, eta)
}

func (p *backfillProgress) finish() { p.p.endBar() }

func backfillCounts(j backfill.Job) string {
	return fmt.Sprintf("runs %d, hits %d, waits %d, skipped %d, errors %d", j.Runs, j.Hits, j.Waits, j.Skipped, j.Errors)
}

// barDescription goes before the bar, which shows the object count
// itself; it is short, to fit a terminal line.
func barDescription(j backfill.Job) string {
	d := fmt.Sprintf("%s, runs %d, hits %d, errors %d", bytesize.Format(j.Bytes), j.Runs, j.Hits, j.Errors)
	if j.Waits > 0 {
		d += fmt.Sprintf(", waits %d", j.Waits)
	}
	if j.Skipped > 0 {
		d += fmt.Sprintf(", skipped %d", j.Skipped)
	}
	return d
}

func backfillSummary(j backfill.Job) string {
	took := ""
	if !j.Finished.IsZero() {
		took = " in " + j.Finished.Sub(j.Created).Round(time.Second).String()
	}
	return fmt.Sprintf("backfill %s %s: %d objects, %s, %s%s", j.ID, j.State, j.Objects, bytesize.Format(j.Bytes), backfillCounts(j), took)
}

func printBackfills(w io.Writer, jobs []backfill.Job) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tFUNCTION\tOBJECTS\tRUNS\tHITS\tERRORS\tCREATED\tTARGET")
	for _, j := range jobs {
		objs := strconv.FormatInt(j.Objects, 10)
		if j.TotalObjects > 0 {
			objs += "/" + strconv.FormatInt(j.TotalObjects, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\ts3://%s/%s\n", j.ID, j.State, j.Function, objs, j.Runs, j.Hits+j.Waits, j.Errors,
			j.Created.Local().Format(time.DateTime), j.Bucket, j.Prefix)
	}
	tw.Flush()
}

func printBackfill(w io.Writer, j backfill.Job) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\nstate\t%s\n", j.ID, j.State)
	if j.Error != "" {
		fmt.Fprintf(tw, "error\t%s\n", j.Error)
	}
	fmt.Fprintf(tw, "function\t%s@%s (tenant %s)\ntarget\ts3://%s/%s\n", j.Function, j.Version, j.Tenant, j.Bucket, j.Prefix)
	rate := "no limit"
	if j.Rate > 0 {
		rate = fmt.Sprintf("%g objects/s", j.Rate)
	}
	fmt.Fprintf(tw, "rate\t%s\nconcurrency\t%d\n", rate, j.Concurrency)
	total := "counting"
	if j.TotalObjects > 0 || j.State != backfill.Running {
		total = fmt.Sprintf("%d (%s)", j.TotalObjects, bytesize.Format(j.TotalBytes))
	}
	fmt.Fprintf(tw, "objects\t%d (%s) of %s\n", j.Objects, bytesize.Format(j.Bytes), total)
	fmt.Fprintf(tw, "runs\t%d\nhits\t%d\nwaits\t%d\nskipped\t%d\nerrors\t%d\n", j.Runs, j.Hits, j.Waits, j.Skipped, j.Errors)
	fmt.Fprintf(tw, "created\t%s\nupdated\t%s\n", j.Created.Local().Format(time.DateTime), j.Updated.Local().Format(time.DateTime))
	if !j.Finished.IsZero() {
		fmt.Fprintf(tw, "finished\t%s\n", j.Finished.Local().Format(time.DateTime))
	}
	tw.Flush()
}
