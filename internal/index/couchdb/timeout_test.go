package couchdb_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/index"
)

// hungCouchDB answers just enough of the CouchDB API for Open to succeed,
// then, once hang is set, accepts every request and never answers: a
// CouchDB that is stuck (full disk, GC pause, half-open connection).
func hungCouchDB(t *testing.T) (addr string, hang *atomic.Bool) {
	t.Helper()
	hang = new(atomic.Bool)
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodHead:
			w.WriteHeader(http.StatusOK) // the database exists
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "_design"):
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "not_found", "reason": "missing"})
		case r.Method == http.MethodPut:
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(map[string]any{"ok": true, "id": "x", "rev": "1-a"})
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "not_found", "reason": "missing"})
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv.Listener.Addr().String(), hang
}

// TestTimeout_HungCouchDB: with ?timeout=200ms, every index call against a
// server that never answers returns an error within the timeout instead
// of blocking its caller forever.
func TestTimeout_HungCouchDB(t *testing.T) {
	addr, hang := hungCouchDB(t)
	idx, err := index.Open(t.Context(), "couchdb://"+addr+"/hung?timeout=200ms", index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	hang.Store(true)
	ctx := t.Context() // no deadline of its own: the index's applies
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Claim", func() error { _, err := idx.Claim(ctx, "k", index.Parts{}, "a", time.Minute); return err }},
		{"Renew", func() error { return idx.Renew(ctx, "k", "tok", time.Minute) }},
		{"Complete", func() error { return idx.Complete(ctx, "k", "tok", index.Completion{}) }},
		{"Get", func() error { _, err := idx.Get(ctx, "k"); return err }},
		{"AddActivation", func() error { return idx.AddActivation(ctx, activation.Record{ID: "a"}) }},
		{"Stats", func() error { _, err := idx.Stats(ctx, ""); return err }},
		{"PruneActivations", func() error { _, err := idx.PruneActivations(ctx, time.Now()); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- tc.call() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("no error from a server that never answers")
				}
				if d := time.Since(start); d < 150*time.Millisecond {
					t.Fatalf("returned after %s, before the 200ms timeout: %v", d, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("still blocked 5s into a 200ms timeout")
			}
		})
	}
}

// TestTimeout_OpenHungListener: Open against a listener that accepts
// connections and never says a word fails within the timeout.
func TestTimeout_OpenHungListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		idx, err := index.Open(t.Context(), "couchdb://"+ln.Addr().String()+"/hung?timeout=200ms", index.Options{})
		if err == nil {
			idx.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Open succeeded against a silent listener")
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("Open failed after %s, before the 200ms timeout could end it: %v", d, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Open still blocked 5s into a 200ms timeout")
	}
}
