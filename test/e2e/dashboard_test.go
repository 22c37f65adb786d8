package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// The dashboard tests drive internal/api/dashboard.html in a real headless
// Chromium (Debian's chromium package, installed by
// scripts/peers/chromium.sh) through the DevTools protocol.
const (
	// viewW and viewH are the browser's viewport: the size of
	// docs/dashboard.png.
	viewW, viewH = 1280, 900
	// pageWait bounds each wait for the page to show something.
	pageWait = 30 * time.Second
	// dashboardCSP is the Content-Security-Policy api.go serves the page
	// with; TestDashboardContract serves the page under the same one.
	dashboardCSP = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'"
)

// chromiumPath finds the browser: $DEDUPFN_CHROMIUM, else chromium or
// chromium-browser on PATH. Missing (skip, or fail under CI=true) if none.
func chromiumPath(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("DEDUPFN_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			testutil.Missing(tb, "DEDUPFN_CHROMIUM="+p+" does not exist")
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testutil.Missing(tb, "no chromium or chromium-browser on PATH (scripts/peers/chromium.sh installs it)")
	return ""
}

// browser is one headless Chromium with one tab.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu         sync.Mutex
	exceptions []string     // uncaught JavaScript exceptions of the page
	out        bytes.Buffer // the browser's stdout and stderr
}

// newBrowser starts headless Chromium with a viewW×viewH viewport; it is
// stopped when the test ends.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromiumPath(t)
	b := &browser{t: t}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.DisableGPU,
		chromedp.WindowSize(viewW, viewH),
		chromedp.CombinedOutput(harness.LockedWriter{Mu: &b.mu, B: &b.out}),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	var cancelTab context.CancelFunc
	b.ctx, cancelTab = chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // stops the browser and waits for it
		cancel()
		if t.Failed() {
			b.mu.Lock()
			t.Logf("chromium output:\n%s", b.out.String())
			b.mu.Unlock()
		}
	})
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(viewW, viewH)); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	err := chromedp.Listen(b.ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok && e.ExceptionDetails != nil {
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			b.mu.Lock()
			b.exceptions = append(b.exceptions, msg)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// do runs actions, failing the test on an error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// js evaluates a JavaScript expression in the page and decodes its value.
func js[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// wait polls a JavaScript predicate until it is true.
func (b *browser) wait(what, predicate string) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(pageWait)))
	if err != nil {
		b.t.Fatalf("waiting for %s (%s): %v\npage text:\n%s", what, predicate, err, b.text())
	}
}

// text is the page's visible text, for failure messages.
func (b *browser) text() string {
	v, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	return v
}

// checkClean fails on uncaught exceptions and CSP violations so far.
func (b *browser) checkClean() {
	b.t.Helper()
	b.mu.Lock()
	exc := slices.Clone(b.exceptions)
	b.mu.Unlock()
	if len(exc) > 0 {
		b.t.Errorf("the page threw: %q", exc)
	}
	if n := js[int](b, `window.cspViolations`); n != 0 {
		b.t.Errorf("%d Content-Security-Policy violations: the page must run under the CSP it is served with", n)
	}
}

