package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// owGuestKey is the e2e server's key of the OpenWhisk API's admin
// namespace, guest.
const owGuestKey = "b0000000-0000-4000-8000-000000000001:e2e-guest-ow-key-0123456789"

// openwhiskScript drives dedupfn's OpenWhisk API with the official npm
// client, as an OpenWhisk user would. It prints one "RESULT <json>" line
// per step for the test to check, and exits non-zero at the first
// unexpected answer.
const openwhiskScript = `'use strict'
const fs = require('fs')
const assert = require('assert/strict')
const openwhisk = require('openwhisk')
const ow = openwhisk({ apihost: process.env.OW_APIHOST, api_key: process.env.OW_AUTH })
const side = process.env.SIDE
const out = (step, v) => console.log('RESULT ' + JSON.stringify({ step, v }))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const annotation = (a, key) => (a.annotations.find((kv) => kv.key === key) || {}).value

async function main () {
  // wasm: copy.wasm echoes its stdin (the parameters) as its result.
  const code = fs.readFileSync(process.env.COPY_WASM).toString('base64')
  const created = await ow.actions.create({ name: 'copy', action: { exec: { kind: 'wasm', binary: true, code } } })
  assert.equal(created.version, '0.0.1')
  const first = await ow.actions.invoke({ name: 'copy', params: { x: 1 }, blocking: true })
  const second = await ow.actions.invoke({ name: 'copy', params: { x: 1 }, blocking: true })
  const other = await ow.actions.invoke({ name: 'copy', params: { x: 2 }, blocking: true, result: true })
  out('wasm', { first: first.response.result, d1: annotation(first, 'dedupfn').decision, d2: annotation(second, 'dedupfn').decision, other })
  const got = await ow.actions.get({ name: 'copy' })
  out('wasm-get', { kind: got.exec.kind, version: got.version, dedupfn: annotation(got, 'dedupfn') })

  // nodejs and python, each counting its runs in the side file.
  await ow.actions.create({ name: 'js', kind: 'nodejs:20', params: { side },
    action: "function main(p) { require('fs').appendFileSync(p.side, 'js ' + p.v + '\\n'); return { v: p.v, kind: 'js' } }" })
  await ow.actions.create({ name: 'py', kind: 'python:3', params: { side },
    action: 'def main(args):\n    with open(args["side"], "a") as f:\n        f.write("py %s\\n" % args.get("v"))\n    return {"v": args.get("v"), "kind": "python"}\n' })
  const js1 = await ow.actions.invoke({ name: 'js', params: { v: 1 }, blocking: true, result: true })
  await ow.actions.invoke({ name: 'js', params: { v: 1 }, blocking: true, result: true })
  const py1 = await ow.actions.invoke({ name: 'py', params: { v: 1 }, blocking: true, result: true })
  await ow.actions.invoke({ name: 'py', params: { v: 1 }, blocking: true, result: true })
  const many = await Promise.all(Array.from({ length: 20 }, () => ow.actions.invoke({ name: 'js', params: { v: 20 }, blocking: true, result: true })))
  out('host', { js1, py1, many: many.filter((r) => r.v === 20).length })

  // A sequence: copy, then echo (a built-in).
  await ow.actions.create({ name: 'seq', sequence: ['copy', '/whisk.system/utils/echo'] })
  const seq = await ow.actions.invoke({ name: 'seq', params: { s: 'q' }, blocking: true })
  out('sequence', { result: seq.response.result, components: seq.logs.length })

  // A trigger with a rule to js, fired.
  await ow.triggers.create({ name: 'tick' })
  await ow.rules.create({ name: 'tick-js', trigger: 'tick', action: 'js' })
  const fired = await ow.triggers.invoke({ name: 'tick', params: { v: 'fired' } })
  let firedRun = false
  for (let i = 0; i < 100 && !firedRun; i++) {
    await sleep(100)
    firedRun = fs.readFileSync(side, 'utf8').includes('js fired')
  }
  out('trigger', { activationId: fired.activationId, firedRun })

  // An object trigger on the built-in endpoint, with a rule to py.
  await ow.feeds.create({ name: '/whisk.system/dedupfn/objects', trigger: 'objs',
    params: { bucket: 'ow-in', output_bucket: 'ow-out', output_key: 'out/{key}' } })
  await ow.rules.create({ name: 'objs-py', trigger: 'objs', action: 'py' })
  out('feed', { ok: true })

  // The sequence's components were caused by it; then delete the wasm action.
  const comp = await ow.activations.get({ activationId: seq.logs[0] })
  const hit = await ow.activations.get({ activationId: second.activationId })
  await ow.actions.delete({ name: 'copy' })
  const gone = await ow.actions.get({ name: 'copy' }).then(() => 200, (err) => err.statusCode)
  out('after', { causedBySeq: comp.cause === seq.activationId, hit: annotation(hit, 'dedupfn').decision, gone })
}

main().catch((err) => { console.error('openwhisk.js:', err.message || err); process.exit(1) })
`

