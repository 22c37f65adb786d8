package registry_test

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
	_ "github.com/dedupfn/dedupfn/internal/index/bolt"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

func TestValidate_Audit(t *testing.T) {
	for _, tc := range []struct {
		name       string
		audit      registry.Audit
		noDedup    bool
		wantErr    string
		wantPolicy string
	}{
		{"None", registry.Audit{}, false, "", ""},
		{"DefaultPolicyIsWarn", registry.Audit{Rate: 0.01}, false, "", registry.OnMismatchWarn},
		{"All", registry.Audit{Rate: 1, OnMismatch: registry.OnMismatchDisableDedup}, false, "", registry.OnMismatchDisableDedup},
		{"PolicyWithoutRate", registry.Audit{OnMismatch: registry.OnMismatchDisableDedup}, false, "", registry.OnMismatchDisableDedup},
		{"Negative", registry.Audit{Rate: -0.1}, false, "audit rate must be between 0 and 1 (a fraction of hits), got -0.1", ""},
		{"Percent", registry.Audit{Rate: 5}, false, "audit rate must be between 0 and 1 (a fraction of hits), got 5", ""},
		{"NaN", registry.Audit{Rate: math.NaN()}, false, "audit rate must be between 0 and 1", ""},
		{"BadPolicy", registry.Audit{Rate: 0.1, OnMismatch: "disable"}, false, `audit on_mismatch must be "warn" or "disable-dedup", got "disable"`, ""},
		{"NoDedup", registry.Audit{Rate: 0.1}, true, "audit rate must be 0 for a no-dedup function (it reuses no results to audit), got 0.1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := validFn()
			f.Audit, f.NoDedup = tc.audit, tc.noDedup
			err := f.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if f.Audit.OnMismatch != tc.wantPolicy {
				t.Fatalf("on_mismatch %q, want %q", f.Audit.OnMismatch, tc.wantPolicy)
			}
		})
	}
}

func TestVersion_AuditDoesNotChangeIt(t *testing.T) {
	base := validFn()
	base.Validate()
	f := validFn()
	f.Audit = registry.Audit{Rate: 0.5, OnMismatch: registry.OnMismatchDisableDedup}
	f.Validate()
	if f.Version != base.Version {
		t.Fatalf("audit settings changed the version: %s vs %s", f.Version, base.Version)
	}
}

