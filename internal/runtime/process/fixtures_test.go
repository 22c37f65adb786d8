package process_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// Actions used by the tests. None relies on PATH (the runtime passes
// none): shebangs and commands are absolute.

// bashUpper upper-cases the inline body; it reports its pid and logs one
// line per activation without a sentinel.
const bashUpper = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do
  body=""
  if [[ $line =~ \"body\":\"([A-Za-z0-9+/=]*)\" ]]; then body=${BASH_REMATCH[1]}; fi
  out=$(printf '%s' "$body" | /usr/bin/base64 -d | /usr/bin/tr '[:lower:]' '[:upper:]' | /usr/bin/base64 -w0)
  echo "upper: pid $$"
  echo "{\"body\":\"$out\",\"pid\":$$,\"kind\":\"bash\"}" >&3
done
`

// pyUpper is bashUpper in python3.
const pyUpper = `#!/usr/bin/python3
import base64, json, os, sys
out = os.fdopen(3, "w")
out.write('{"ok":true}\n'); out.flush()
for line in sys.stdin:
    msg = json.loads(line)
    data = base64.b64decode(msg["value"].get("body", ""))
    print("upper: pid", os.getpid(), flush=True)
    out.write(json.dumps({"body": base64.b64encode(data.upper()).decode(), "pid": os.getpid(), "kind": "python"}) + "\n")
    out.flush()
`

// bashFail logs boom on stderr and returns an error result.
const bashFail = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do
  echo boom >&2
  echo '{"error":"boom"}' >&3
done
`

// bashHang reads its activation and never answers; its sleep is a child
// in the same process group.
const bashHang = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do
  /usr/bin/sleep infinity
done
`

// bashHog allocates without bound once an activation arrives.
const bashHog = `#!/bin/bash
echo '{"ok":true}' >&3
while IFS= read -r line; do
  s=x
  while :; do s=$s$s; done
done
`

// pyParam answers with the "greeting" param followed by the input.
const pyParam = `#!/usr/bin/python3
import base64, json, os, sys
out = os.fdopen(3, "w")
out.write('{"ok":true}\n'); out.flush()
for line in sys.stdin:
    v = json.loads(line)["value"]
    data = v.get("greeting", "").encode() + base64.b64decode(v.get("body", ""))
    out.write(json.dumps({"body": base64.b64encode(data).decode()}) + "\n")
    out.flush()
`

// fn returns a function running code.
func fn(tb testing.TB, name string, code []byte) runtime.Function {
	tb.Helper()
	sum := sha256.Sum256(code)
	d := hex.EncodeToString(sum[:])
	return runtime.Function{Tenant: "t1", Name: name, Version: d[:12], CodeDigest: d, Code: code}
}

// needPython skips (or fails under CI) without /usr/bin/python3.
func needPython(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testutil.Missing(tb, "/usr/bin/python3")
	}
}

// buildGoAction compiles testdata/goaction as a static binary.
func buildGoAction(tb testing.TB) []byte {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "goaction")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/goaction")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build goaction: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// zipExec returns a zip holding exec (mode 0755) and a data file.
func zipExec(tb testing.TB, exec []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "exec", Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(exec); err != nil {
		tb.Fatal(err)
	}
	w, err = zw.Create("lib/data.txt")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write([]byte("data")); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
