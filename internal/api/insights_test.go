package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
)

// totalsString is rows as tenant/function:events/runs/hits/hit rate.
func totalsString(rows []api.FunctionTotals) string {
	var s []string
	for _, r := range rows {
		s = append(s, fmt.Sprintf("%s/%s:%d/%d/%d/%.2f", r.Tenant, r.Function, r.Events, r.Runs, r.Hits, r.HitRate))
	}
	return fmt.Sprint(s)
}

// TestFunctionStats: events handled through the API are totalled per
// function, hits and runs apart, and each tenant sees its own functions.
func TestFunctionStats(t *testing.T) {
	e := newEnv(t, setup{})
	ctx := t.Context()
	for _, b := range []string{"acme-in", "acme-out", "globex-in", "globex-out"} {
		store.MakeBucket(ctx, b) // may exist: the store is the test process's
	}
	put := func(bucket, key, data string) {
		t.Helper()
		if _, err := store.Put(ctx, bucket, key, strings.NewReader(data), int64(len(data)), objects.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put("acme-in", "insights/a.txt", "same bytes")
	put("acme-in", "insights/b.txt", "same bytes")
	put("acme-in", "insights/c.txt", "other bytes")
	put("globex-in", "insights/g.txt", "globex bytes")
	deploy := func(tenant, name string) {
		t.Helper()
		fn := fnDef(name, "test", tenant+"-in", tenant+"-out")
		fn.Tenant, fn.Output.KeyTemplate = tenant, name+"/{key}"
		if _, err := e.reg.Deploy(ctx, fn, []byte("code")); err != nil {
			t.Fatal(err)
		}
	}
	deploy("acme", "thumb")
	deploy("acme", "ocr")
	deploy("globex", "thumb") // the same name in another tenant
	admin := &api.Client{BaseURL: e.ts.URL, Token: adminToken}
	acme := &api.Client{BaseURL: e.ts.URL, Token: acmeToken}
	globex := &api.Client{BaseURL: e.ts.URL, Token: otherToken}
	invoke := func(c *api.Client, fn, bucket, key string, want activation.Decision) {
		t.Helper()
		rec, err := c.Invoke(ctx, pipeline.InvokeRequest{Function: fn, Bucket: bucket, Key: key})
		if err != nil || rec.Decision != want {
			t.Fatalf("invoke %s on %s/%s = %s, %v; want %s", fn, bucket, key, rec.Decision, err, want)
		}
	}
	invoke(acme, "thumb", "acme-in", "insights/a.txt", activation.Miss)
	invoke(acme, "thumb", "acme-in", "insights/b.txt", activation.Hit) // same content
	invoke(acme, "thumb", "acme-in", "insights/c.txt", activation.Miss)
	invoke(acme, "ocr", "acme-in", "insights/a.txt", activation.Miss)
	invoke(globex, "thumb", "globex-in", "insights/g.txt", activation.Miss)
	invoke(globex, "thumb", "globex-in", "insights/g.txt", activation.Hit)

	for _, tc := range []struct {
		name string
		c    *api.Client
		want string
	}{
		{"Acme", acme, "[acme/ocr:1/1/0/0.00 acme/thumb:3/2/1/0.33]"},
		{"Globex", globex, "[globex/thumb:2/1/1/0.50]"},
		{"Admin", admin, "[acme/ocr:1/1/0/0.00 acme/thumb:3/2/1/0.33 globex/thumb:2/1/1/0.50]"},
		{"AdminForGlobex", &api.Client{BaseURL: e.ts.URL, Token: adminToken, Tenant: "globex"}, "[globex/thumb:2/1/1/0.50]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := tc.c.FunctionStats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := totalsString(rows); got != tc.want {
				t.Fatalf("GET /v1/stats/functions = %s, want %s", got, tc.want)
			}
		})
	}
	t.Run("AddsUpToStats", func(t *testing.T) {
		rows, _ := acme.FunctionStats(ctx)
		st, err := acme.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var events, runs, hits int64
		var saved float64
		for _, r := range rows {
			events, runs, hits, saved = events+r.Events, runs+r.Runs, hits+r.Hits, saved+r.SavedMS
		}
		if events != st.Events || runs != st.Runs || hits != st.Hits || saved != st.SavedMS {
			t.Fatalf("acme's functions add up to %d events, %d runs, %d hits, %v ms saved; /v1/stats says %+v", events, runs, hits, saved, st)
		}
	})
	t.Run("JSON", func(t *testing.T) {
		code, body := e.do(t, "GET", "/v1/stats/functions", otherToken, nil)
		var rows []map[string]any
		if err := json.Unmarshal([]byte(body), &rows); code != http.StatusOK || err != nil || len(rows) != 1 {
			t.Fatalf("GET /v1/stats/functions: %d %s, %v", code, body, err)
		}
		var keys []string
		for k := range rows[0] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := "[dead_letters deletes errors events function function_ms hit_rate hits runs saved_ms skipped tenant waits]"
		if fmt.Sprint(keys) != want {
			t.Fatalf("a row has the fields %v, want %s", keys, want)
		}
		if rows[0]["tenant"] != "globex" || rows[0]["function"] != "thumb" || rows[0]["hit_rate"] != 0.5 {
			t.Fatalf("row %v", rows[0])
		}
	})
	t.Run("NoneIsEmptyArray", func(t *testing.T) {
		other := newEnv(t, setup{})
		if code, body := other.do(t, "GET", "/v1/stats/functions", acmeToken, nil); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
			t.Fatalf("GET /v1/stats/functions without activations: %d %s, want []", code, body)
		}
	})
}