// TestOpenWhiskAPI drives `dedupfn serve`'s OpenWhisk API with the npm
// client: actions of every kind (wasm, nodejs, python), their
// deduplication counted in the actions' side file, a sequence, a
// trigger with a rule and a fire, and an object trigger on the built-in
// endpoint with a rule to a python action.
func TestOpenWhiskAPI(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		testutil.Missing(t, "node not on PATH")
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testutil.Missing(t, "/usr/bin/python3")
	}
	modules := filepath.Join(testutil.ToolsDir(t), "openwhisk-js", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "openwhisk", "package.json")); err != nil {
		testutil.Missing(t, "npm package openwhisk in "+modules+" (make peers)")
	}
	copyWasm := filepath.Join(t.TempDir(), "copy.wasm")
	if err := testutil.BuildAll(testutil.Binary{Out: copyWasm, Pkg: "./examples/copy", Wasm: true}); err != nil {
		t.Fatal(err)
	}
	s := harness.NewServer(t, t.TempDir())
	s.Env = []string{"DEDUPFN_OPENWHISK_KEYS=guest=" + owGuestKey}
	s.Start("--create-bucket", "ow-in", "--create-bucket", "ow-out")

	dir := t.TempDir()
	script := filepath.Join(dir, "openwhisk.js")
	if err := os.WriteFile(script, []byte(openwhiskScript), 0o644); err != nil {
		t.Fatal(err)
	}
	side := filepath.Join(dir, "side.txt")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "OW_APIHOST=http://"+s.API, "OW_AUTH="+owGuestKey,
		"COPY_WASM="+copyWasm, "SIDE="+side)
	outb, err := cmd.CombinedOutput()
	t.Logf("openwhisk.js:\n%s", outb)
	if err != nil {
		t.Fatalf("openwhisk.js: %v", err)
	}
	steps := map[string]json.RawMessage{}
	sc := bufio.NewScanner(bytes.NewReader(outb))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "RESULT ")
		if !ok {
			continue
		}
		var st struct {
			Step string          `json:"step"`
			V    json.RawMessage `json:"v"`
		}
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			t.Fatal(err)
		}
		steps[st.Step] = st.V
	}
	wantJSON := func(step, want string) {
		t.Helper()
		if got := string(steps[step]); got != want {
			t.Errorf("%s = %s, want %s", step, got, want)
		}
	}
	wantJSON("wasm", `{"first":{"x":1},"d1":"miss","d2":"hit","other":{"x":2}}`)
	var get struct {
		Kind, Version string
		Dedupfn       struct {
			Version string `json:"version"`
			Dedup   bool   `json:"dedup"`
		}
	}
	json.Unmarshal(steps["wasm-get"], &get)
	if get.Kind != "wasm" || get.Version != "0.0.1" || get.Dedupfn.Version == "" || !get.Dedupfn.Dedup {
		t.Errorf("wasm-get = %s", steps["wasm-get"])
	}
	wantJSON("host", `{"js1":{"v":1,"kind":"js"},"py1":{"v":1,"kind":"python"},"many":20}`)
	wantJSON("sequence", `{"result":{"s":"q"},"components":2}`)
	wantJSON("after", `{"causedBySeq":true,"hit":"hit","gone":404}`)
	var trig struct {
		ActivationID string `json:"activationId"`
		FiredRun     bool   `json:"firedRun"`
	}
	json.Unmarshal(steps["trigger"], &trig)
	if len(trig.ActivationID) != 32 || !trig.FiredRun {
		t.Errorf("trigger = %s", steps["trigger"])
	}

	// Identical parameters ran once each; the 20 concurrent ones once.
	runs := map[string]int{}
	b, _ := os.ReadFile(side)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		runs[l]++
	}
	for _, line := range []string{"js 1", "py 1", "js 20", "js fired"} {
		if runs[line] != 1 {
			t.Errorf("%q ran %d times, want 1 (side file:\n%s)", line, runs[line], b)
		}
	}

	// The object trigger's rule made py a bucket function on ow-in.
	s.PutText("ow-in", "docs/a.txt", "hello object")
	var outKey string
	testutil.Eventually(t, 30*time.Second, "the python action's output in ow-out", func() bool {
		for o := range s.MinIO().ListObjects(t.Context(), "ow-out", minio.ListObjectsOptions{Recursive: true}) {
			if strings.HasPrefix(o.Key, "out/docs/a.txt") {
				outKey = o.Key
				return true
			}
		}
		return false
	})
	if got := string(s.ReadObject("ow-out", outKey)); !strings.Contains(got, `"python"`) {
		t.Errorf("output %s = %s, want the python action's result", outKey, got)
	}
	if runs := strings.Count(string(mustRead(t, side)), "py "); runs != 2 {
		t.Errorf("py ran %d times in all, want 2 (one direct, one on the object)", runs)
	}
}

// mustRead reads a file or fails the test.
func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