func TestDeduplicated(t *testing.T) {
	mark := &registry.Nondeterministic{Version: "v"}
	for _, tc := range []struct {
		name string
		f    registry.Function
		want bool
	}{
		{"Plain", registry.Function{}, true},
		{"NoDedup", registry.Function{NoDedup: true}, false},
		{"MarkedWarn", registry.Function{Audit: registry.Audit{Rate: 1, OnMismatch: registry.OnMismatchWarn}, Nondeterministic: mark}, true},
		{"MarkedDisable", registry.Function{Audit: registry.Audit{Rate: 1, OnMismatch: registry.OnMismatchDisableDedup}, Nondeterministic: mark}, false},
		{"UnmarkedDisable", registry.Function{Audit: registry.Audit{Rate: 1, OnMismatch: registry.OnMismatchDisableDedup}}, true},
	} {
		if got := tc.f.Deduplicated(); got != tc.want {
			t.Errorf("%s: Deduplicated() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The JSON names of the mark are a contract with the dashboard.
func TestFunctionJSON_AuditAndMark(t *testing.T) {
	f := validFn()
	f.Validate()
	b, _ := json.Marshal(f)
	if strings.Contains(string(b), `"audit"`) || strings.Contains(string(b), `"nondeterministic"`) {
		t.Fatalf("a function without audit or mark encodes them: %s", b)
	}
	f.Audit = registry.Audit{Rate: 0.25, OnMismatch: registry.OnMismatchWarn}
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	f.Nondeterministic = &registry.Nondeterministic{Version: f.Version, At: at, Activation: "act", RecordedDigest: "r", AuditDigest: "a"}
	b, _ = json.Marshal(f)
	var got struct {
		Audit            map[string]any `json:"audit"`
		Nondeterministic map[string]any `json:"nondeterministic"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Audit["rate"] != 0.25 || got.Audit["on_mismatch"] != "warn" {
		t.Errorf("audit JSON %v", got.Audit)
	}
	for k, v := range map[string]any{"version": f.Version, "at": "2026-11-26T09:00:00Z", "activation": "act", "recorded_digest": "r", "audit_digest": "a"} {
		if got.Nondeterministic[k] != v {
			t.Errorf("nondeterministic.%s = %v, want %v (in %s)", k, got.Nondeterministic[k], v, b)
		}
	}
}

func newRegistry(t *testing.T) (*registry.Registry, index.Index) {
	t.Helper()
	idx := testutil.BoltIndex(t)
	return registry.New(idx, nil), idx
}

func deploy(t *testing.T, r *registry.Registry, mutate func(*registry.Function)) registry.Function {
	t.Helper()
	f := validFn()
	f.CodeDigest = ""
	if mutate != nil {
		mutate(&f)
	}
	f, err := r.Deploy(t.Context(), f, []byte("code"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func markOf(f registry.Function, activation string) registry.Nondeterministic {
	return registry.Nondeterministic{Version: f.Version, At: time.Now().UTC().Truncate(time.Millisecond), Activation: activation,
		DedupKey: "key-" + activation, RecordedDigest: strings.Repeat("1", 64), AuditDigest: strings.Repeat("2", 64)}
}

func TestMarkNondeterministic(t *testing.T) {
	r, _ := newRegistry(t)
	ctx := t.Context()
	f := deploy(t, r, func(f *registry.Function) {
		f.Audit = registry.Audit{Rate: 1, OnMismatch: registry.OnMismatchDisableDedup}
	})
	if f.Nondeterministic != nil || !f.Deduplicated() {
		t.Fatalf("fresh deploy: mark %v, deduplicated %v", f.Nondeterministic, f.Deduplicated())
	}

	first := markOf(f, "first")
	got, created, err := r.MarkNondeterministic(ctx, f, first)
	if err != nil || !created || got != first {
		t.Fatalf("first mark: %+v, %v, %v; want it stored", got, created, err)
	}
	// The first mismatch wins; marking again is idempotent.
	got, created, err = r.MarkNondeterministic(ctx, f, markOf(f, "second"))
	if err != nil || created || got.Activation != "first" {
		t.Fatalf("second mark: %+v, %v, %v; want the first kept", got, created, err)
	}

	g, err := r.Get(ctx, f.Tenant, f.Name)
	if err != nil || g.Nondeterministic == nil || g.Nondeterministic.Activation != "first" || g.Deduplicated() {
		t.Fatalf("Get: %+v, %v: want the first mark and dedup disabled", g.Nondeterministic, err)
	}
	if l := r.List(""); len(l) != 1 || l[0].Nondeterministic == nil || *l[0].Nondeterministic != first {
		t.Fatalf("List: %+v, want the mark", l)
	}
	if m := r.Match("images", "x.jpg"); len(m) != 1 || m[0].Deduplicated() {
		t.Fatalf("Match: %+v, want the marked function with dedup disabled", m)
	}
	// A refresh (from the index) keeps it.
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if m := r.Match("images", "x.jpg"); len(m) != 1 || m[0].Nondeterministic == nil {
		t.Fatal("refresh lost the mark")
	}

	// A deployer cannot set or clear a mark, and redeploying the same
	// version (only audit settings changed) keeps it.
	same := deploy(t, r, func(f *registry.Function) {
		f.Audit = registry.Audit{Rate: 0.1, OnMismatch: registry.OnMismatchWarn}
		f.Nondeterministic = nil
	})
	if same.Version != f.Version || same.Nondeterministic == nil || *same.Nondeterministic != first || !same.Deduplicated() {
		t.Fatalf("redeploy of the same version: %s, mark %+v, deduplicated %v; want the same version, the mark kept, and results reused under warn",
			same.Version, same.Nondeterministic, same.Deduplicated())
	}
	// A new version starts clean, and a mark sent with a deploy is ignored.
	v2 := deploy(t, r, func(f *registry.Function) {
		f.Params = map[string]string{"size": "64"}
		f.Nondeterministic = &registry.Nondeterministic{Version: "forged"}
	})
	if v2.Version == f.Version || v2.Nondeterministic != nil {
		t.Fatalf("new version %s (old %s) deployed with mark %+v, want none", v2.Version, f.Version, v2.Nondeterministic)
	}
	if g, _ := r.Get(ctx, v2.Tenant, v2.Name); g.Nondeterministic != nil {
		t.Fatalf("Get new version: mark %+v", *g.Nondeterministic)
	}
	if l := r.List(""); len(l) != 1 || l[0].Nondeterministic != nil {
		t.Fatalf("List new version: %+v", l)
	}
	// Going back to the old version finds its mark again: it is the
	// version's, not the deploy's.
	back := deploy(t, r, nil)
	if back.Version != f.Version || back.Nondeterministic == nil {
		t.Fatalf("back to version %s: mark %+v, want the old mark", back.Version, back.Nondeterministic)
	}
}

// watchingIndex pushes document changes like CouchDB's and PostgreSQL's
// watchers do, for the kinds written through it.
type watchingIndex struct {
	index.Index
	mu       sync.Mutex
	watchers map[string][]chan struct{}
}

func (w *watchingIndex) PutDoc(ctx context.Context, kind, id string, doc []byte) error {
	if err := w.Index.PutDoc(ctx, kind, id, doc); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.watchers[kind] {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	return nil
}

func (w *watchingIndex) WatchDocs(ctx context.Context, kind string, fn func()) error {
	c := make(chan struct{}, 1)
	w.mu.Lock()
	w.watchers[kind] = append(w.watchers[kind], c)
	w.mu.Unlock()
	fn()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c:
			fn()
		}
	}
}

// A mark made through one replica reaches another sharing the index:
// pushed where the index can push (without waiting for the backstop poll),
// else at the next poll.
func TestMarkNondeterministic_ReachesOtherReplicas(t *testing.T) {
	for _, pushed := range []bool{true, false} {
		name := map[bool]string{true: "Pushed", false: "Polled"}[pushed]
		t.Run(name, func(t *testing.T) {
			_, idx := newRegistry(t)
			shared := idx
			interval := 20 * time.Millisecond
			if pushed {
				shared = &watchingIndex{Index: idx, watchers: map[string][]chan struct{}{}}
				interval = time.Hour // only a push can be in time
			}
			a, b := registry.New(shared, nil), registry.New(shared, nil)
			f := deploy(t, a, func(f *registry.Function) {
				f.Audit = registry.Audit{Rate: 1, OnMismatch: registry.OnMismatchDisableDedup}
			})
			if err := b.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { defer close(done); b.Run(ctx, interval) }()
			defer func() { cancel(); <-done }()
			if m := b.Match("images", "x.jpg"); len(m) != 1 || !m[0].Deduplicated() {
				t.Fatalf("replica b before the mark: %+v", m)
			}
			if _, _, err := a.MarkNondeterministic(t.Context(), f, markOf(f, "on-a")); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 2*time.Second, "the mark on replica b", func() bool {
				m := b.Match("images", "x.jpg")
				return len(m) == 1 && m[0].Nondeterministic != nil && m[0].Nondeterministic.Activation == "on-a" && !m[0].Deduplicated()
			})
		})
	}
}