// seriesFixture adds activations of acme (functions f and g) and globex
// started at various minutes before now, and returns them.
func seriesFixture(t *testing.T, e *env) []activation.Record {
	t.Helper()
	now := time.Now().UTC()
	var recs []activation.Record
	for i, r := range []struct {
		tenant, fn string
		ago        time.Duration
		d          activation.Decision
	}{
		{"acme", "f", 0, activation.Miss},
		{"acme", "f", 10 * time.Second, activation.Hit},
		{"acme", "g", 20 * time.Second, activation.Wait},
		{"acme", "f", time.Minute, activation.Error},
		{"acme", "g", 2 * time.Minute, activation.Miss},
		{"acme", "f", 2*time.Minute + 5*time.Second, activation.Skipped},
		{"acme", "f", 30 * time.Minute, activation.Hit},
		{"acme", "f", 59 * time.Minute, activation.Miss},
		{"acme", "f", 90 * time.Minute, activation.Miss}, // before the default window
		{"globex", "f", 0, activation.Miss},
		{"globex", "f", time.Minute, activation.Error},
	} {
		rec := activation.Record{ID: fmt.Sprintf("s-%02d", i), Tenant: r.tenant, Function: r.fn, Decision: r.d, Start: now.Add(-r.ago)}
		if err := e.idx.AddActivation(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// checkSeries checks s against recs (of the caller's tenant and function)
// in s's own window: minutes entries a minute apart ending at the minute
// the request was served in (between asked and now).
func checkSeries(t *testing.T, s api.Series, recs []activation.Record, minutes int, asked time.Time) {
	t.Helper()
	if len(s.Minutes) != minutes {
		t.Fatalf("series has %d minutes, want %d", len(s.Minutes), minutes)
	}
	last := s.Minutes[minutes-1].T
	if last.Before(asked.Truncate(time.Minute)) || last.After(time.Now()) || last.Second() != 0 || last.Nanosecond() != 0 || last.Location() != time.UTC {
		t.Fatalf("the last minute starts at %s; want the UTC minute of the request, made at %s", last, asked)
	}
	first := s.Minutes[0].T
	want := make([]api.SeriesPoint, minutes)
	for i := range want {
		want[i].T = first.Add(time.Duration(i) * time.Minute)
		if !s.Minutes[i].T.Equal(want[i].T) {
			t.Fatalf("minute %d starts at %s, want %s (oldest first, a minute apart)", i, s.Minutes[i].T, want[i].T)
		}
	}
	// Each record counts in the entry of the UTC minute it started in
	// (one started after the last minute, in the last), found by its
	// start time rather than by the handler's arithmetic.
	byMinute := map[time.Time]*api.SeriesPoint{}
	for i := range want {
		byMinute[want[i].T] = &want[i]
	}
	for _, r := range recs {
		p, ok := byMinute[r.Start.UTC().Truncate(time.Minute)]
		switch {
		case ok:
		case r.Start.After(last):
			p = &want[minutes-1]
		default:
			continue // before the window
		}
		switch r.Decision {
		case activation.Miss:
			p.Runs++
		case activation.Hit, activation.Wait:
			p.Hits++
		case activation.Error:
			p.Errors++
		}
	}
	for i := range want {
		if g, w := s.Minutes[i], want[i]; g.Runs != w.Runs || g.Hits != w.Hits || g.Errors != w.Errors {
			t.Errorf("minute %s: %d runs, %d hits, %d errors; want %d, %d, %d", g.T.Format(time.RFC3339), g.Runs, g.Hits, g.Errors, w.Runs, w.Hits, w.Errors)
		}
	}
}

// select keeps the records of tenant (and fn, if set).
func selectRecs(recs []activation.Record, tenant, fn string) []activation.Record {
	var out []activation.Record
	for _, r := range recs {
		if r.Tenant == tenant && (fn == "" || r.Function == fn) {
			out = append(out, r)
		}
	}
	return out
}

// TestSeries: GET /v1/series counts the caller's runs, hits (waits
// included) and errors per minute, oldest first, zero-filled.
func TestSeries(t *testing.T) {
	e := newEnv(t, setup{})
	recs := seriesFixture(t, e)
	ctx := t.Context()
	acme := &api.Client{BaseURL: e.ts.URL, Token: acmeToken}
	globex := &api.Client{BaseURL: e.ts.URL, Token: otherToken}
	for _, tc := range []struct {
		name     string
		c        *api.Client
		minutes  int
		fn       string
		want     []activation.Record
		wantMins int
	}{
		{"Default", acme, 0, "", selectRecs(recs, "acme", ""), api.DefaultSeriesMinutes},
		{"Function", acme, 60, "g", selectRecs(recs, "acme", "g"), 60},
		{"Short", acme, 2, "", selectRecs(recs, "acme", ""), 2},
		{"Day", acme, api.MaxSeriesMinutes, "", selectRecs(recs, "acme", ""), api.MaxSeriesMinutes},
		{"OtherTenant", globex, 60, "", selectRecs(recs, "globex", ""), 60},
		{"OtherTenantsFunction", globex, 60, "g", nil, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := time.Now().UTC()
			s, err := tc.c.Series(ctx, tc.minutes, tc.fn)
			if err != nil {
				t.Fatal(err)
			}
			if !s.Complete {
				t.Error("complete = false for a window well under the scan cap")
			}
			checkSeries(t, s, tc.want, tc.wantMins, asked)
		})
	}
	t.Run("JSON", func(t *testing.T) {
		code, body := e.do(t, "GET", "/v1/series?minutes=3", otherToken, nil)
		var s struct {
			Minutes  []map[string]any `json:"minutes"`
			Complete *bool            `json:"complete"`
		}
		if err := json.Unmarshal([]byte(body), &s); code != http.StatusOK || err != nil || len(s.Minutes) != 3 || s.Complete == nil {
			t.Fatalf("GET /v1/series?minutes=3: %d %s, %v", code, body, err)
		}
		for _, m := range s.Minutes {
			ts, _ := m["t"].(string)
			at, err := time.Parse(time.RFC3339, ts)
			if len(m) != 4 || err != nil || at.Second() != 0 || !strings.HasSuffix(ts, ":00Z") {
				t.Fatalf("minute %v: want t (RFC 3339, a UTC minute), runs, hits, errors", m)
			}
		}
	})
	t.Run("BadMinutes", func(t *testing.T) {
		for _, v := range []string{"0", "-1", "1441", "an hour", "1.5"} {
			code, body := e.do(t, "GET", "/v1/series?minutes="+url.QueryEscape(v), acmeToken, nil)
			if code != http.StatusBadRequest || !strings.Contains(body, "minutes must be an integer from 1 to 1440") {
				t.Errorf("minutes=%s: %d %s, want 400 saying what is expected", v, code, body)
			}
		}
	})
	t.Run("Capped", func(t *testing.T) {
		api.SetSeriesScanCapForTest(t, 3)
		asked := time.Now().UTC()
		s, err := acme.Series(ctx, 60, "")
		if err != nil {
			t.Fatal(err)
		}
		if s.Complete {
			t.Fatal("complete = true with more activations in the window than the scan cap")
		}
		// The newest three are counted.
		checkSeries(t, s, selectRecs(recs, "acme", "")[:3], 60, asked)
		api.SetSeriesScanCapForTest(t, 8) // exactly acme's activations in the window
		if s, err := acme.Series(ctx, 60, ""); err != nil || !s.Complete {
			t.Fatalf("complete = %v, %v with as many activations as the cap; want true", s.Complete, err)
		}
	})
}

// TestActivationFilters: GET /v1/activations?decision= and errors=1 keep
// the matching records of the caller's tenant, newest first, at most limit.
func TestActivationFilters(t *testing.T) {
	e := newEnv(t, setup{})
	ctx := t.Context()
	start := time.Now().UTC().Add(-time.Hour)
	for i, r := range []activation.Record{
		{Tenant: "acme", Function: "f", Decision: activation.Miss},
		{Tenant: "acme", Function: "f", Decision: activation.Hit},
		{Tenant: "acme", Function: "g", Decision: activation.Wait},
		{Tenant: "acme", Function: "f", Decision: activation.Error, Error: "boom"},
		{Tenant: "acme", Function: "g", Decision: activation.Error, Error: "boom", DeadLetter: true},
		{Tenant: "acme", Function: "f", Decision: activation.Skipped},
		{Tenant: "acme", Function: "f", Decision: activation.Hit},
		{Tenant: "globex", Function: "f", Decision: activation.Error, Error: "boom"},
		{Tenant: "globex", Function: "f", Decision: activation.Hit},
	} {
		r.ID, r.Start = fmt.Sprintf("a-%d", i), start.Add(time.Duration(i)*time.Second)
		if err := e.idx.AddActivation(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	acme := &api.Client{BaseURL: e.ts.URL, Token: acmeToken}
	globex := &api.Client{BaseURL: e.ts.URL, Token: otherToken}
	admin := &api.Client{BaseURL: e.ts.URL, Token: adminToken}
	for _, tc := range []struct {
		name string
		c    *api.Client
		q    api.ActivationQuery
		want string
	}{
		{"Hit", acme, api.ActivationQuery{Decision: activation.Hit}, "[a-6 a-1]"},
		{"Wait", acme, api.ActivationQuery{Decision: activation.Wait}, "[a-2]"},
		{"Miss", acme, api.ActivationQuery{Decision: activation.Miss}, "[a-0]"},
		{"Skipped", acme, api.ActivationQuery{Decision: activation.Skipped}, "[a-5]"},
		{"Errors", acme, api.ActivationQuery{ErrorsOnly: true}, "[a-4 a-3]"},
		{"ErrorsOfFunction", acme, api.ActivationQuery{ErrorsOnly: true, Function: "g"}, "[a-4]"},
		{"DecisionAndErrors", acme, api.ActivationQuery{ErrorsOnly: true, Decision: activation.Hit}, "[]"},
		{"Limit", acme, api.ActivationQuery{Decision: activation.Hit, Limit: 1}, "[a-6]"},
		{"Since", acme, api.ActivationQuery{Decision: activation.Hit, Since: start.Add(2 * time.Second)}, "[a-6]"},
		{"NoFilter", acme, api.ActivationQuery{Limit: 3}, "[a-6 a-5 a-4]"},
		{"OtherTenant", globex, api.ActivationQuery{ErrorsOnly: true}, "[a-7]"},
		{"Admin", admin, api.ActivationQuery{Decision: activation.Error}, "[a-7 a-4 a-3]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := tc.c.ListActivations(ctx, tc.q)
			if err != nil || ids(recs) != tc.want {
				t.Fatalf("ListActivations(%+v) = %s, %v; want %s", tc.q, ids(recs), err, tc.want)
			}
		})
	}
	t.Run("Invalid", func(t *testing.T) {
		for q, want := range map[string]string{
			"decision=done":    `decision must be one of [hit miss wait error skipped delete], got "done"`,
			"errors=sure":      `errors must be 1 or 0, got "sure"`,
			"decision=HIT":     `decision must be one of`,
			"errors=1&limit=0": `limit must be a positive integer`,
		} {
			code, body := e.do(t, "GET", "/v1/activations?"+q, acmeToken, nil)
			var msg api.Error
			json.Unmarshal([]byte(body), &msg)
			if code != http.StatusBadRequest || !strings.Contains(msg.Error, want) {
				t.Errorf("GET /v1/activations?%s: %d %s, want 400 with %q", q, code, body, want)
			}
		}
	})
	t.Run("EmptyIsArray", func(t *testing.T) {
		if code, body := e.do(t, "GET", "/v1/activations?decision=wait", otherToken, nil); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
			t.Fatalf("no match: %d %s, want []", code, body)
		}
	})
}
