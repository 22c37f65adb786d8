package api

import (
	"strings"
	"testing"
)

// TestDashboard_TotalLeavesQueueOut: total_ms counts from the event's
// pickup, so the timing bars must not draw it from 0 under the queue bar
// as if it covered it (a 0.52 ms total drawn shorter than a 6.8 ms
// queue): the total's bar starts where the queue's ends, and its label
// says it leaves the queue out. The browser test (test/e2e TestDashboard)
// still reads each stage's data-ms, total included.
func TestDashboard_TotalLeavesQueueOut(t *testing.T) {
	page := string(dashboard)
	for _, want := range []string{
		`["total", "total_ms", "total after queue"]`,
		`const left = stage === "total" ? queue : at;`,
		`Math.max(queue + total, sum)`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard.html lacks %s", want)
		}
	}
}

// TestDashboard_FunctionGraph: the page draws GET /v1/graph as an inline
// SVG (no library), buckets and functions by stage, each edge labelled
// events · runs · hit rate, and an activation's cause and root. The
// browser test (test/e2e TestDashboard) reads the data-* attributes.
func TestDashboard_FunctionGraph(t *testing.T) {
	page := string(dashboard)
	for _, want := range []string{
		`id="panel-graph"`, `<div class="graph" id="graph"></div>`,
		`settle(api("/v1/graph"))`, `else renderGraph(graph.v);`,
		`function renderGraph(g) {`,
		`count(e.events) + " · " + count(e.runs) + " · " + pct(e.hit_rate)`,
		`"data-from": e.from, "data-to": e.to`, `"data-kind": n.kind`,
		`const c = col.get(e.from) + 1;`, // stage columns
		`id="d-cause"`, `id="d-root"`, `actHref(r.cause)`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard.html lacks %s", want)
		}
	}
	// Everything from the API goes in as text: names are uploaders' and
	// tenants' words.
	if strings.Contains(page, "innerHTML") {
		t.Error("dashboard.html uses innerHTML")
	}
}
