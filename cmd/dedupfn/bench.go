package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/dedupfn/dedupfn/internal/bench"
)

// defaultBenchWasm is where `make bench` builds the copy function.
const defaultBenchWasm = "bin/copy.wasm"

type benchOptions struct {
	objects, size, uploaders int
	wasm                     string
	json                     bool
	serveArgs                []string
	cpuProfile               string
}

func newBenchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the hot path: a fresh serve, raw PUT rate vs end-to-end events",
		Long: `Start 'dedupfn serve' (this binary) on embedded defaults in a temporary data
dir on free loopback ports and, in one run, side by side:

  raw       N PUTs of --size bytes to an untriggered bucket (--uploaders at once)
  alone     the function run once on each distinct content in this process,
            GOMAXPROCS at once: with raw, the least any pipeline must spend here
  store     store alone: the e2e uploads, each followed by the output write
            its miss (Put) or hit (Copy) makes, on an embedded store in this
            process (no dedupfn): with alone, the e2e phase's ceiling
  e2e       the copy function (--wasm) on bucket "bench-in"; N PUTs with 50% duplicates
            (N/2 distinct contents, each uploaded twice, shuffled), timed from
            the first upload until every activation is recorded
  baseline  the same uploads to the same code deployed with --no-dedup

It prints the raw PUT rate, events/s and their ratio, the ceiling ratio (raw
time / (raw time + alone time)), the store ceiling ratio ((store time + alone
time) / e2e time: the e2e rate's share of that ceiling), hit latency (p50/p99 of activation total_ms of
hits; waits, which end with the run they wait for, apart), the platform overhead of misses
(total_ms - invoke_ms - run_wait_ms, p50), runs vs distinct contents and the dedup vs
no-dedup comparison. It fails if runs != distinct contents. Progress goes
to stderr when it is a terminal. Figures depend on the machine: compare
runs made side by side (--serve-arg to compare serve settings).`,
		Example: `  make bench    # builds bin/dedupfn and bin/copy.wasm, then runs this
  dedupfn bench --wasm bin/copy.wasm --objects 2000 --json
  dedupfn bench --serve-arg=--concurrency=16`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := o.benchOptions(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			rep, err := bench.Run(cmd.Context(), opts, benchProgress(newProgress(cmd.ErrOrStderr())))
			if err != nil {
				return err
			}
			if o.json {
				if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else {
				printBenchReport(cmd.OutOrStdout(), rep)
			}
			return rep.Check()
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.objects, "objects", bench.DefaultObjects, "uploads per phase (half of them duplicates in the e2e and baseline phases)")
	sizeVar(fl, &o.size, "size", bench.DefaultSize, 1, 1, "size of each object, such as 64KiB (a bare number is bytes)")
	fl.IntVar(&o.uploaders, "uploaders", bench.DefaultUploaders, "concurrent uploaders")
	fl.StringVar(&o.wasm, "wasm", defaultBenchWasm, "the copy function (examples/copy built for GOOS=wasip1 GOARCH=wasm)")
	fl.BoolVar(&o.json, "json", false, "print one JSON object")
	fl.StringArrayVar(&o.serveArgs, "serve-arg", nil, "extra argument for the serve started (repeatable), e.g. --serve-arg=--concurrency=16")
	fl.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of serve during the e2e phase to this file, and its block and mutex profiles to FILE.block and FILE.mutex (for go tool pprof)")
	return cmd
}

// benchOptions checks the flags and reads --wasm; a failed run's serve
// log goes to stderr.
func (o benchOptions) benchOptions(stderr io.Writer) (bench.Options, error) {
	switch {
	case o.objects < 2:
		return bench.Options{}, fmt.Errorf("--objects must be >= 2, got %d", o.objects)
	case o.size < 16:
		return bench.Options{}, fmt.Errorf("--size must be >= 16 bytes, got %d", o.size)
	case o.uploaders < 1:
		return bench.Options{}, fmt.Errorf("--uploaders must be >= 1, got %d", o.uploaders)
	}
	code, err := os.ReadFile(o.wasm)
	if err != nil {
		return bench.Options{}, fmt.Errorf("read --wasm: %w (build it with `make bench` or `GOOS=wasip1 GOARCH=wasm go build -o %s ./examples/copy`)", err, defaultBenchWasm)
	}
	if o.cpuProfile != "" && !bench.CPUProfileSupported {
		return bench.Options{}, errors.New("--cpuprofile is not supported on this system")
	}
	return bench.Options{
		Objects: o.objects, Size: o.size, Uploaders: o.uploaders, Code: code, ServeArgs: o.serveArgs,
		AccessKey: quickstartAccessKey, SecretKey: quickstartSecretKey, CPUProfile: o.cpuProfile, Log: stderr,
	}, nil
}

