package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/backfill"
)

// TestProgress_ShortJobShowsSensibleBar: analyze's bar counts objects
// (7 of 26 done is 26%, not the 0% of bytes that large objects hold),
// and no bar guesses a rate or an ETA from its first instants ("0 obj/hr",
// "[0s:4m0s]").
func TestProgress_ShortJobShowsSensibleBar(t *testing.T) {
	var buf bytes.Buffer
	p := newAnalyzeProgress(&buf)
	p.p.tty = true // draw the bar, as on a terminal
	p.listed(26, 40<<20)
	for range 7 {
		p.fingerprinted(1<<10, true)
	}
	time.Sleep(150 * time.Millisecond) // past the bar's throttle
	p.fingerprinted(1<<10, true)
	out := buf.String()
	if !strings.Contains(out, "8/26") || !strings.Contains(out, "30%") {
		t.Errorf("analyze bar after 8 of 26 objects, want 8/26 and 30%%:\n%q", out)
	}
	if strings.Contains(out, ":") && strings.Contains(out, "m0s]") {
		t.Errorf("analyze bar guesses an ETA from its first instants:\n%q", out)
	}

	buf.Reset()
	job := backfill.Job{ID: "j", Function: "f", State: backfill.Running, TotalObjects: 100}
	b := newBackfillProgress(&buf, job)
	b.p.tty = true
	b.showBar(job)
	time.Sleep(150 * time.Millisecond)
	job.Objects = 1
	b.update(job)
	if out := buf.String(); strings.Contains(out, "/hr") || strings.Contains(out, "/min") {
		t.Errorf("backfill bar starts with a rate per hour:\n%q", out)
	}
}

func TestRateETA(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{0, 100, 10 * time.Second, ""},       // nothing done yet: no rate to show
		{5, 100, 200 * time.Millisecond, ""}, // too soon to tell
		{10, 100, 2 * time.Second, "5.0 obj/s, ETA 18s"},
		{10, 0, 2 * time.Second, "5.0 obj/s"}, // total unknown
	} {
		if got := rateETA(tc.done, tc.total, tc.elapsed); got != tc.want {
			t.Errorf("rateETA(%d, %d, %s) = %q, want %q", tc.done, tc.total, tc.elapsed, got, tc.want)
		}
	}
}
