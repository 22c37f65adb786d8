package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// parseSecurity parses args with serve's security and process flags.
func parseSecurity(t *testing.T, args ...string) (securityOptions, processFlags) {
	t.Helper()
	var (
		sec  securityOptions
		proc processFlags
	)
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	sec.register(fs)
	proc.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return sec, proc
}

// TestSizeFlags_AcceptUnits: every size serve and fn deploy take reads
// units, and a bare number keeps the flag's old unit.
func TestSizeFlags_AcceptUnits(t *testing.T) {
	sec, proc := parseSecurity(t, "--max-code", "512KiB", "--max-params", "2MiB", "--max-result", "1.5MiB", "--max-memory", "2GiB")
	if sec.maxCodeBytes != 512<<10 || sec.maxParamsBytes != 2<<20 || sec.maxMemoryMB != 2048 || proc.maxResult != 3<<19 {
		t.Errorf("units: max-code %d, max-params %d, max-memory %d MiB, max-result %d", sec.maxCodeBytes, sec.maxParamsBytes, sec.maxMemoryMB, proc.maxResult)
	}
	// Bare numbers: --max-code and --max-memory in MiB, --max-params in KiB, --max-result bytes.
	sec, proc = parseSecurity(t, "--max-code", "64", "--max-params", "16", "--max-result", "1000", "--max-memory", "512")
	if sec.maxCodeBytes != 64<<20 || sec.maxParamsBytes != 16<<10 || sec.maxMemoryMB != 512 || proc.maxResult != 1000 {
		t.Errorf("bare: max-code %d, max-params %d, max-memory %d MiB, max-result %d", sec.maxCodeBytes, sec.maxParamsBytes, sec.maxMemoryMB, proc.maxResult)
	}
	if sec, _ = parseSecurity(t); sec.maxCodeBytes != 64<<20 || sec.maxParamsBytes != 64<<10 {
		t.Errorf("defaults changed: max-code %d, max-params %d", sec.maxCodeBytes, sec.maxParamsBytes)
	}

	for in, want := range map[string]string{"12MiB": "12MiB", "16GiB": "16GiB", "4096": "4KiB", "1000": "1000B", "0": "0B"} {
		fs := newServeCmd().Flags()
		if err := fs.Parse([]string{"--spool-budget", in}); err != nil {
			t.Fatal(err)
		}
		if got := fs.Lookup("spool-budget").Value.String(); got != want {
			t.Errorf("--spool-budget %s reads as %s, want %s", in, got, want)
		}
	}
	if got := newServeCmd().Flags().Lookup("spool-budget").DefValue; got != "16GiB" {
		t.Errorf("--spool-budget's default shows as %s, want 16GiB", got)
	}

	for _, args := range [][]string{{"--spool-budget", "12MB"}, {"--max-memory", "1.5MiB"}, {"--max-code", "-1"}, {"--spool-budget", "lots"}} {
		err := newServeCmd().Flags().Parse(args)
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: error %v, want one naming the flag", args, err)
		}
	}

	// --inline-limit keeps -1 for "never"; bench --size and
	// --wasm-max-function-bytes read units too.
	for in, want := range map[string]string{"-1": "-1", "256KiB": "256KiB"} {
		fs := newServeCmd().Flags()
		if err := fs.Parse([]string{"--inline-limit", in, "--wasm-max-function-bytes", "1MiB"}); err != nil {
			t.Fatal(err)
		}
		if got := fs.Lookup("inline-limit").Value.String(); got != want {
			t.Errorf("--inline-limit %s reads as %s", in, got)
		}
		if got := fs.Lookup("wasm-max-function-bytes").Value.String(); got != "1MiB" {
			t.Errorf("--wasm-max-function-bytes 1MiB reads as %s", got)
		}
	}
	if err := newBenchCmd().Flags().Parse([]string{"--size", "64KiB"}); err != nil {
		t.Errorf("bench --size 64KiB: %v", err)
	}

	// fn deploy --memory: MiB bare, or a size.
	for in, want := range map[string]string{"256": "256MiB", "1GiB": "1GiB"} {
		fs := newFnDeployCmd().Flags()
		if err := fs.Parse([]string{"--memory", in}); err != nil {
			t.Fatal(err)
		}
		if got := fs.Lookup("memory").Value.String(); got != want {
			t.Errorf("--memory %s reads as %s, want %s", in, got, want)
		}
	}
}

// TestSizeFlags_ConfigFile: serve --config reads sizes with units too.
func TestSizeFlags_ConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "serve.yaml")
	if err := os.WriteFile(file, []byte("spool-budget: 16GiB\nmax-code: 128\nmax-result: 64 KiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := newServeCmd().Flags()
	if err := applyConfigFile(fs, file); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"spool-budget": "16GiB", "max-code": "128MiB", "max-result": "64KiB"} {
		if got := fs.Lookup(name).Value.String(); got != want {
			t.Errorf("config %s reads as %s, want %s", name, got, want)
		}
	}
}
