package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/analyze"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/bytesize"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/s3"
	"github.com/dedupfn/dedupfn/internal/plugin"
)

// Defaults of `dedupfn analyze`.
const (
	// defaultAnalyzeObjects is the built-in endpoint of a local
	// `dedupfn serve` (its --s3-addr default).
	defaultAnalyzeObjects = "s3://127.0.0.1:9000?tls=false"
	// analyzeFnSample is how many recent activations --fn looks through.
	analyzeFnSample = 1000
	// analyzeLineEvery is how often progress is printed when stderr is
	// not a terminal.
	analyzeLineEvery = 5 * time.Second
)

type analyzeOptions struct {
	objectsURL string
	fn         string
	cf         clientFlags
	opts       analyze.Options
}

func newAnalyzeCmd() *cobra.Command {
	var o analyzeOptions
	cmd := &cobra.Command{
		Use:   "analyze s3://BUCKET[/PREFIX]",
		Short: "Report how much of a bucket is duplicate content, and what dedup would save",
		Long: `List every object under a bucket or prefix, fingerprint each one and report
objects, bytes, distinct contents, the duplicate share and the largest
duplicate groups (by wasted bytes). No server is needed: analyze reads the
store directly (--objects).

Objects are fingerprinted from the store's trusted SHA-256 when it has one
(an S3 FULL_OBJECT checksum: on MinIO/S3 when the object was uploaded with
one, on the built-in endpoint always), with a HEAD and no read; the others are read and hashed. Once the store has
answered 8 HEADs without a checksum and none with one, objects of 1 MiB or
less are read without asking first.

With --fn-seconds S (a function's run time), or --fn NAME (the median run
time of a deployed function's recent runs, from its activations through the
API; the report says so), it also reports the compute a dedup function would save: duplicate objects × S.

Credentials: from the --objects URL (s3://KEY:SECRET@host:port), else
DEDUPFN_S3_ACCESS_KEY/DEDUPFN_S3_SECRET_KEY, else DEDUPFN_ACCESS_KEY/
DEDUPFN_SECRET_KEY (the built-in endpoint's), else the quickstart
credentials for an endpoint on loopback.`,
		Example: `  dedupfn analyze s3://images                      # the built-in endpoint of 'make run'
  dedupfn analyze s3://images/2024/ --fn-seconds 0.8 --top 5
  dedupfn analyze s3://logs --objects 's3://minio.local:9000?tls=false' --json
  dedupfn analyze s3://images --fn thumbnail       # median run time of a deployed function`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAnalyze(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.objectsURL, "objects", defaultAnalyzeObjects, "object store holding the bucket: s3://[KEY:SECRET@]host:port?tls=false")
	fl.IntVar(&o.opts.Concurrency, "concurrency", analyze.DefaultConcurrency, "objects fingerprinted at once")
	fl.IntVar(&o.opts.Top, "top", analyze.DefaultTop, "duplicate groups to list (largest waste first)")
	fl.IntVar(&o.opts.Keys, "keys", analyze.DefaultKeys, "keys shown per group")
	fl.Float64Var(&o.opts.FnSeconds, "fn-seconds", 0, "a function's run time in seconds, to report the compute dedup would save")
	fl.StringVar(&o.fn, "fn", "", "take the run time from this deployed function's recent runs (needs a server: --api)")
	o.cf.register(cmd, true)
	cmd.MarkFlagsMutuallyExclusive("fn", "fn-seconds")
	return cmd
}

func (o analyzeOptions) validate() error {
	switch {
	case o.opts.Concurrency < 1:
		return fmt.Errorf("--concurrency must be >= 1, got %d", o.opts.Concurrency)
	case o.opts.Top < 0:
		return fmt.Errorf("--top must be >= 0, got %d", o.opts.Top)
	case o.opts.Keys < 1:
		return fmt.Errorf("--keys must be >= 1, got %d", o.opts.Keys)
	case o.opts.FnSeconds < 0:
		return fmt.Errorf("--fn-seconds must be >= 0, got %g", o.opts.FnSeconds)
	case strings.HasPrefix(o.objectsURL, "embedded:"):
		return fmt.Errorf("--objects embedded: starts an endpoint of its own; point analyze at the running one instead, e.g. --objects '%s'", defaultAnalyzeObjects)
	}
	return nil
}

func runAnalyze(ctx context.Context, o analyzeOptions, target string, stdout, stderr io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	t, err := analyze.ParseTarget(target)
	if err != nil {
		return err
	}
	if o.opts.Top == 0 {
		o.opts.Top = -1 // analyze.Options: 0 is the default, negative lists none
	}
	if o.fn != "" {
		if o.opts.FnSeconds, o.opts.FnSource, err = medianFunctionSeconds(ctx, o.cf.client(), o.fn); err != nil {
			return err
		}
	}
	storeOpts := analyzeStoreOptions(o.objectsURL)
	store, err := objects.Open(ctx, o.objectsURL, storeOpts)
	if err != nil {
		return fmt.Errorf("open objects %s: %w", plugin.Redact(o.objectsURL), err)
	}
	defer store.Close()

	prog := newAnalyzeProgress(stderr)
	o.opts.Listed, o.opts.Fingerprinted = prog.listed, prog.fingerprinted
	rep, err := analyze.Run(ctx, store, t, o.opts)
	prog.finish(rep)
	if errors.Is(err, objects.ErrAccessDenied) {
		key := storeOpts.AccessKey
		if u, perr := url.Parse(o.objectsURL); perr == nil && u.User != nil {
			key = u.User.Username()
		}
		return fmt.Errorf("check the credentials (access key %q; set them in the --objects URL, or DEDUPFN_S3_ACCESS_KEY and DEDUPFN_S3_SECRET_KEY): %w", key, err)
	}
	if err != nil {
		return err
	}
	if o.cf.json {
		return writeJSON(stdout, rep)
	}
	printAnalyzeReport(stdout, rep)
	return nil
}

// analyzeStoreOptions returns the credentials for rawURL when it has none
// of its own: the external-S3 variables, else the built-in endpoint's,
// else the quickstart ones of a local `dedupfn serve` for a loopback host.
func analyzeStoreOptions(rawURL string) objects.Options {
	var opts objects.Options
	switch {
	case os.Getenv(s3.EnvAccessKey) != "" || os.Getenv(s3.EnvSecretKey) != "":
		opts.AccessKey, opts.SecretKey = os.Getenv(s3.EnvAccessKey), os.Getenv(s3.EnvSecretKey)
	case os.Getenv("DEDUPFN_ACCESS_KEY") != "" || os.Getenv("DEDUPFN_SECRET_KEY") != "":
		opts.AccessKey, opts.SecretKey = os.Getenv("DEDUPFN_ACCESS_KEY"), os.Getenv("DEDUPFN_SECRET_KEY")
	default:
		if u, err := url.Parse(rawURL); err == nil && isLoopback(u.Host) {
			opts.AccessKey, opts.SecretKey = quickstartAccessKey, quickstartSecretKey
		}
	}
	return opts
}

// medianFunctionSeconds is the median run time of fn's runs among its
// last analyzeFnSample activations, and a phrase saying so. Not the mean:
// run time grows with input size, and one large input among many small
// ones (a 20 MB image among photos) would make every duplicate "cost" as
// if it were large.
func medianFunctionSeconds(ctx context.Context, c *api.Client, fn string) (float64, string, error) {
	recs, err := c.Activations(ctx, fn, analyzeFnSample)
	if err != nil {
		return 0, "", fmt.Errorf("--fn %s: read activations: %w", fn, err)
	}
	var runs []float64
	for _, r := range recs {
		if r.Decision == activation.Miss && r.FunctionMS > 0 {
			runs = append(runs, r.FunctionMS)
		}
	}
	if len(runs) == 0 {
		return 0, "", fmt.Errorf("--fn %s: no runs among its last %d activations to measure; pass --fn-seconds instead", fn, analyzeFnSample)
	}
	slices.Sort(runs)
	median := runs[len(runs)/2]
	if len(runs)%2 == 0 {
		median = (runs[len(runs)/2-1] + median) / 2
	}
	return median / 1000, fmt.Sprintf("the median of %d recent runs of %s", len(runs), fn), nil
}

func printAnalyzeReport(w io.Writer, r *analyze.Report) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "target\t%s\n", r.Target)
	fmt.Fprintf(tw, "objects\t%d\n", r.Objects)
	fmt.Fprintf(tw, "bytes\t%s\n", bytesize.Format(r.Bytes))
	fmt.Fprintf(tw, "distinct contents\t%d (%s)\n", r.Distinct, bytesize.Format(r.DistinctBytes))
	fmt.Fprintf(tw, "duplicate objects\t%d (%.1f%%)\n", r.DuplicateObjects, 100*r.DuplicateShare)
	fmt.Fprintf(tw, "duplicate bytes\t%s (%.1f%%)\n", bytesize.Format(r.DuplicateBytes), 100*r.DuplicateBytesShare)
	fmt.Fprintf(tw, "duplicate groups\t%d\n", r.DuplicateGroups)
	if r.SavedSeconds != nil {
		source := ""
		if r.FnSource != "" {
			source = ", " + r.FnSource
		}
		fmt.Fprintf(tw, "compute saved\t%s (%d runs × %.3f s%s)\n",
			time.Duration(*r.SavedSeconds*float64(time.Second)).Round(time.Millisecond), r.DuplicateObjects, r.FnSeconds, source)
	}
	fmt.Fprintf(tw, "fingerprinted\t%d from the store's SHA-256, %d read (%s) in %.1f s\n",
		r.ZeroRead, r.Objects-r.ZeroRead, bytesize.Format(r.ReadBytes), r.ElapsedSeconds)
	if r.Vanished > 0 {
		fmt.Fprintf(tw, "vanished\t%d (deleted while analyzed, not counted)\n", r.Vanished)
	}
	tw.Flush()
	if len(r.Groups) == 0 {
		return
	}
	fmt.Fprintf(w, "\nlargest duplicate groups (%d of %d, by wasted bytes):\n", len(r.Groups), r.DuplicateGroups)
	tw = tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "SHA256\tCOPIES\tSIZE\tWASTED\tKEYS")
	for _, g := range r.Groups {
		keys := strings.Join(g.Keys, ", ")
		if more := g.Count - int64(len(g.Keys)); more > 0 {
			keys += fmt.Sprintf(", … (%d more)", more)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", g.SHA256[:12], g.Count, bytesize.Format(g.Bytes), bytesize.Format(g.WastedBytes), keys)
	}
	tw.Flush()
}

