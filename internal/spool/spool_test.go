package spool_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/spool"
)

func TestSpool_MaxSize(t *testing.T) {
	sp := spool.New(t.TempDir(), 4, 10)
	defer sp.Close()
	if _, err := io.Copy(sp, strings.NewReader("0123456789")); err != nil {
		t.Fatalf("10 bytes into a 10-byte spool: %v", err)
	}
	if _, err := sp.Write([]byte("x")); !errors.Is(err, spool.ErrTooLarge) {
		t.Fatalf("11th byte: err = %v, want ErrTooLarge", err)
	}
	got, _ := io.ReadAll(sp.Reader())
	if string(got) != "0123456789" {
		t.Fatalf("read back %q", got)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestSpool_DiskBudget: spools sharing a budget block when writing beyond
// it until another spool is closed, and a blocked write ends with its
// context; memory-only spools use none of it.
func TestSpool_DiskBudget(t *testing.T) {
	dir := t.TempDir()
	b := spool.NewBudget(10)
	a := spool.NewBudgeted(t.Context(), b, dir, 2, 0)
	defer a.Close()
	if _, err := a.Write([]byte("0123456")); err != nil { // 7 bytes on disk
		t.Fatal(err)
	}
	if got := b.Used(); got != 7 {
		t.Fatalf("Used = %d after 7 bytes spilled to disk, want 7", got)
	}
	mem := spool.NewBudgeted(t.Context(), b, dir, 100, 0) // stays in memory: free
	if _, err := mem.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	mem.Close()

	c := spool.NewBudgeted(t.Context(), b, dir, 2, 0)
	defer c.Close()
	wrote := make(chan error, 1)
	go func() { _, err := c.Write([]byte("abcdef")); wrote <- err }() // 7+6 > 10: must wait
	select {
	case err := <-wrote:
		t.Fatalf("write beyond the budget returned %v at once, want it to block", err)
	case <-time.After(200 * time.Millisecond):
	}
	a.Close() // releases 7
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("write after release: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("write still blocked after the other spool was closed")
	}
	if got, _ := io.ReadAll(c.Reader()); string(got) != "abcdef" {
		t.Fatalf("read back %q", got)
	}
	if got := b.Used(); got != 6 {
		t.Fatalf("Used = %d, want 6", got)
	}

	// A blocked write ends with its context.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	d := spool.NewBudgeted(ctx, b, dir, 2, 0)
	defer d.Close()
	if _, err := d.Write([]byte("0123456")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocked write after its context ended: %v, want DeadlineExceeded", err)
	}
	c.Close()
	if got := b.Used(); got != 0 {
		t.Fatalf("Used = %d after every spool closed, want 0", got)
	}
}

// TestSpool_LargerThanBudget: a spool that alone needs more than the whole
// budget fails with ErrOverBudget instead of waiting forever.
func TestSpool_LargerThanBudget(t *testing.T) {
	b := spool.NewBudget(10)
	sp := spool.NewBudgeted(t.Context(), b, t.TempDir(), 2, 0)
	defer sp.Close()
	done := make(chan error, 1)
	go func() { _, err := sp.Write([]byte("0123456789x")); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, spool.ErrOverBudget) || !strings.Contains(err.Error(), "10") {
			t.Fatalf("write of 11 bytes into a 10-byte budget: %v, want ErrOverBudget naming the budget", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a spool larger than the whole budget blocks")
	}
}

// TestSpool_BudgetAllWaiting: when every spool holding budget is blocked on
// it, nobody can release, so the last one to block fails instead of all
// of them waiting forever.
func TestSpool_BudgetAllWaiting(t *testing.T) {
	dir := t.TempDir()
	b := spool.NewBudget(10)
	x := spool.NewBudgeted(t.Context(), b, dir, 1, 0)
	defer x.Close()
	y := spool.NewBudgeted(t.Context(), b, dir, 1, 0)
	defer y.Close()
	if _, err := x.Write([]byte("01234")); err != nil {
		t.Fatal(err)
	}
	if _, err := y.Write([]byte("0123")); err != nil {
		t.Fatal(err)
	}
	xerr := make(chan error, 1)
	go func() { _, err := x.Write([]byte("abc")); xerr <- err }() // waits on y
	time.Sleep(100 * time.Millisecond)
	if _, err := y.Write([]byte("abc")); !errors.Is(err, spool.ErrContended) { // would wait on x: deadlock
		t.Fatalf("second holder blocking: %v, want ErrContended", err)
	}
	y.Close()
	if err := <-xerr; err != nil {
		t.Fatalf("first holder after the other closed: %v", err)
	}
}

// writeWithin runs sp.Write(p) and fails the test if it has not returned
// within d (so a wait that would never end fails instead of hanging).
func writeWithin(t *testing.T, d time.Duration, sp *spool.Spool, p []byte) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := sp.Write(p); done <- err }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("write of %d bytes still blocked after %s: nobody can release the budget", len(p), d)
		return nil
	}
}