// benchProgress shows a bench run's steps on p: a bar per stage on a
// terminal, and the run's lines.
func benchProgress(p *progress) func(bench.Step) {
	var stage string // the bar's
	return func(s bench.Step) {
		if s.Line != "" {
			p.endBar()
			stage = ""
			p.linef("bench: %s", s.Line)
			return
		}
		if s.Stage != stage {
			p.endBar()
			p.startBar(s.Total, s.Stage, progressbar.OptionShowCount())
			stage = s.Stage
		}
		p.set(s.Done)
	}
}

func printBenchReport(w io.Writer, r bench.Report) {
	serveArgs := "none"
	if len(r.ServeArgs) > 0 {
		serveArgs = strings.Join(r.ServeArgs, " ")
	}
	fmt.Fprintf(w, "dedupfn bench: %d objects of %d bytes (%d distinct), %d uploaders, extra serve args: %s\n\n",
		r.Objects, r.Size, r.Distinct, r.Uploaders, serveArgs)
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "raw PUT/s (untriggered bucket)\t%.0f\t\n", r.RawPutsPerS)
	fmt.Fprintf(tw, "end-to-end events/s\t%.0f\tratio %.2f× the raw PUT rate (PUT/s while triggered: %.0f)\n", r.EventsPerS, r.Ratio, r.TriggeredPutsPerS)
	fmt.Fprintf(tw, "ceiling ratio\t%.2f×\traw time ÷ (raw time + %d runs of the function alone, %.2f s)\n", r.CeilingRatio, r.Distinct, r.FunctionAloneS)
	fmt.Fprintf(tw, "store ceiling ratio\t%.2f×\t(store alone %.2f s + function alone) ÷ e2e %.2f s; store-alone writes p50 hit %.2f (p99 %.2f), miss %.2f ms\n",
		r.StoreCeilingRatio, r.StoreAloneS, r.E2ES, r.StoreAloneHitWriteP50MS, r.StoreAloneHitWriteP99MS, r.StoreAloneMissWriteP50MS)
	if r.CPUBusy.Raw > 0 {
		fmt.Fprintf(tw, "cores busy\t\traw %.0f%%, alone %.0f%%, store alone %.0f%%, e2e %.0f%% (serve + bench)\n", 100*r.CPUBusy.Raw, 100*r.CPUBusy.Alone, 100*r.CPUBusy.StoreAlone, 100*r.CPUBusy.E2E)
		fmt.Fprintf(tw, "CPU ceiling ratio\t%.2f×\tif the e2e phase kept every core busy and added no CPU to the PUTs' and the runs'\n", r.CPUCeilingRatio)
	}
	fmt.Fprintf(tw, "hit total_ms p50 / p99\t%.2f / %.2f\tp50 fetch+hash %.2f, lookup %.2f, store %.2f; p99 lookup %.2f, store %.2f\n",
		r.HitP50MS, r.HitP99MS, r.HitFetchHashP50MS, r.HitLookupP50MS, r.HitStoreP50MS, r.HitLookupP99MS, r.HitStoreP99MS)
	fmt.Fprintf(tw, "wait total_ms p50 / p99\t%.2f / %.2f\t%d duplicates that came while their content ran\n", r.WaitP50MS, r.WaitP99MS, r.Waits)
	fmt.Fprintf(tw, "miss total−invoke p50 ms\t%.2f\tp50 invoke %.2f, lookup %.2f, store %.2f, rest %.2f\n",
		r.MissOverheadP50MS, r.MissInvokeP50MS, r.MissLookupP50MS, r.MissStoreP50MS, r.MissRestP50MS)
	fmt.Fprintf(tw, "queue_ms p50 / max\t%.1f / %.1f\t\n", r.QueueP50MS, r.QueueMaxMS)
	fmt.Fprintf(tw, "runs / distinct\t%d / %d\thits %d (waits %d), errors %d\n", r.Runs, r.Distinct, r.Hits, r.Waits, r.Errors)
	tw.Flush()
	b := r.Baseline
	fmt.Fprintf(w, "\nsame uploads, dedup vs --no-dedup baseline:\n")
	tw = tabwriter.NewWriter(w, 0, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tno-dedup\tdedup\tno-dedup/dedup\t\n")
	fmt.Fprintf(tw, "runs\t%d\t%d\t%.2f×\t\n", b.Runs, b.DedupRuns, b.RunsRatio)
	fmt.Fprintf(tw, "errors\t%d\t%d\t\t\n", b.Errors, r.Errors)
	fmt.Fprintf(tw, "function ms\t%.0f\t%.0f\t%.2f×\t\n", b.FunctionMS, b.DedupFunctionMS, b.FunctionTimeRatio)
	fmt.Fprintf(tw, "wall s\t%.2f\t%.2f\t%.2f×\t\n", b.WallS, b.DedupWallS, b.WallTimeRatio)
	tw.Flush()
}
