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