// Issue 17 item 5: an event's output spool is its input's sibling, one
// holder of the budget. An output that with its own input needs more than
// the whole budget fails at once; outputs that each wait while their own
// inputs hold the budget are every holder waiting, and the last to wait
// fails. (On f13dda0 an output spool that held nothing yet was never
// counted as waiting: both writes below blocked forever.)
func TestSpoolBudget_OutputWaitingOnItsOwnInputFails(t *testing.T) {
	const mib = 1 << 20
	dir := t.TempDir()
	t.Run("InputPlusOutputOverBudget", func(t *testing.T) {
		b := spool.NewBudget(12 * mib)
		in := spool.NewBudgeted(t.Context(), b, dir, 1, 0)
		defer in.Close()
		if _, err := in.Write(make([]byte, 8*mib)); err != nil {
			t.Fatal(err)
		}
		out := in.Sibling(t.Context(), 1, 0)
		defer out.Close()
		err := writeWithin(t, 5*time.Second, out, make([]byte, 8*mib))
		if !errors.Is(err, spool.ErrOverBudget) {
			t.Fatalf("8 MiB output of an 8 MiB input in a 12 MiB budget: %v, want ErrOverBudget", err)
		}
		if !errors.Is(out.Refused(), spool.ErrOverBudget) || in.Refused() != nil {
			t.Fatalf("Refused: output %v, input %v; want the output's refusal only", out.Refused(), in.Refused())
		}
		out.Close()
		in.Close()
		if got := b.Used(); got != 0 {
			t.Fatalf("Used = %d after both closed, want 0", got)
		}
	})
	t.Run("EveryHolderWaiting", func(t *testing.T) {
		b := spool.NewBudget(12 * mib)
		x := spool.NewBudgeted(t.Context(), b, dir, 1, 0)
		defer x.Close()
		y := spool.NewBudgeted(t.Context(), b, dir, 1, 0)
		defer y.Close()
		for _, in := range []*spool.Spool{x, y} {
			if _, err := in.Write(make([]byte, 5*mib)); err != nil {
				t.Fatal(err)
			}
		}
		xOut, yOut := x.Sibling(t.Context(), 1, 0), y.Sibling(t.Context(), 1, 0)
		defer xOut.Close()
		defer yOut.Close()
		xerr := make(chan error, 1)
		go func() { _, err := xOut.Write(make([]byte, 4*mib)); xerr <- err }() // 14 > 12: waits on y
		time.Sleep(100 * time.Millisecond)
		if err := writeWithin(t, 5*time.Second, yOut, make([]byte, 4*mib)); !errors.Is(err, spool.ErrContended) {
			t.Fatalf("second output waiting on the first: %v, want ErrContended", err)
		}
		yOut.Close()
		y.Close() // the failed event ends: its input goes
		select {
		case err := <-xerr:
			if err != nil {
				t.Fatalf("first output once the other event ended: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("first output still blocked after the other event released its input")
		}
	})
	// Woken by a release that lets only one of two waiters on, the other
	// is not mistaken for the last waiter of a deadlock.
	t.Run("ReleaseWakesWithoutFalseDeadlock", func(t *testing.T) {
		b := spool.NewBudget(12 * mib)
		var ins []*spool.Spool
		for _, n := range []int{4, 4, 3} {
			in := spool.NewBudgeted(t.Context(), b, dir, 1, 0)
			defer in.Close()
			if _, err := in.Write(make([]byte, n*mib)); err != nil {
				t.Fatal(err)
			}
			ins = append(ins, in)
		}
		errs := make(chan error, 2)
		// The writer still waiting at the end is stopped through ctx before
		// the deferred Closes: a spool is not for concurrent use.
		ctx, cancel := context.WithCancel(t.Context())
		for _, in := range ins[:2] {
			out := in.Sibling(ctx, 1, 0)
			defer out.Close()
			go func() { _, err := out.Write(make([]byte, 3*mib)); errs <- err }() // 14 > 12: wait
		}
		defer func() { cancel(); <-errs }() // runs before the Closes above
		time.Sleep(100 * time.Millisecond)
		ins[2].Close() // 3 MiB free: one output fits, the other waits for it
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("one output after a release: %v, want it written", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no output written after a release made room for one")
		}
		select {
		case err := <-errs:
			t.Fatalf("second output returned %v while the first holder can still finish, want it to wait", err)
		case <-time.After(200 * time.Millisecond):
		}
	})
}
