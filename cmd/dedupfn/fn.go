package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/registry"
)

func newFnCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "fn", Short: "Deploy, list, show and delete functions"}
	cmd.AddCommand(newFnDeployCmd(), newFnListCmd(), newFnGetCmd(), newFnDeleteCmd())
	return cmd
}

// deployFlags are fn deploy's flags.
type deployFlags struct {
	wasmFile, execFile string
	owAction, owAPI    string
	owCreate           bool
	fn                 registry.Function
	params, env        []string
	timeout, lease     time.Duration
	onMismatch         string
	onMismatchSet      bool // --on-mismatch given
}

// request is the deploy of function name that the flags ask for, with the
// code of --wasm or --exec read. It does not create an --openwhisk-create
// action: the caller does, once the request is known to be good.
func (f deployFlags) request(name string) (api.DeployRequest, error) {
	fn := f.fn
	fn.Name = name
	fn.Limits.Timeout, fn.Limits.Lease = f.timeout, f.lease
	if fn.Audit.Rate > 0 || f.onMismatchSet {
		fn.Audit.OnMismatch = f.onMismatch
	}
	var err error
	if fn.Params, err = keyValues("--param", f.params); err != nil {
		return api.DeployRequest{}, err
	}
	envs, err := keyValues("--env", f.env)
	if err != nil {
		return api.DeployRequest{}, err
	}
	var code []byte
	kinds := 0
	for _, s := range []string{f.wasmFile, f.execFile, f.owAction} {
		if s != "" {
			kinds++
		}
	}
	if f.owCreate && f.execFile != "" && f.owAction != "" {
		kinds-- // --exec is the code of the action --openwhisk-create uploads
	}
	if kinds != 1 {
		return api.DeployRequest{}, fmt.Errorf("give exactly one of --wasm FILE, --exec FILE or --openwhisk-action NAME")
	}
	switch {
	case f.wasmFile != "":
		fn.Runtime = "wasm"
		if code, err = os.ReadFile(f.wasmFile); err != nil {
			return api.DeployRequest{}, fmt.Errorf("read --wasm: %w", err)
		}
	case f.execFile != "" && !f.owCreate:
		fn.Runtime = "process"
		if code, err = os.ReadFile(f.execFile); err != nil {
			return api.DeployRequest{}, fmt.Errorf("read --exec: %w", err)
		}
	default:
		fn.Runtime = "openwhisk"
		// Without --openwhisk-api the server's own OpenWhisk is used.
		fn.Config = map[string]string{"openwhisk.action": f.owAction}
		if f.owAPI != "" {
			fn.Config["openwhisk.api"] = f.owAPI
		}
		if f.owCreate {
			if f.execFile == "" {
				return api.DeployRequest{}, fmt.Errorf("--openwhisk-create needs --exec FILE with the action's code")
			}
			if f.owAPI == "" {
				return api.DeployRequest{}, fmt.Errorf("--openwhisk-create needs --openwhisk-api URL to upload the action to")
			}
		}
	}
	for k, v := range envs {
		if fn.Config == nil {
			fn.Config = map[string]string{}
		}
		fn.Config["env."+k] = v
	}
	return api.DeployRequest{Function: fn, Code: code}, nil
}

