package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
)

// fakeActivations serves GET /v1/activations from a slice, honouring
// since and limit, newest first, as the API does.
type fakeActivations struct {
	mu    sync.Mutex
	recs  []activation.Record
	polls int
}

func (f *fakeActivations) add(rs ...activation.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs = append(f.recs, rs...)
}

func (f *fakeActivations) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		since, _ = time.Parse(time.RFC3339Nano, s)
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit == 0 {
		limit = 100
	}
	var out []activation.Record
	for _, rec := range f.recs {
		if !rec.Start.Before(since) {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b activation.Record) int { return b.Start.Compare(a.Start) })
	out = out[:min(limit, len(out))]
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (f *fakeActivations) pollCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// ids are the ids of the JSON lines written so far.
func (l *lockedBuffer) ids(t *testing.T) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	for sc.Scan() {
		var r activation.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, r.ID)
	}
	return out
}

func TestFollowActivations(t *testing.T) {
	base := time.Now().UTC().Add(-time.Minute)
	rec := func(id string, s int) activation.Record {
		return activation.Record{ID: id, Function: "f", Decision: activation.Miss, Start: base.Add(time.Duration(s) * time.Second)}
	}
	fake := &fakeActivations{}
	fake.add(rec("old-0", 0), rec("old-1", 1), rec("old-2", 2))
	ts := httptest.NewServer(fake)
	defer ts.Close()
	c := &api.Client{BaseURL: ts.URL}

	ctx, cancel := context.WithCancel(t.Context())
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- followActivations(ctx, c, api.ActivationQuery{Limit: 2}, 5*time.Millisecond, &out, io.Discard, true)
	}()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; printed %v", what, out.ids(t))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("the first polls", func() bool { return fake.pollCount() >= 3 })
	// A new one; one that started earlier but was recorded late (a long
	// run); and one older than what was shown first, never "new".
	fake.add(rec("new-5", 5), rec("late-2", 2), rec("older", -5))
	waitFor("the new ones", func() bool { return len(out.ids(t)) >= 4 })
	fake.add(rec("new-6", 6))
	waitFor("the next one", func() bool { return len(out.ids(t)) >= 5 })
	n := fake.pollCount()
	waitFor("more polls", func() bool { return fake.pollCount() >= n+3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow ended with %v, want nil on cancel", err)
	}
	want := "old-1 old-2 late-2 new-5 new-6" // each once, oldest first per poll
	if got := strings.Join(out.ids(t), " "); got != want {
		t.Fatalf("printed %s, want %s", got, want)
	}
}

func TestFollowActivations_BadAPIFailsAtOnce(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"missing or wrong bearer token"}`, http.StatusUnauthorized)
	}))
	defer ts.Close()
	err := followActivations(t.Context(), &api.Client{BaseURL: ts.URL}, api.ActivationQuery{}, time.Millisecond, &lockedBuffer{}, io.Discard, false)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("follow against a refusing API: %v, want the 401", err)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in, want, err string
	}{
		{"10m", "2026-01-02T14:54:05Z", ""},
		{"0s", "2026-01-02T15:04:05Z", ""},
		{"2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", ""},
		{"2026-01-01T01:00:00.5+01:00", "2026-01-01T00:00:00.5Z", ""},
		{"-5m", "", "--since duration must be >= 0"},
		{"yesterday", "", `--since must be a duration such as 10m or an RFC 3339 time`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSince(tc.in, now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseSince(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got.UTC().Format(time.RFC3339Nano) != tc.want {
				t.Fatalf("parseSince(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}