// analyzeProgress shows a progress bar (objects, bytes read, then rate
// and ETA) on a terminal, and a plain line every analyzeLineEvery otherwise.
type analyzeProgress struct {
	mu           sync.Mutex // fingerprinted is called from any goroutine
	p            *progress
	start        time.Time
	total, bytes int64 // bytes listed, and fingerprinted so far
	read         int64 // bytes read to fingerprint so far
	objects, n   int64
}

func newAnalyzeProgress(w io.Writer) *analyzeProgress {
	return &analyzeProgress{p: newProgress(w), start: time.Now()}
}

func (p *analyzeProgress) listed(objects, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.objects, p.total, p.start = objects, bytes, time.Now()
	p.p.last = p.start // the first plain line comes analyzeLineEvery after the listing
	p.p.linef("analyze: listed %d objects, %s", objects, bytesize.Format(bytes))
	// The bar counts objects, not bytes: an object over 1 MiB whose
	// SHA-256 the store holds is not read, so bytes do not measure work.
	if objects > 0 {
		p.p.startBar(objects, "0 B read", progressbar.OptionShowCount())
	}
}

func (p *analyzeProgress) fingerprinted(size int64, read bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	p.bytes += size
	if read {
		p.read += size
	}
	if p.p.barShown() {
		p.p.add(1)
		p.p.describe(withRate(bytesize.Format(p.read)+" read", p.n, p.objects, time.Since(p.start)))
		return
	}
	if p.p.tty || !p.p.lineDue(analyzeLineEvery) {
		return
	}
	elapsed := time.Since(p.start)
	rate := float64(p.bytes) / elapsed.Seconds()
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(p.total-p.bytes) / rate * float64(time.Second)).Round(time.Second).String()
	}
	p.p.linef("analyze: %d/%d objects, %s/%s, %s/s, ETA %s",
		p.n, p.objects, bytesize.Format(p.bytes), bytesize.Format(p.total), bytesize.Format(int64(rate)), eta)
}

// finish ends the bar; rep is nil when the analysis failed.
func (p *analyzeProgress) finish(rep *analyze.Report) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.p.endBar()
	if rep != nil {
		p.p.linef("analyze: fingerprinted %d objects (%s) in %s",
			rep.Objects, bytesize.Format(rep.Bytes), time.Since(p.start).Round(time.Millisecond))
	}
}