func newFnDeployCmd() *cobra.Command {
	var (
		cf clientFlags
		df deployFlags
	)
	cmd := &cobra.Command{
		Use:   "deploy NAME",
		Short: "Deploy a function (a new version when code or params change)",
		Long: `Deploy a function (a new version when code or params change).

The trigger bucket (--bucket) and the output bucket (--output-bucket) must
exist: deploy refuses a missing one, naming it (create it with
aws s3 mb s3://NAME, mc mb, or serve --create-bucket NAME).

--output-key is where each input's output goes, a template of these
placeholders (for input a/b/cat.jpg of function thumbnail):

` + placeholderHelp() + `
The template must determine the input key: use {key}, or {dir}, {base} and
{ext} together ({dir}{base} alone maps x.jpg and x.png to one key), e.g.
thumbs/{key}, thumbs/{dir}{base}{ext}.png or {name}/{key}.json. Other
placeholders and braces are refused; "." and empty segments are dropped.
A function that writes no output stream gets its JSON result at KEY.json.`,
		Example: `  dedupfn fn deploy thumbnail --wasm thumbnail.wasm --bucket images \
      --suffix .jpg --suffix .jpeg --suffix .png --output-bucket thumbnails --param size=128`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			df.onMismatchSet = cmd.Flags().Changed("on-mismatch")
			req, err := df.request(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if df.owCreate {
				if err := createOpenWhiskAction(cmd.Context(), out, df.owAPI, df.owAction, df.execFile); err != nil {
					return err
				}
			}
			resp, err := cf.client().Deploy(cmd.Context(), req)
			if err != nil {
				return err
			}
			if cf.json {
				return writeJSON(out, resp)
			}
			printDeployed(out, resp)
			return nil
		},
	}
	cf.register(cmd, true)
	fl := cmd.Flags()
	fl.StringVar(&df.wasmFile, "wasm", "", "WebAssembly (WASI) module: input on stdin, output on stdout")
	fl.StringVar(&df.execFile, "exec", "", "executable or zip with `exec` at its root speaking the OpenWhisk actionloop protocol (host code: admin token only)")
	fl.StringVar(&df.owAction, "openwhisk-action", "", "remote OpenWhisk action [/NS/][PKG/]ACTION (auth from DEDUPFN_OPENWHISK_AUTH)")
	fl.StringVar(&df.owAPI, "openwhisk-api", "", "OpenWhisk API host URL, e.g. https://openwhisk.example.com; must be on the server's allow-list (default: the server's --openwhisk-api)")
	fl.BoolVar(&df.owCreate, "openwhisk-create", false, "create or update the OpenWhisk action from --exec first")
	fl.StringVar(&df.fn.Trigger.Bucket, "bucket", "", "bucket whose new objects trigger the function (required)")
	fl.StringVar(&df.fn.Trigger.Prefix, "prefix", "", "only keys with this prefix")
	fl.StringArrayVar(&df.fn.Trigger.Suffixes, "suffix", nil, "only keys with this suffix (repeatable, case-insensitive)")
	fl.StringVar(&df.fn.Output.Bucket, "output-bucket", "", "bucket for outputs (required)")
	fl.StringVar(&df.fn.Output.KeyTemplate, "output-key", "{key}", "output key template; for input a/b/cat.jpg: {key} a/b/cat.jpg, {dir} a/b/, {base} cat (file name without extension), {ext} .jpg, {name} the function's name; must contain {key}, or {dir}{base}{ext}")
	fl.StringArrayVar(&df.params, "param", nil, "parameter k=v passed to the function (repeatable; part of the version)")
	fl.StringArrayVar(&df.env, "env", nil, "environment k=v for process actions (repeatable)")
	fl.DurationVar(&df.timeout, "timeout", registry.DefaultTimeout, "time limit of one run")
	fl.DurationVar(&df.lease, "lease", registry.DefaultLease, "how long a claim holds without renewal; a crashed replica's run is taken over after it")
	fl.DurationVar(&df.fn.Limits.Retention, "retention", 0, "how long a recorded result is reused (0 = until purged); independent of --lease")
	sizeVar(fl, &df.fn.Limits.MemoryMB, "memory", registry.DefaultMemoryMB, 1<<20, 1<<20, "memory limit, such as 256MiB or 1GiB (a bare number is MiB; at most the server's --max-memory)")
	fl.IntVar(&df.fn.MaxAttempts, "max-attempts", registry.DefaultMaxAttempts, "runs of one event before it is dead-lettered")
	fl.BoolVar(&df.fn.NoDedup, "no-dedup", false, "always run: for functions that are not pure")
	fl.BoolVar(&df.fn.Shared, "shared", false, "share results across tenants (only for outputs that reveal nothing tenant-specific)")
	fl.BoolVar(&df.fn.CacheFailures, "cache-failures", false, "record deterministic function errors so the same content does not run again")
	fl.Float64Var(&df.fn.Audit.Rate, "audit-rate", 0, "fraction of hits (0 to 1) that also run the function in the background and compare its output with the recorded one")
	fl.StringVar(&df.onMismatch, "on-mismatch", registry.OnMismatchWarn, "when an audit finds the function nondeterministic: warn (keep reusing results) or disable-dedup (run every event of this version)")
	fl.StringVar(&df.fn.OnInputDelete, "on-input-delete", registry.OnInputDeleteKeep, "when an input is deleted: keep its outputs, or delete the outputs this function wrote for it (and, through downstream functions that also delete, theirs); not part of the version")
	return cmd
}

// placeholderHelp lists the output-key placeholders with what each
// renders, one a line, for fn deploy's help.
func placeholderHelp() string {
	var b strings.Builder
	for _, p := range registry.Placeholders {
		fmt.Fprintf(&b, "  %-7s %-12s %s\n", p.Name, p.Example, p.Meaning)
	}
	return b.String()
}

