package source_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/source"
)

// run starts a Run on l that holds until its context ends.
func run(t *testing.T, l *source.Lifecycle) <-chan struct{} {
	t.Helper()
	ctx, end, err := l.Start(t.Context())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		defer end()
		<-ctx.Done()
	}()
	return returned
}

func TestLifecycle_OneRunAtATime(t *testing.T) {
	var l source.Lifecycle
	returned := run(t, &l)
	if _, _, err := l.Start(t.Context()); !errors.Is(err, source.ErrRunTwice) {
		t.Fatalf("Start while running: %v, want ErrRunTwice", err)
	}
	if !l.Close() {
		t.Fatal("first Close reported the source closed already")
	}
	select {
	case <-returned:
	default:
		t.Fatal("Close returned before the Run did")
	}
	if l.Close() {
		t.Fatal("second Close reported that it closed the source")
	}
	if _, _, err := l.Start(t.Context()); !errors.Is(err, source.ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestLifecycle_RunAgainUnlessOnce(t *testing.T) {
	for _, once := range []bool{false, true} {
		l := source.Lifecycle{Once: once}
		ctx, end, err := l.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		end()
		if ctx.Err() == nil {
			t.Fatal("the Run's context outlived its end")
		}
		_, end, err = l.Start(context.Background())
		if once && !errors.Is(err, source.ErrRunTwice) {
			t.Fatalf("Once: second Start after the first returned: %v, want ErrRunTwice", err)
		}
		if !once {
			if err != nil {
				t.Fatalf("second Start after the first returned: %v", err)
			}
			end()
		}
		done := make(chan bool)
		go func() { done <- l.Close() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Close after every Run returned hangs")
		}
	}
}

func TestLifecycle_CloseNeverRun(t *testing.T) {
	var l source.Lifecycle
	if !l.Close() || l.Close() {
		t.Fatal("Close of a source never run: want true, then false")
	}
}
