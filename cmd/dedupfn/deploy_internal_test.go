package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/registry"
)

// TestDeployFlags_Request turns fn deploy's flags into the request sent,
// without cobra or a server.
func TestDeployFlags_Request(t *testing.T) {
	wasmFile := filepath.Join(t.TempDir(), "f.wasm")
	if err := os.WriteFile(wasmFile, []byte("\x00asm"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := deployFlags{
		wasmFile: wasmFile, params: []string{"size=128"}, env: []string{"A=1"},
		timeout: time.Minute, lease: 2 * time.Minute, onMismatch: registry.OnMismatchWarn,
	}
	f.fn.Trigger.Bucket, f.fn.Output.Bucket = "in", "out"
	req, err := f.request("thumb")
	if err != nil {
		t.Fatal(err)
	}
	fn := req.Function
	if fn.Name != "thumb" || fn.Runtime != "wasm" || string(req.Code) != "\x00asm" {
		t.Errorf("name %q, runtime %q, code %q: want thumb, wasm and the file's bytes", fn.Name, fn.Runtime, req.Code)
	}
	if fn.Params["size"] != "128" || fn.Config["env.A"] != "1" {
		t.Errorf("params %v, config %v: want size=128 and env.A=1", fn.Params, fn.Config)
	}
	if fn.Limits.Timeout != time.Minute || fn.Limits.Lease != 2*time.Minute || fn.Trigger.Bucket != "in" || fn.Output.Bucket != "out" {
		t.Errorf("limits %+v, trigger %+v, output %+v", fn.Limits, fn.Trigger, fn.Output)
	}
	if fn.Audit.OnMismatch != "" {
		t.Errorf("on_mismatch %q without --audit-rate or --on-mismatch, want none", fn.Audit.OnMismatch)
	}
	f.onMismatchSet, f.onMismatch = true, registry.OnMismatchDisableDedup
	if req, err = f.request("thumb"); err != nil || req.Function.Audit.OnMismatch != registry.OnMismatchDisableDedup {
		t.Errorf("--on-mismatch given: on_mismatch %q, %v", req.Function.Audit.OnMismatch, err)
	}

	ow := deployFlags{owAction: "/ns/act", owAPI: "https://ow.example"}
	if req, err = ow.request("remote"); err != nil {
		t.Fatal(err)
	} else if c := req.Function.Config; req.Function.Runtime != "openwhisk" || c["openwhisk.action"] != "/ns/act" || c["openwhisk.api"] != "https://ow.example" || req.Code != nil {
		t.Errorf("openwhisk: runtime %q, config %v, code %q", req.Function.Runtime, c, req.Code)
	}

	for _, tc := range []struct {
		name string
		f    deployFlags
		want string
	}{
		{"no code", deployFlags{}, "exactly one of"},
		{"two kinds", deployFlags{wasmFile: wasmFile, owAction: "a"}, "exactly one of"},
		{"bad param", deployFlags{wasmFile: wasmFile, params: []string{"size"}}, "--param must be key=value"},
		{"create without api", deployFlags{owAction: "a", execFile: wasmFile, owCreate: true}, "--openwhisk-create needs --openwhisk-api"},
		{"missing file", deployFlags{wasmFile: filepath.Join(t.TempDir(), "none.wasm")}, "read --wasm"},
	} {
		if _, err := tc.f.request("f"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

// Issue 19 item 2: fn deploy --help defines every output-key placeholder
// with what it renders ({base} was never defined, {name} only in a code
// comment), and says what a template must contain.
func TestFnDeployHelp_DocumentsPlaceholders(t *testing.T) {
	cmd := newFnDeployCmd()
	long := cmd.Long
	flag := cmd.Flags().Lookup("output-key").Usage
	for _, want := range []string{
		"{key}   a/b/cat.jpg", "{dir}   a/b/", "{base}  cat", "{ext}   .jpg", "{name}  thumbnail",
		"without the extension", "function's name", "must determine the input key",
	} {
		if !strings.Contains(long, want) {
			t.Errorf("fn deploy --help does not say %q:\n%s", want, long)
		}
	}
	for _, want := range []string{"{base} cat (file name without extension)", "{name} the function's name", "{dir}{base}{ext}"} {
		if !strings.Contains(flag, want) {
			t.Errorf("--output-key help %q does not say %q", flag, want)
		}
	}
}

// Issue 20: --on-input-delete is sent as on_input_delete (keep unless
// given), and fn get shows it.
func TestFnDeploy_OnInputDelete(t *testing.T) {
	if f := deployWith(t); f.OnInputDelete != registry.OnInputDeleteKeep {
		t.Errorf("no flag sent on_input_delete %q, want keep", f.OnInputDelete)
	}
	if f := deployWith(t, "--on-input-delete", "delete"); f.OnInputDelete != registry.OnInputDeleteDelete {
		t.Errorf("--on-input-delete delete sent %q", f.OnInputDelete)
	}
	for stored, want := range map[string]string{"delete": `"on_input_delete": "delete"`, "": `"on_input_delete": "keep"`} {
		f := registry.Function{Tenant: "t", Name: "thumb", Runtime: "wasm", Version: "v1", OnInputDelete: stored}
		out := runCmd(t, newRootCmd(), "fn", "get", "thumb", "--api", fakeAPI(t, map[string]any{"/v1/functions/thumb": f}))
		if !strings.Contains(out, want) {
			t.Errorf("stored %q: fn get lacks %s:\n%s", stored, want, out)
		}
	}
}