// printDeployed tells w what a deploy did.
func printDeployed(w io.Writer, resp api.DeployResponse) {
	f := resp.Function
	switch {
	case resp.Previous == "":
		fmt.Fprintf(w, "deployed %s version %s (%s), triggered by %s\n", f.Name, f.Version, f.Runtime, describeTrigger(f))
	case resp.NewVersion:
		fmt.Fprintf(w, "deployed %s version %s (was %s): results of the old version are not reused\n", f.Name, f.Version, resp.Previous)
	default:
		// Trigger, limits or policies may have changed: not the output.
		fmt.Fprintf(w, "updated %s, still version %s (code and params unchanged: recorded results stay valid), triggered by %s\n", f.Name, f.Version, describeTrigger(f))
	}
	if f.Audit.Rate > 0 {
		fmt.Fprintf(w, "auditing %s of hits for determinism (on mismatch: %s)\n", auditRate(f.Audit.Rate), f.Audit.OnMismatch)
	}
	warnNondeterministic(w, f)
}

// auditRate prints an audit rate as a percentage: 0.01 → "1%".
func auditRate(r float64) string {
	return strconv.FormatFloat(r*100, 'f', -1, 64) + "%"
}

// warnNondeterministic tells w, if an audit found f's version
// nondeterministic, what was found and what the policy does about it.
func warnNondeterministic(w io.Writer, f registry.Function) {
	m := f.Nondeterministic
	if m == nil {
		return
	}
	effect := "its results are still reused (--on-mismatch warn)"
	if !f.Deduplicated() {
		effect = "every event runs it, results are not reused (--on-mismatch disable-dedup)"
	}
	fmt.Fprintf(w, "WARNING: %s version %s is NONDETERMINISTIC: at %s an audit of activation %s got output sha256 %s, the recorded output is %s; %s. Deploy a fixed version (new code or params) to start clean.\n",
		f.Name, m.Version, m.At.Local().Format(time.RFC3339), m.Activation, m.AuditDigest, m.RecordedDigest, effect)
}

func keyValues(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s must be key=value, got %q", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

func describeTrigger(f registry.Function) string {
	s := "s3://" + f.Trigger.Bucket + "/" + f.Trigger.Prefix + "*"
	if len(f.Trigger.Suffixes) > 0 {
		s += "{" + strings.Join(f.Trigger.Suffixes, ",") + "}"
	}
	return s + " → s3://" + f.Output.Bucket + "/" + f.Output.KeyTemplate
}

func newFnListCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use: "list", Short: "List functions", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fns, err := cf.client().FunctionInfos(cmd.Context())
			if err != nil {
				return err
			}
			if cf.json {
				return writeJSON(cmd.OutOrStdout(), fns)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tRUNTIME\tTENANT\tTRIGGER\tUPSTREAM\tDOWNSTREAM")
			for _, f := range fns {
				version := f.Version
				if f.Nondeterministic != nil {
					version += " (nondeterministic)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, version, f.Runtime, f.Tenant, describeTrigger(f.Function),
					functionNames(f.Upstream), functionNames(f.Downstream))
			}
			return tw.Flush()
		},
	}
	cf.register(cmd, true)
	return cmd
}

// functionNames is a table cell of upstream or downstream functions:
// comma-separated, "-" for none, cut at tableCellMax.
func functionNames(names []string) string {
	if len(names) == 0 {
		return "-"
	}
	return oneLine(strings.Join(names, ","), tableCellMax)
}

func newFnGetCmd() *cobra.Command {
	var (
		cf  clientFlags
		raw bool
	)
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a function's definition (JSON), its audit settings and whether an audit found it nondeterministic",
		Long: `Show a function's definition as JSON on stdout, its limits as durations ("timeout": "60s";
--raw prints the definition as the API sends it, durations in nanoseconds): "audit" holds its
determinism audit settings (rate, on_mismatch) and "nondeterministic", when present, what an audit
of its current version found (version, at, activation, recorded_digest, audit_digest). A
nondeterministic version is also reported on stderr, in words.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := cf.client().FunctionInfo(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var v any = newFunctionView(f)
			if raw {
				v = f
			}
			if err := writeJSON(cmd.OutOrStdout(), v); err != nil {
				return err
			}
			warnNondeterministic(cmd.ErrOrStderr(), f.Function)
			return nil
		},
	}
	cf.register(cmd, false)
	cmd.Flags().BoolVar(&raw, "raw", false, "print the definition as the API sends it (durations in nanoseconds)")
	return cmd
}

func newFnDeleteCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use: "delete NAME", Short: "Delete a function (its recorded results stay until purged)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.client().DeleteFunction(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		},
	}
	cf.register(cmd, false)
	return cmd
}
