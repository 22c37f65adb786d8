package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// text is what was written so far.
func (l *lockedBuffer) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServe_LogsStoppedAfterDraining: after "draining" serve logs
// "stopped" with what it drained and how long it took.
func TestServe_LogsStoppedAfterDraining(t *testing.T) {
	for _, env := range []string{"DEDUPFN_ACCESS_KEY", "DEDUPFN_SECRET_KEY", "DEDUPFN_API_TOKEN", "DEDUPFN_TENANT_TOKENS"} {
		t.Setenv(env, "")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stderr lockedBuffer
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--data", filepath.Join(t.TempDir(), "data"), "--api-addr", testutil.FreeAddr(t), "--s3-addr", testutil.FreeAddr(t), "--log-format", "text"})
	cmd.SetErr(&stderr)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	for !strings.Contains(stderr.text(), "dedupfn serving") {
		select {
		case err := <-done:
			t.Fatalf("serve ended before serving: %v\n%s", err, stderr.text())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v\n%s", err, stderr.text())
	}
	log := stderr.text()
	_, after, ok := strings.Cut(log, "draining")
	if !ok {
		t.Fatalf("no draining line:\n%s", log)
	}
	for _, want := range []string{"msg=stopped", "events_finished=0", "events_unfinished=0", "took="} {
		if !strings.Contains(after, want) {
			t.Errorf("the log after draining lacks %q:\n%s", want, after)
		}
	}
}

// TestDrainCount_CountsEventsFinishedWhileDraining: the events in flight
// when the drain begins are counted as they finish.
func TestDrainCount_CountsEventsFinishedWhileDraining(t *testing.T) {
	var d drainCount
	release := make(chan struct{})
	handle := d.wrap(func(context.Context, event.Event) error { <-release; return nil })
	started := make(chan struct{}, 2)
	errc := make(chan error, 2)
	for range 2 {
		go func() { started <- struct{}{}; errc <- handle(t.Context(), event.Event{}) }()
	}
	<-started
	<-started
	time.Sleep(10 * time.Millisecond) // both are in handle
	if n := d.begin(); n != 2 {
		t.Errorf("in flight at the drain: %d, want 2", n)
	}
	close(release)
	<-errc
	<-errc
	if n := d.finished.Load(); n != 2 {
		t.Errorf("finished while draining: %d, want 2", n)
	}
}
