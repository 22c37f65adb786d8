package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal: commands draw progress bars
// there, and print plain lines elsewhere (pipes, logs, CI).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress is a command's progress on stderr, the one way bench, analyze
// and backfill show theirs: a bar at a time on a terminal, and plain lines
// elsewhere. It is not safe for concurrent use: callers serialize.
type progress struct {
	w    io.Writer
	tty  bool
	bar  *progressbar.ProgressBar // the bar shown; nil when none
	last time.Time                // the last plain line due (lineDue)
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w)}
}

// startBar shows a bar of max steps (-1: a spinner until the total is
// known) after desc, with the options every command's bar shares and
// extra; off a terminal it does nothing. It replaces any bar shown.
func (p *progress) startBar(max int64, desc string, extra ...progressbar.Option) {
	if !p.tty {
		return
	}
	p.endBar()
	// The bar's own rate and ETA are guesses from its first instants
	// ("0 obj/hr", "[0s:4m0s]" for a 0.25 s job): it shows the elapsed
	// time only, and a command puts rateETA in its description.
	opts := append([]progressbar.Option{
		progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription(desc), progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond), progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(false), progressbar.OptionSetElapsedTime(true),
	}, extra...)
	p.bar = progressbar.NewOptions64(max, opts...)
}

// barShown reports whether a bar is shown: plain lines are not.
func (p *progress) barShown() bool { return p.bar != nil }

// set moves the bar to n done.
func (p *progress) set(n int64) {
	if p.bar != nil {
		p.bar.Set64(n)
	}
}

// add moves the bar n further.
func (p *progress) add(n int64) {
	if p.bar != nil {
		p.bar.Add64(n)
	}
}

// describe changes the text before the bar.
func (p *progress) describe(desc string) {
	if p.bar != nil {
		p.bar.Describe(desc)
	}
}

// setMax changes the bar's total, once it is known.
func (p *progress) setMax(max int64) {
	if p.bar != nil && p.bar.GetMax64() != max {
		p.bar.ChangeMax64(max)
	}
}

// endBar clears the bar (OptionClearOnFinish), if one is shown.
func (p *progress) endBar() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

// linef prints a line.
func (p *progress) linef(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
}

// lineDue reports whether a plain line is due: none was, or the last one
// was at least every ago; it then counts one as printed now.
func (p *progress) lineDue(every time.Duration) bool {
	if !p.last.IsZero() && time.Since(p.last) < every {
		return false
	}
	p.last = time.Now()
	return true
}

// rateMinElapsed is how long a job runs before rateETA states a rate:
// before, one object more or less changes it wildly.
const rateMinElapsed = time.Second

// rateETA is "R obj/s, ETA D" for done of total objects in elapsed (no
// ETA when total is unknown, 0), or "" while there is no rate to state:
// nothing done yet, or less than rateMinElapsed gone.
func rateETA(done, total int64, elapsed time.Duration) string {
	if done <= 0 || elapsed < rateMinElapsed {
		return ""
	}
	rate := float64(done) / elapsed.Seconds()
	s := fmt.Sprintf("%.1f obj/s", rate)
	if total > 0 {
		s += ", ETA " + time.Duration(float64(max(total-done, 0))/rate*float64(time.Second)).Round(time.Second).String()
	}
	return s
}

// withRate appends rateETA's text, if any, to a bar's description.
func withRate(desc string, done, total int64, elapsed time.Duration) string {
	if r := rateETA(done, total, elapsed); r != "" {
		return desc + ", " + r
	}
	return desc
}
