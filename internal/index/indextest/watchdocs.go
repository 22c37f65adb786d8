package indextest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
)

// WatchDocs checks an index.DocWatcher: watcher, a second handle on the
// same database as writer (another replica), calls fn once when the
// watch starts and within a second of every write or delete of a
// document of its kind through writer, and not for other writes (other
// kinds, claims, activations; a PutDocs wakes it when one of its
// documents is of the kind). WatchDocs returns nil once ctx ends.
func WatchDocs(t *testing.T, writer index.Index, watcher index.DocWatcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	calls := make(chan struct{}, 100)
	done := make(chan error, 1)
	go func() { done <- watcher.WatchDocs(ctx, "function", func() { calls <- struct{}{} }) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("WatchDocs returned %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("WatchDocs did not return after its context was cancelled")
		}
	}()
	expect := func(what string) {
		t.Helper()
		select {
		case <-calls:
		case <-time.After(time.Second):
			t.Fatalf("no call within a second of %s", what)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-calls:
			t.Fatalf("fn called after %s", what)
		case <-time.After(300 * time.Millisecond):
		}
	}
	expect("the watch starting")
	quiet("nothing happened")
	// Traffic on other documents does not wake the watcher.
	if err := writer.PutDoc(t.Context(), "other", "x", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Claim(t.Context(), "k", index.Parts{}, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := writer.AddActivation(t.Context(), activation.Record{ID: "a1", Start: time.Now()}); err != nil {
		t.Fatal(err)
	}
	quiet("writes to other kinds")
	for i := range 3 {
		if err := writer.PutDoc(t.Context(), "function", "f", []byte(fmt.Sprintf(`{"v":%d}`, i))); err != nil {
			t.Fatal(err)
		}
		expect(fmt.Sprintf("deploy %d", i))
		for len(calls) > 0 { // a batch may be reported by one call or several
			<-calls
		}
	}
	// PutDocs wakes the watchers of the kinds it writes, and only those.
	other := []index.Doc{{Kind: "other", ID: "y", Doc: []byte(`{}`)}, {Kind: "copy", ID: "z", Doc: []byte(`{}`)}}
	if err := writer.PutDocs(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	quiet("a PutDocs of other kinds")
	if err := writer.PutDocs(t.Context(), append(other, index.Doc{Kind: "function", ID: "g", Doc: []byte(`{}`)})); err != nil {
		t.Fatal(err)
	}
	expect("a PutDocs with a function document")
	for len(calls) > 0 {
		<-calls
	}
	if err := writer.DeleteDoc(t.Context(), "function", "f"); err != nil {
		t.Fatal(err)
	}
	expect("a delete")
}
