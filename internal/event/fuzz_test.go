package event_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dedupfn/dedupfn/internal/event"
)

// FuzzParseEvent checks that Parse never panics, that its errors always
// wrap ErrMalformed, and that every event it returns is a valid, already
// normalised object-created or object-removed event.
func FuzzParseEvent(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"specversion":"1.0","data":"{\"Records\":[]}"}`))
	f.Add([]byte(`{"Records":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := event.Parse(data)
		if err != nil {
			if !errors.Is(err, event.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			if evs != nil {
				t.Fatalf("events returned with an error: %+v", evs)
			}
			return
		}
		for _, ev := range evs {
			n, err := event.Normalize(ev)
			if err != nil {
				t.Fatalf("returned event fails Normalize: %v (%+v)", err, ev)
			}
			if n.ETag != ev.ETag || n.Time != ev.Time || len(n.Metadata) != len(ev.Metadata) {
				t.Fatalf("returned event is not normalised: %+v, normalised %+v", ev, n)
			}
			if ev.Removed() == event.IsCreated(ev.Name) {
				t.Fatalf("returned event is not exactly one of created and removed: %+v", ev)
			}
			if ev.Time.IsZero() {
				t.Fatalf("returned event has zero time: %+v", ev)
			}
		}
	})
}
