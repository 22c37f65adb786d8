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
	if _, err := y.Write([]byte("abc")); !errors.Is(err, spool.ErrOverBudget) { // would wait on x: deadlock
		t.Fatalf("second holder blocking: %v, want ErrOverBudget", err)
	}
	y.Close()
	if err := <-xerr; err != nil {
		t.Fatalf("first holder after the other closed: %v", err)
	}
}