// screenshot saves the viewport as name in a temp dir (and in
// $DEDUPFN_SCREENSHOT_DIR when set), and as docs/dashboard.png too when
// update is set.
func (b *browser) screenshot(name string, update bool) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(b.t.TempDir(), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s (%d bytes)", p, len(png))
	if dir := os.Getenv("DEDUPFN_SCREENSHOT_DIR"); dir != "" { // to keep them, e.g. as CI artifacts
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	if update {
		docs := filepath.Join(testutil.RepoRoot(b.t), "docs", "dashboard.png")
		if err := os.WriteFile(docs, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		b.t.Logf("updated %s", docs)
	}
}

// login answers the page's token prompt.
func (b *browser) login(token string) {
	b.t.Helper()
	b.wait("the token prompt", `!document.getElementById("login").hidden && document.getElementById("app").hidden`)
	b.do("enter the token",
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("login-submit")))
}

// kpiCard is one tenant total as the page shows it.
type kpiCard struct {
	Value string `json:"value"` // data-value: the raw number
	Text  string `json:"text"`  // what is shown
}

func (b *browser) kpis() map[string]kpiCard {
	b.t.Helper()
	return js[map[string]kpiCard](b, `Object.fromEntries([...document.querySelectorAll("#totals .kpi")].map(k =>
		[k.dataset.stat, {value: k.dataset.value || "", text: k.querySelector(".v").textContent}]))`)
}

// fnRow is one row of the functions table: data-value of each numeric
// column, and the flags shown.
type fnRow struct {
	Tenant string            `json:"tenant"`
	Values map[string]string `json:"values"`
	Flags  []string          `json:"flags"`
}

func (b *browser) functionRows() map[string]fnRow {
	b.t.Helper()
	return js[map[string]fnRow](b, `Object.fromEntries([...document.querySelectorAll("#fns tbody tr")].map(tr => [tr.dataset.fn, {
		tenant: tr.dataset.tenant,
		values: Object.fromEntries([...tr.querySelectorAll("td[data-col]")].map(td => [td.dataset.col, td.dataset.value || ""])),
		flags: [...tr.querySelectorAll("[data-flag]")].map(f => f.dataset.flag)}]))`)
}

// actRow is one row of the activations table.
type actRow struct {
	ID       string `json:"id"`
	Decision string `json:"decision"`
	Fn       string `json:"fn"`
	Object   string `json:"object"`
}

func (b *browser) activationRows() []actRow {
	b.t.Helper()
	return js[[]actRow](b, `[...document.querySelectorAll("#acts tbody tr")].map(tr =>
		({id: tr.dataset.id, decision: tr.dataset.decision, fn: tr.dataset.fn, object: tr.children[2].textContent}))`)
}

// filter sets a filter control as a user would and waits for the table
// to show exactly want (ids, newest first).
func (b *browser) filter(id, value string, want []string) {
	b.t.Helper()
	set := fmt.Sprintf(`(() => { const e = document.getElementById(%q); if (e.type === "checkbox") e.checked = %q === "1"; else e.value = %q;
		e.dispatchEvent(new Event("change")); return true })()`, id, value, value)
	js[bool](b, set)
	wantJSON, _ := json.Marshal(want)
	b.wait(fmt.Sprintf("activations filtered by %s=%q: %v", id, value, want),
		`JSON.stringify([...document.querySelectorAll("#acts tbody tr")].map(tr => tr.dataset.id)) === `+strconv.Quote(string(wantJSON)))
}

// detail is the activation detail view as shown.
type detail struct {
	State, ID, Decision, Function, Version, Tenant, Fingerprint, Key string
	Attempts, Output, Error, Class, Logs, Hash                       string
	Dead                                                             bool
	Timings                                                          map[string]string // stage → data-ms
}

func (b *browser) detail() detail {
	b.t.Helper()
	return js[detail](b, `(() => { const t = id => document.getElementById(id).textContent; return {
		State: document.getElementById("detail").dataset.state, ID: t("d-id"), Decision: t("d-decision"),
		Function: t("d-function"), Version: t("d-version"), Tenant: t("d-tenant"), Fingerprint: t("d-fingerprint"), Key: t("d-key"),
		Attempts: t("d-attempts"), Output: t("d-output"), Error: t("d-error"), Class: t("d-class"), Logs: t("d-logs"),
		Hash: location.hash, Dead: !document.getElementById("d-dead").hidden,
		Timings: Object.fromEntries([...document.querySelectorAll("#d-timings [data-ms]")].map(e => [e.dataset.stage, e.dataset.ms]))} })()`)
}

// panelState is a panel's data-state and note.
func (b *browser) panelState(name string) (state, note string) {
	b.t.Helper()
	v := js[[]string](b, fmt.Sprintf(`[document.getElementById("panel-%s").dataset.state, (document.getElementById("%s-note") || {}).textContent || ""]`, name, name))
	return v[0], v[1]
}

// checkUnavailable asserts a panel says its endpoint is not available.
func (b *browser) checkUnavailable(panel, endpoint string, status int) {
	b.t.Helper()
	b.wait(panel+" panel saying not available", fmt.Sprintf(`["unavailable", "partial"].includes(document.getElementById("panel-%s").dataset.state)`, panel))
	if _, note := b.panelState(panel); !strings.Contains(note, "not available") {
		b.t.Errorf("%s answers %d: panel %s says %q, want it to say not available", endpoint, status, panel, note)
	}
	b.t.Logf("%s answers %d: panel %s shows %q", endpoint, status, panel, func() string { _, n := b.panelState(panel); return n }())
}

// apiGet calls the API as the page does and decodes a 200 answer into v;
// it returns the status.
func apiGet(tb testing.TB, base, token, path string, v any) int {
	tb.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			tb.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	return resp.StatusCode
}

// num formats a number as the page's data-value attributes do (JavaScript's
// String(number)), for comparison.
func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// stampSource is a function that is not pure: its output is the time it ran.
const stampSource = `package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	io.Copy(io.Discard, os.Stdin)
	fmt.Println("stamped at", time.Now().UnixNano())
}
`

// buildStamp builds stampSource to WebAssembly and returns the module's path.
func buildStamp(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, text := range map[string]string{"go.mod": "module stamp\n\ngo 1.24\n", "main.go": stampSource} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	out := filepath.Join(dir, "stamp.wasm")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build the stamp function: %v\n%s", err, b)
	}
	return out
}

// TestDashboard drives the dashboard of a real `dedupfn serve` in headless
// Chromium: uploads with duplicates and a failing object, the token
// prompt, the totals and per-function numbers against what the uploads
// imply, the activations table and its filters, the detail view, a dead
// letter retried from the page, and the panels of endpoints that are not
// there yet saying so. It keeps a screenshot; DEDUPFN_UPDATE_SCREENSHOT=1
// also writes it to docs/dashboard.png.
func TestDashboard(t *testing.T) {
	t.Parallel()
	b := newBrowser(t) // first: without Chromium there is nothing to test
	const token = "dashboard-e2e-admin-token-0123"
	stamp := buildStamp(t)
	s := harness.NewServer(t, t.TempDir())
	s.Env = []string{"DEDUPFN_API_TOKEN=" + token} // the server requires it; the CLI sends it
	s.Start("--create-bucket", "images", "--create-bucket", "thumbnails",
		"--create-bucket", "docs", "--create-bucket", "archive", "--create-bucket", "logs", "--create-bucket", "stamped")
	base := "http://" + s.API
	deployThumbnail(s)
	s.CLI("fn", "deploy", "archive", "--wasm", harness.Slowcopy, "--bucket", "docs", "--output-bucket", "archive", "--param", "ms=40")
	// Every hit of stamp is audited, and the audit finds it is not pure.
	s.CLI("fn", "deploy", "stamp", "--wasm", stamp, "--bucket", "logs", "--output-bucket", "stamped", "--audit-rate", "1")

	cat, err := os.ReadFile("../../examples/thumbnail/testdata/cat.jpg")
	if err != nil {
		t.Fatal(err)
	}
	dog, err := os.ReadFile("../../examples/thumbnail/testdata/dog.png")
	if err != nil {
		t.Fatal(err)
	}
	// An object key is written by the uploader: the page must show it as
	// text, never run it.
	const xssKey = `notes/<img src=x onerror="window.xss=1">.txt`
	uploads := []struct {
		bucket, key string
		body        []byte
	}{
		{"images", "a/cat.jpg", cat},
		{"images", "b/cat-copy.jpg", cat},
		{"images", "c/dog.png", dog},
		{"images", "d/cat-again.jpg", cat},
		{"images", "e/dog-copy.png", dog},
		{"images", "f/cat-3.jpg", cat},
		{"images", "broken/not-an-image.jpg", []byte("this is not a JPEG")},
		{"docs", "notes/a.txt", []byte("hello")},
		{"docs", "notes/b.txt", []byte("hello")},
		{"docs", xssKey, []byte("world")},
		{"logs", "x.log", []byte("same")},
		{"logs", "y.log", []byte("same")},
	}
	// What the uploads imply, per function: one run per distinct content,
	// every other valid upload a hit, the broken image one error and one
	// dead letter (a function error is not retried).
	type totals struct{ events, runs, hits, errors, deadLetters int64 }
	want := map[string]totals{
		"thumbnail": {events: 7, runs: 2, hits: 4, errors: 1, deadLetters: 1},
		"archive":   {events: 3, runs: 2, hits: 1},
		"stamp":     {events: 2, runs: 1, hits: 1},
	}
	var sum totals
	for _, w := range want {
		sum.events += w.events
		sum.runs += w.runs
		sum.hits += w.hits
		sum.errors += w.errors
		sum.deadLetters += w.deadLetters
	}
	mc := s.MinIO()
	for i, u := range uploads {
		if _, err := mc.PutObject(t.Context(), u.bucket, u.key, bytes.NewReader(u.body), int64(len(u.body)), minio.PutObjectOptions{}); err != nil {
			t.Fatalf("upload %s/%s: %v", u.bucket, u.key, err)
		}
		// One at a time, so that each duplicate is a plain hit (not a wait).
		s.WaitEvents(int64(i+1), time.Minute)
	}
	var st activation.Stats
	if apiGet(t, base, token, "/v1/stats", &st) != 200 {
		t.Fatal("GET /v1/stats failed")
	}
	if st.Events != sum.events || st.Runs != sum.runs || st.Hits != sum.hits || st.Errors != sum.errors || st.DeadLetters != sum.deadLetters {
		t.Fatalf("API stats %+v, want %+v", st, sum)
	}
	var recs []activation.Record
	if apiGet(t, base, token, "/v1/activations?limit=100", &recs) != 200 || len(recs) != len(uploads) {
		t.Fatalf("GET /v1/activations: %d records, want %d", len(recs), len(uploads))
	}
	byKey := map[string]activation.Record{}
	for _, r := range recs {
		byKey[r.Event.Key] = r
	}
	firstRun, failed, stampHit := byKey["a/cat.jpg"], byKey["broken/not-an-image.jpg"], byKey["y.log"]
	if firstRun.Decision != activation.Miss || failed.Decision != activation.Error || !failed.DeadLetter || stampHit.Decision != activation.Hit {
		t.Fatalf("a/cat.jpg %s, broken image %s (dead letter %v), y.log %s: want miss, a dead-lettered error, hit",
			firstRun.Decision, failed.Decision, failed.DeadLetter, stampHit.Decision)
	}
	// The audit of stamp's hit runs in the background; its mark shows in
	// the function's definition.
	type fnDef struct {
		Name             string `json:"name"`
		Nondeterministic *struct {
			Activation string `json:"activation"`
		} `json:"nondeterministic"`
	}
	var fns []fnDef
	testutil.Eventually(t, time.Minute, "stamp marked nondeterministic", func() bool {
		fns = nil
		apiGet(t, base, token, "/v1/functions", &fns)
		return slices.ContainsFunc(fns, func(f fnDef) bool { return f.Name == "stamp" && f.Nondeterministic != nil })
	})

	// The page needs no token; the API does: a wrong token is refused and
	// the prompt stays, the right one shows the dashboard.
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != dashboardCSP {
		t.Errorf("GET / without a token: %s, CSP %q; want 200 and %q (TestDashboardContract serves the page with dashboardCSP: keep them equal)",
			resp.Status, resp.Header.Get("Content-Security-Policy"), dashboardCSP)
	}
	b.do("load the dashboard", chromedp.Navigate(base+"/"))
	b.login("wrong-token-wrong-token")
	b.wait("the wrong token refused", `document.getElementById("login-msg").textContent.includes("refused")`)
	b.login(token)
	b.wait("the dashboard", `!document.getElementById("app").hidden && Number(document.body.dataset.refreshes) >= 1`)
	if got := js[string](b, `sessionStorage.getItem("dedupfn-token")`); got != token {
		t.Errorf("sessionStorage token %q, want the token entered", got)
	}
	if href := js[string](b, `location.href`); strings.Contains(href, token) {
		t.Errorf("the token is in the URL %s", href)
	}

	// Tenant totals: what the uploads imply, and what /v1/stats says.
	b.wait("every event in the totals", fmt.Sprintf(`document.querySelector('.kpi[data-stat="events"]').dataset.value === "%d"`, sum.events))
	k := b.kpis()
	for stat, want := range map[string]int64{"events": sum.events, "runs": sum.runs, "hits": sum.hits, "errors": sum.errors, "dead_letters": sum.deadLetters} {
		if w := strconv.FormatInt(want, 10); k[stat].Value != w || k[stat].Text != w {
			t.Errorf("total %s shows %q (data-value %q), want %s", stat, k[stat].Text, k[stat].Value, w)
		}
	}
	if w := fmt.Sprintf("%.1f%%", 100*float64(sum.hits)/float64(sum.hits+sum.runs)); k["hit_rate"].Text != w {
		t.Errorf("hit rate shows %q, want %s", k["hit_rate"].Text, w)
	}
	if k["function_ms"].Value != num(st.FunctionMS) || k["saved_ms"].Value != num(st.SavedMS) || st.SavedMS <= 0 {
		t.Errorf("function time %q, time saved %q; API says %v and %v (want saved > 0)", k["function_ms"].Value, k["saved_ms"].Value, st.FunctionMS, st.SavedMS)
	}

	// Per function: the numbers the uploads imply, where the API serves them.
	var fstats []struct {
		activation.FunctionStats
		HitRate float64 `json:"hit_rate"`
	}
	fstatsStatus := apiGet(t, base, token, "/v1/stats/functions", &fstats)
	t.Logf("GET /v1/stats/functions: %d", fstatsStatus)
	rows := b.functionRows()
	for _, name := range []string{"thumbnail", "archive"} {
		if _, ok := rows[name]; !ok {
			t.Errorf("functions table lacks %s: %v", name, rows)
		}
	}
	if fstatsStatus == 200 {
		b.wait("per-function totals", `document.getElementById("panel-fns").dataset.state === "ok"`)
		rows = b.functionRows()
		for _, f := range fstats {
			w, ok := want[f.Function]
			if !ok {
				t.Errorf("/v1/stats/functions lists %s, not deployed here", f.Function)
				continue
			}
			got := rows[f.Function].Values
			for col, v := range map[string]int64{"events": w.events, "runs": w.runs, "hits": w.hits, "errors": w.errors, "dead_letters": w.deadLetters} {
				if got[col] != strconv.FormatInt(v, 10) {
					t.Errorf("%s %s shows %q, want %d", f.Function, col, got[col], v)
				}
			}
			if wantRate := float64(w.hits) / float64(w.hits+w.runs); got["hit_rate"] != num(f.HitRate) || math.Abs(f.HitRate-wantRate) > 1e-9 {
				t.Errorf("%s hit rate shows %q, API %v, want %v", f.Function, got["hit_rate"], f.HitRate, wantRate)
			}
			if got["function_ms"] != num(f.FunctionMS) || got["saved_ms"] != num(f.SavedMS) {
				t.Errorf("%s function time %q, saved %q; API %v, %v", f.Function, got["function_ms"], got["saved_ms"], f.FunctionMS, f.SavedMS)
			}
		}
		if len(fstats) != len(want) {
			t.Errorf("/v1/stats/functions lists %d functions, want %d", len(fstats), len(want))
		}
	} else {
		b.checkUnavailable("fns", "GET /v1/stats/functions", fstatsStatus)
	}
	// The nondeterministic flag shows exactly where /v1/functions marks one,
	// and links to the hit the audit contradicted.
	b.wait("the nondeterministic flag", `document.querySelector('#fns tr[data-fn="stamp"] [data-flag="nondeterministic"]') !== null`)
	rows = b.functionRows()
	for _, f := range fns {
		if flagged := slices.Contains(rows[f.Name].Flags, "nondeterministic"); flagged != (f.Nondeterministic != nil) {
			t.Errorf("%s: nondeterministic flag shown %v, API marks it %v", f.Name, flagged, f.Nondeterministic != nil)
		}
		if f.Name == "stamp" && f.Nondeterministic != nil && f.Nondeterministic.Activation != stampHit.ID {
			t.Errorf("stamp marked by activation %s, want its hit %s", f.Nondeterministic.Activation, stampHit.ID)
		}
	}
	if got := js[string](b, `document.querySelector('#fns tr[data-fn="stamp"] [data-flag="nondeterministic"]').getAttribute("href")`); got != "#/activation/"+stampHit.ID {
		t.Errorf("nondeterministic flag links to %q, want the audited hit %s", got, stampHit.ID)
	}
	if !slices.Contains(rows["stamp"].Flags, "audit") {
		t.Errorf("stamp's flags %v lack its audit rate", rows["stamp"].Flags)
	}

	// Runs vs hits per minute, where the API serves the series.
	var series struct {
		Minutes []struct{ Runs, Hits, Errors int64 } `json:"minutes"`
	}
	status := apiGet(t, base, token, "/v1/series?minutes=60", &series)
	t.Logf("GET /v1/series: %d", status)
	if status == 200 {
		var runs, hits int64
		for _, m := range series.Minutes {
			runs += m.Runs
			hits += m.Hits
		}
		if len(series.Minutes) != 60 || runs != sum.runs || hits != sum.hits {
			t.Errorf("/v1/series: %d minutes, %d runs, %d hits; want 60, %d, %d", len(series.Minutes), runs, hits, sum.runs, sum.hits)
		}
		b.wait("the chart", `document.querySelector("#chart svg[data-points]") !== null && document.getElementById("panel-series").dataset.state === "ok"`)
		got := js[[]string](b, `(s => [s.dataset.points, s.dataset.runs, s.dataset.hits])(document.querySelector("#chart svg"))`)
		if want := []string{strconv.Itoa(len(series.Minutes)), strconv.FormatInt(runs, 10), strconv.FormatInt(hits, 10)}; !slices.Equal(got, want) {
			t.Errorf("chart shows points, runs, hits %v, want %v", got, want)
		}
	} else {
		b.checkUnavailable("series", "GET /v1/series", status)
	}

	// Backfills, where the API serves them.
	var bfs []json.RawMessage
	bfStatus := apiGet(t, base, token, "/v1/backfills", &bfs)
	t.Logf("GET /v1/backfills: %d", bfStatus)
	if bfStatus == 200 {
		b.wait("the backfills panel", `document.getElementById("panel-backfills").dataset.state === "ok"`)
		if n := js[int](b, `document.querySelectorAll("#backfills tbody tr").length`); n != min(len(bfs), 5) {
			t.Errorf("backfills panel shows %d rows, API lists %d", n, len(bfs))
		}
	} else {
		b.checkUnavailable("backfills", "GET /v1/backfills", bfStatus)
	}

	// Dead letters: the broken image, with a retry button.
	b.wait("the dead letter", fmt.Sprintf(`document.querySelector('#dlq tbody tr[data-id=%q] button[data-retry]') !== null`, failed.ID))

	// Recent activations: every record, as the API lists them.
	b.wait("every activation", fmt.Sprintf(`document.querySelectorAll("#acts tbody tr").length === %d`, len(recs)))
	acts := b.activationRows()
	for i, r := range recs {
		a := acts[i]
		if a.ID != r.ID || a.Decision != string(r.Decision) || a.Fn != r.Function || a.Object != r.Event.Bucket+"/"+r.Event.Key {
			t.Errorf("activation row %d = %+v, want %s %s %s %s/%s", i, a, r.ID, r.Decision, r.Function, r.Event.Bucket, r.Event.Key)
		}
	}
	if js[bool](b, `window.xss === 1 || document.querySelector("#app img, #acts img") !== null`) {
		t.Error("an object key was rendered as HTML")
	}
	if !strings.Contains(b.text(), "docs/"+xssKey) {
		t.Error("the object key with markup is not shown as text")
	}
	// Filters: errors only, a decision, a function; the table shows what
	// the API lists for the same filter.
	ids := func(keep func(activation.Record) bool) []string {
		var out []string
		for _, r := range recs {
			if keep(r) {
				out = append(out, r.ID)
			}
		}
		return out
	}
	b.filter("f-errors", "1", []string{failed.ID})
	b.filter("f-errors", "0", ids(func(activation.Record) bool { return true }))
	hitIDs := ids(func(r activation.Record) bool { return r.Decision == activation.Hit })
	if len(hitIDs) == 0 {
		t.Fatal("no plain hits among the activations")
	}
	b.filter("f-decision", "hit", hitIDs)
	b.filter("f-decision", "miss", ids(func(r activation.Record) bool { return r.Decision == activation.Miss }))
	b.filter("f-decision", "", ids(func(activation.Record) bool { return true }))
	b.filter("f-fn", "archive", ids(func(r activation.Record) bool { return r.Function == "archive" }))
	b.filter("f-fn", "", ids(func(activation.Record) bool { return true }))

	// Detail view: click the first run of the cat picture.
	b.do("click an activation", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#acts tbody tr[data-id=%q] a`, firstRun.ID))))
	b.wait("the activation's detail", `document.getElementById("detail").dataset.state === "ok"`)
	var rec activation.Record
	if apiGet(t, base, token, "/v1/activations/"+firstRun.ID, &rec) != 200 {
		t.Fatal("GET /v1/activations/ID failed")
	}
	d := b.detail()
	wantOut := "s3://" + rec.Output.Bucket + "/" + rec.Output.Key
	if d.ID != rec.ID || d.Hash != "#/activation/"+rec.ID || d.Decision != "miss" || d.Function != "thumbnail" ||
		d.Version != rec.Version || d.Tenant != rec.Tenant || d.Fingerprint != rec.Fingerprint || d.Key != rec.Key ||
		d.Attempts != strconv.Itoa(rec.Attempts) || !strings.HasPrefix(d.Output, wantOut) || d.Dead {
		t.Errorf("detail view %+v\ndoes not show activation %+v", d, rec)
	}
	if rec.Fingerprint == "" || rec.Key == "" {
		t.Errorf("activation %s has no fingerprint or dedup key: %+v", rec.ID, rec)
	}
	// A short id, as the tables show (issue 19 item 5), opens the same
	// record, and the URL then names the full id; a too short one says why.
	b.do("close", chromedp.Click(chromedp.ID("d-close")))
	js[string](b, `location.hash = "#/activation/`+rec.ID[:12]+`"`)
	b.wait("the short id's detail", `document.getElementById("detail").dataset.state === "ok" && document.getElementById("detail").dataset.id === "`+rec.ID+`"`)
	if h := js[string](b, `location.hash`); h != "#/activation/"+rec.ID {
		t.Errorf("after opening a short id the URL is %s, want #/activation/%s", h, rec.ID)
	}
	js[string](b, `location.hash = "#/activation/`+rec.ID[:5]+`"`)
	b.wait("the too short id's note", `document.getElementById("detail").dataset.state === "error" && document.getElementById("d-note").textContent.includes("at least 8 characters")`)
	js[string](b, `location.hash = "#/activation/`+rec.ID+`"`)
	b.wait("the activation's detail again", `document.getElementById("detail").dataset.state === "ok"`)
	tm := rec.Timings
	for stage, v := range map[string]float64{"queue": tm.QueueMS, "fetch_hash": tm.FetchMS, "lookup": tm.LookupMS,
		"invoke": tm.InvokeMS, "store": tm.StoreMS, "total": tm.TotalMS} {
		if d.Timings[stage] != num(v) {
			t.Errorf("detail timing %s = %q, want %v", stage, d.Timings[stage], v)
		}
	}
	if tm.InvokeMS <= 0 || tm.TotalMS <= 0 {
		t.Errorf("a run with invoke %v ms, total %v ms", tm.InvokeMS, tm.TotalMS)
	}
	b.screenshot("dashboard-detail.png", false)
	b.do("close the detail", chromedp.Click(chromedp.ID("d-close")))
	b.wait("the detail closed", `document.getElementById("detail").hidden && location.hash === ""`)

	// The dead letter's detail, opened from the dead letters panel: error,
	// class and the function's stderr.
	b.do("open the dead letter", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#dlq tbody tr[data-id=%q] a`, failed.ID))))
	b.wait("the dead letter's detail", fmt.Sprintf(`document.getElementById("detail").dataset.id === %q && document.getElementById("detail").dataset.state === "ok"`, failed.ID))
	d = b.detail()
	if d.Decision != "error" || !d.Dead || d.Error != failed.Error || d.Class != failed.ErrorClass ||
		failed.Logs == "" || !strings.Contains(d.Logs, strings.TrimSpace(failed.Logs)) || d.Output != "—" {
		t.Errorf("dead letter detail %+v\ndoes not show %+v", d, failed)
	}
	b.do("close the detail with Escape", chromedp.KeyEvent(kb.Escape))
	b.wait("the detail closed", `document.getElementById("detail").hidden && location.hash === ""`)

	// Retry the dead letter from the page: a new activation that retries it.
	b.do("retry the dead letter", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#dlq button[data-retry=%q]`, failed.ID))))
	b.wait("the retry's answer", `document.getElementById("dlq-msg").dataset.state === "ok"`)
	retryID := js[string](b, `document.querySelector("#dlq-msg a[data-retried]").dataset.retried`)
	var retried activation.Record
	if apiGet(t, base, token, "/v1/activations/"+retryID, &retried) != 200 || retried.RetryOf != failed.ID {
		t.Fatalf("retry from the page: activation %s retries %q, want %s", retryID, retried.RetryOf, failed.ID)
	}
	// It fails again (the object is still not an image), so it is the dead
	// letter listed now, in place of the one retried.
	b.wait("the retried dead letter replaced", fmt.Sprintf(`document.querySelector('#dlq tbody tr[data-id=%q]') === null && document.querySelector('#dlq tbody tr[data-id=%q]') !== null`, failed.ID, retryID))
	b.wait("one more event after the retry", fmt.Sprintf(`document.querySelector('.kpi[data-stat="events"]').dataset.value === "%d"`, sum.events+1))

	// A backfill started through the API shows with its progress, where the
	// API runs backfills: every object of docs already has an activation.
	if bfStatus == 200 {
		req, _ := http.NewRequest("POST", base+"/v1/backfills", strings.NewReader(`{"function": "archive"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var job struct {
			ID string `json:"id"`
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 || json.Unmarshal(body, &job) != nil || job.ID == "" {
			t.Errorf("POST /v1/backfills: %s %s", resp.Status, body)
		} else {
			b.wait("the backfill done, 3 of 3 objects", fmt.Sprintf(`(tr => tr !== null && tr.dataset.state === "done" &&
				tr.querySelector("[data-progress]") !== null && tr.querySelector("[data-progress]").dataset.progress === "1")(document.querySelector('#backfills tbody tr[data-id=%q]'))`, job.ID))
		}
	}
	// The screenshot: every panel, after a refresh that shows all of the above.
	b.do("scroll to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	b.wait("a refresh", fmt.Sprintf(`Number(document.body.dataset.refreshes) > %d`, js[int](b, `Number(document.body.dataset.refreshes)`)))
	b.screenshot("dashboard.png", os.Getenv("DEDUPFN_UPDATE_SCREENSHOT") == "1")
	b.checkClean()
}

// TestDashboardContract serves the page with canned answers in the shape
// of the API contract, including the endpoints other parts of dedupfn are
// still adding, and checks in headless Chromium what the page makes of
// them: the nondeterministic flag and audit badge, the chart's totals, a
// backfill's progress, the query the filters send, the retry request, that
// markup in data stays text, and that a 404 or 503 makes only its panel
// say "not available".
func TestDashboardContract(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	page, err := os.ReadFile("../../internal/api/dashboard.html")
	if err != nil {
		t.Fatal(err)
	}
	const token = "contract-token"
	now := time.Now().UTC().Truncate(time.Minute)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	evil := `<img src=x onerror="window.xss=1">`
	logsJSON, _ := json.Marshal("line 1\nocr: " + evil + " failed")
	logs := string(logsJSON)
	act := func(id, fn, decision, key string, extra string) string {
		return fmt.Sprintf(`{"id": %q, "tenant": "default", "function": %q, "version": "0123456789ab", "event": {"bucket": "in", "key": %q, "size": 1234},
			"event_source": "embedded", "event_time": %q, "start": %q, "fingerprint": "sha256:%s", "dedup_key": "key-%s", "decision": %q,
			"attempts": 1, "timings": {"queue_ms": 1.5, "fetch_hash_ms": 2.25, "lookup_ms": 0.5, "invoke_ms": 40, "store_ms": 3, "total_ms": 47.25},
			"function_ms": 40, "saved_ms": 0 %s}`, id, fn, key, at(-time.Minute), at(-time.Minute), id, id, decision, extra)
	}
	activations := []string{
		act("a4", "ocr", "error", "scan.pdf", `, "error": "exit status 1", "error_class": "function", "dead_letter": true, "logs": `+logs),
		act("a3", "thumbnail", "hit", "b/"+evil+".jpg", `, "output": {"bucket": "out", "key": "b.jpg"}`),
		act("a2", "thumbnail", "miss", "a/cat.jpg", `, "output": {"bucket": "out", "key": "a/cat.jpg", "size": 2048}`),
		act("a1", "ocr", "miss", "doc.pdf", `, "output": {"bucket": "out", "key": "doc.txt"}`),
	}
	decisionOf := map[string]string{"a4": "error", "a3": "hit", "a2": "miss", "a1": "miss"}
	fnOf := map[string]string{"a4": "ocr", "a3": "thumbnail", "a2": "thumbnail", "a1": "ocr"}
	var minutes []string
	var seriesRuns, seriesHits int
	for i := range 60 {
		runs, hits := i%3, i%5
		seriesRuns += runs
		seriesHits += hits
		minutes = append(minutes, fmt.Sprintf(`{"t": %q, "runs": %d, "hits": %d, "errors": %d}`, at(time.Duration(i-59)*time.Minute), runs, hits, i%7/6))
	}

	var mu sync.Mutex
	open := false        // the API needs no token
	unavailable := 0     // 0: every endpoint answers; else the status of the new ones
	var queries []string // activation listing queries received
	var retries []string // retry requests received: id + content type + fetch site
	answer := func(w http.ResponseWriter, status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", dashboardCSP)
		w.Write(page)
	})
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		down, noAuth := unavailable, open
		mu.Unlock()
		if !noAuth && r.Header.Get("Authorization") != "Bearer "+token {
			answer(w, 401, `{"error": "missing or wrong bearer token"}`)
			return
		}
		path := r.Method + " " + r.URL.Path
		switch path {
		case "GET /v1/stats/functions", "GET /v1/series", "GET /v1/backfills":
			if down != 0 {
				http.Error(w, "404 page not found", down)
				return
			}
		}
		switch {
		case path == "GET /v1/stats":
			answer(w, 200, `{"events": 1234, "runs": 200, "hits": 1000, "waits": 12, "errors": 30, "skipped": 4, "deletes": 5, "dead_letters": 3, "function_ms": 93000, "saved_ms": 412000}`)
		case path == "GET /v1/functions":
			answer(w, 200, fmt.Sprintf(`[
				{"tenant": "default", "name": "thumbnail", "runtime": "wasm", "version": "0123456789ab", "trigger": {"bucket": "images", "suffixes": [".jpg"]},
				 "output": {"bucket": "thumbs"}, "audit": {"rate": 0.05, "on_mismatch": "warn"},
				 "nondeterministic": {"version": "0123456789ab", "at": %q, "activation": "a3", "recorded_digest": "aaaa", "audit_digest": "bbbb"}},
				{"tenant": "default", "name": "ocr", "runtime": "wasm", "version": "ba9876543210", "trigger": {"bucket": "scans", "prefix": "in/"}, "output": {"bucket": "text"}}]`, at(-10*time.Minute)))
		case path == "GET /v1/stats/functions":
			answer(w, 200, `[
				{"tenant": "default", "function": "ocr", "events": 234, "runs": 100, "hits": 100, "waits": 2, "errors": 30, "skipped": 4, "dead_letters": 3, "function_ms": 50000, "saved_ms": 50000, "hit_rate": 0.5},
				{"tenant": "default", "function": "thumbnail", "events": 1000, "runs": 100, "hits": 900, "waits": 10, "errors": 0, "skipped": 0, "dead_letters": 0, "function_ms": 43000, "saved_ms": 362000, "hit_rate": 0.9}]`)
		case path == "GET /v1/series":
			answer(w, 200, `{"minutes": [`+strings.Join(minutes, ",")+`], "complete": true}`)
		case path == "GET /v1/backfills":
			answer(w, 200, fmt.Sprintf(`[
				{"id": "bf1", "tenant": "default", "function": "thumbnail", "version": "0123456789ab", "bucket": "images", "prefix": "2024/", "state": "running", "error": "",
				 "rate": 0, "concurrency": 4, "total_objects": 500, "total_bytes": 5000000, "objects": 200, "bytes": 2000000, "runs": 20, "hits": 170, "waits": 2, "skipped": 8, "errors": 0,
				 "created": %q, "updated": %q},
				{"id": "bf0", "tenant": "default", "function": "ocr", "version": "ba9876543210", "bucket": "scans", "prefix": "in/", "state": "done", "error": "",
				 "rate": 0, "concurrency": 4, "total_objects": 10, "total_bytes": 100, "objects": 10, "bytes": 100, "runs": 10, "hits": 0, "waits": 0, "skipped": 0, "errors": 0,
				 "created": %q, "updated": %q, "finished": %q}]`, at(-5*time.Minute), at(0), at(-50*time.Minute), at(-40*time.Minute), at(-40*time.Minute)))
		case path == "GET /v1/dlq":
			answer(w, 200, "["+activations[0]+"]")
		case path == "GET /v1/activations":
			q := r.URL.Query()
			mu.Lock()
			queries = append(queries, r.URL.RawQuery)
			mu.Unlock()
			var out []string
			for i, a := range activations {
				id := fmt.Sprintf("a%d", 4-i)
				if (q.Get("fn") == "" || q.Get("fn") == fnOf[id]) && (q.Get("decision") == "" || q.Get("decision") == decisionOf[id]) &&
					(q.Get("errors") == "" || decisionOf[id] == "error") {
					out = append(out, a)
				}
			}
			answer(w, 200, "["+strings.Join(out, ",")+"]")
		case strings.HasPrefix(path, "GET /v1/activations/"):
			id := strings.TrimPrefix(r.URL.Path, "/v1/activations/")
			for i, a := range activations {
				if id == fmt.Sprintf("a%d", 4-i) {
					answer(w, 200, a)
					return
				}
			}
			answer(w, 404, `{"error": "activation not found"}`)
		case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/retry"):
			mu.Lock()
			retries = append(retries, strings.Join([]string{strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/dlq/"), "/retry"),
				r.Header.Get("Content-Type"), r.Header.Get("Sec-Fetch-Site")}, " "))
			mu.Unlock()
			answer(w, 200, act("a5", "ocr", "miss", "scan.pdf", `, "retry_of": "a4"`))
		default:
			http.NotFound(w, r)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b.do("load the dashboard", chromedp.Navigate(srv.URL+"/"))
	b.login(token)
	b.wait("every panel", `["fns", "series", "backfills", "dlq", "acts"].every(p => document.getElementById("panel-" + p).dataset.state === "ok")`)

	k := b.kpis()
	for stat, want := range map[string]string{"events": "1,234", "runs": "200", "hits": "1,000", "hit_rate": "83.3%", "errors": "30", "dead_letters": "3", "function_ms": "1m 33s", "saved_ms": "6m 52s", "deletes": "5"} {
		if k[stat].Text != want {
			t.Errorf("total %s shows %q, want %q", stat, k[stat].Text, want)
		}
	}
	rows := b.functionRows()
	if th := rows["thumbnail"]; th.Values["events"] != "1000" || th.Values["hits"] != "900" || th.Values["hit_rate"] != "0.9" ||
		th.Values["saved_ms"] != "362000" || !slices.Equal(th.Flags, []string{"nondeterministic", "audit"}) {
		t.Errorf("thumbnail row %+v", th)
	}
	if ocr := rows["ocr"]; ocr.Values["errors"] != "30" || ocr.Values["dead_letters"] != "3" || len(ocr.Flags) != 0 {
		t.Errorf("ocr row %+v", ocr)
	}
	if got := js[string](b, `document.querySelector('#fns tr[data-fn="thumbnail"] [data-flag="nondeterministic"]').getAttribute("href")`); got != "#/activation/a3" {
		t.Errorf("nondeterministic flag links to %q, want the contradicted hit", got)
	}
	chart := js[[]string](b, `(s => [s.dataset.points, s.dataset.runs, s.dataset.hits, String(s.querySelectorAll("g[data-t]").length)])(document.querySelector("#chart svg"))`)
	if want := []string{"60", strconv.Itoa(seriesRuns), strconv.Itoa(seriesHits), "60"}; !slices.Equal(chart, want) {
		t.Errorf("chart points, runs, hits, bars = %v, want %v", chart, want)
	}
	if got := js[string](b, `document.getElementById("series-hits").textContent`); got != strconv.Itoa(seriesHits) {
		t.Errorf("chart legend hits %q, want %d", got, seriesHits)
	}
	bf := js[[]string](b, `[...document.querySelectorAll("#backfills tbody tr")].map(tr => tr.dataset.id + " " + tr.dataset.state + " " + (tr.querySelector("[data-progress]") || {dataset: {}}).dataset.progress)`)
	if want := []string{"bf1 running 0.4", "bf0 done 1"}; !slices.Equal(bf, want) {
		t.Errorf("backfills %q, want %q (running first, with progress)", bf, want)
	}
	acts := b.activationRows()
	if len(acts) != 4 || acts[1].Object != "in/b/"+evil+".jpg" {
		t.Errorf("activations %+v", acts)
	}
	if js[bool](b, `window.xss === 1 || document.querySelector("#app img, #detail img") !== null`) {
		t.Error("markup in an object key was rendered as HTML")
	}
	b.screenshot("dashboard-contract.png", false)

	// The filters ask the API and filter what comes back.
	b.filter("f-errors", "1", []string{"a4"})
	b.filter("f-errors", "0", []string{"a4", "a3", "a2", "a1"})
	b.filter("f-decision", "miss", []string{"a2", "a1"})
	b.filter("f-fn", "thumbnail", []string{"a2"})
	b.filter("f-decision", "", []string{"a3", "a2"})
	b.filter("f-fn", "", []string{"a4", "a3", "a2", "a1"})
	mu.Lock()
	q := slices.Clone(queries)
	mu.Unlock()
	for _, want := range []string{"limit=50&errors=1", "limit=50&decision=miss", "limit=50&fn=thumbnail&decision=miss"} {
		if !slices.Contains(q, want) {
			t.Errorf("the page never asked /v1/activations?%s; it asked %q", want, q)
		}
	}

	// A detail view's URL opens it on load.
	b.do("open a detail by URL", chromedp.Navigate(srv.URL+"/?open=1#/activation/a4"))
	b.wait("the detail", `document.getElementById("detail").dataset.state === "ok"`)
	d := b.detail()
	if d.ID != "a4" || d.Fingerprint != "sha256:a4" || d.Key != "key-a4" || d.Error != "exit status 1" || d.Class != "function" || !d.Dead ||
		d.Logs != "line 1\nocr: "+evil+" failed" || d.Timings["fetch_hash"] != "2.25" || d.Timings["total"] != "47.25" || d.Timings["run_wait"] != "" {
		t.Errorf("detail %+v", d)
	}
	b.do("close", chromedp.Click(chromedp.ID("d-close")))
	b.do("retry", chromedp.Click(chromedp.CSS(`#dlq button[data-retry="a4"]`)))
	b.wait("the retry's answer", `document.getElementById("dlq-msg").dataset.state === "ok"`)
	mu.Lock()
	r := slices.Clone(retries)
	mu.Unlock()
	if !slices.Equal(r, []string{"a4 application/json same-origin"}) {
		t.Errorf("retry requests %q, want one for a4 with Content-Type application/json from the same origin", r)
	}
	js[string](b, `location.hash = "#/activation/nope"`)
	b.wait("the unknown activation's note", `document.getElementById("detail").dataset.state === "error" && document.getElementById("d-note").textContent.includes("No activation nope")`)

	// Endpoints that are not there: their panels say so, the rest works.
	for _, status := range []int{http.StatusNotFound, http.StatusServiceUnavailable} {
		mu.Lock()
		unavailable = status
		mu.Unlock()
		b.do("reload", chromedp.Navigate(fmt.Sprintf("%s/?status=%d", srv.URL, status)))
		b.wait("the panels of missing endpoints", `document.getElementById("panel-series").dataset.state === "unavailable" &&
			document.getElementById("panel-backfills").dataset.state === "unavailable" && document.getElementById("panel-fns").dataset.state === "partial"`)
		for _, p := range []string{"fns", "series", "backfills"} {
			if _, note := b.panelState(p); !strings.Contains(note, "not available") || !strings.Contains(note, strconv.Itoa(status)) {
				t.Errorf("status %d: panel %s says %q", status, p, note)
			}
		}
		b.wait("the working panels", `document.getElementById("panel-acts").dataset.state === "ok" && document.getElementById("panel-dlq").dataset.state === "ok" &&
			document.querySelectorAll("#acts tbody tr").length === 4 && document.querySelector('.kpi[data-stat="events"]').dataset.value === "1234"`)
		if rows := b.functionRows(); len(rows) != 2 || rows["ocr"].Values["events"] != "" {
			t.Errorf("status %d: functions %+v, want both listed without numbers", status, rows)
		}
		if status == http.StatusNotFound {
			b.screenshot("dashboard-unavailable.png", false)
		}
	}

	// An API without a token: no prompt, and nothing to forget.
	mu.Lock()
	open, unavailable = true, 0
	mu.Unlock()
	js[bool](b, `sessionStorage.clear() === undefined`)
	b.do("reload", chromedp.Navigate(srv.URL+"/?open=1"))
	b.wait("the dashboard without a token", `!document.getElementById("app").hidden && Number(document.body.dataset.refreshes) >= 1`)
	if v := js[[]bool](b, `[document.getElementById("login").hidden, document.getElementById("logout").hidden]`); !slices.Equal(v, []bool{true, true}) {
		t.Errorf("without a token: login hidden, forget-token hidden = %v, want both hidden", v)
	}
	b.checkClean()
}
