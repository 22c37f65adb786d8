package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/registry"
)

func ids(recs []activation.Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, r.ID)
	}
	return fmt.Sprint(s)
}

func TestActivationsSince(t *testing.T) {
	e := newEnv(t, setup{})
	ctx := t.Context()
	now := time.Now().UTC()
	for i, ago := range []time.Duration{3 * time.Hour, time.Hour, time.Minute} {
		r := activation.Record{ID: fmt.Sprintf("act-%d", i), Tenant: "acme", Function: "f", Decision: activation.Miss, Start: now.Add(-ago)}
		if err := e.idx.AddActivation(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	c := &api.Client{BaseURL: e.ts.URL, Token: acmeToken}
	for _, tc := range []struct {
		name  string
		since time.Time
		want  string
	}{
		{"All", time.Time{}, "[act-2 act-1 act-0]"},
		{"TwoHours", now.Add(-2 * time.Hour), "[act-2 act-1]"},
		{"Inclusive", now.Add(-time.Hour), "[act-2 act-1]"},
		{"Future", now.Add(time.Minute), "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := c.ListActivations(ctx, api.ActivationQuery{Since: tc.since})
			if err != nil || ids(recs) != tc.want {
				t.Fatalf("since %v: %s, %v; want %s", tc.since, ids(recs), err, tc.want)
			}
		})
	}
	t.Run("Invalid", func(t *testing.T) {
		code, body := e.do(t, "GET", "/v1/activations?since=yesterday", acmeToken, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, "since must be an RFC 3339 time") {
			t.Fatalf("bad since: %d %s", code, body)
		}
	})
}

func TestDLQ(t *testing.T) {
	e := newEnv(t, setup{})
	ctx := t.Context()
	store.MakeBucket(ctx, "acme-in") // may exist: the store is the test process's
	store.MakeBucket(ctx, "acme-out")
	info, err := store.Put(ctx, "acme-in", "dlq.txt", strings.NewReader("data"), 4, objects.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Deploy(ctx, registry.Function{Tenant: "acme", Name: "f", Runtime: "test",
		Trigger: registry.Trigger{Bucket: "acme-in"}, Output: registry.Output{Bucket: "acme-out"}}, []byte("code")); err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Minute)
	for _, r := range []activation.Record{
		{ID: "dead-0001", Tenant: "acme", Function: "f", Event: activation.Object{Bucket: "acme-in", Key: "dlq.txt", ETag: info.ETag},
			Decision: activation.Error, Error: "boom", ErrorClass: "function", DeadLetter: true, Start: start},
		{ID: "ok-1", Tenant: "acme", Function: "f", Decision: activation.Miss, Start: start.Add(time.Second)},
		{ID: "dead-g", Tenant: "globex", Function: "g", Event: activation.Object{Bucket: "globex-in", Key: "x"},
			Decision: activation.Error, DeadLetter: true, Start: start.Add(2 * time.Second)},
	} {
		if err := e.idx.AddActivation(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	admin := &api.Client{BaseURL: e.ts.URL, Token: adminToken}
	acme := &api.Client{BaseURL: e.ts.URL, Token: acmeToken}
	globex := &api.Client{BaseURL: e.ts.URL, Token: otherToken}
	list := func(t *testing.T, c *api.Client) string {
		t.Helper()
		recs, err := c.DeadLetters(ctx, api.ActivationQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return ids(recs)
	}

	t.Run("List", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			c    *api.Client
			want string
		}{{"Admin", admin, "[dead-g dead-0001]"}, {"Acme", acme, "[dead-0001]"}, {"Globex", globex, "[dead-g]"}} {
			if got := list(t, tc.c); got != tc.want {
				t.Errorf("%s: dead letters %s, want %s", tc.name, got, tc.want)
			}
		}
	})
	t.Run("OtherTenantsIsNotFound", func(t *testing.T) {
		if _, err := globex.Retry(ctx, "dead-0001"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
			t.Fatalf("globex retries acme's dead letter: %v, want 404", err)
		}
	})
	t.Run("NotDeadLetterIsConflict", func(t *testing.T) {
		if _, err := acme.Retry(ctx, "ok-1"); err == nil || !strings.Contains(err.Error(), "HTTP 409") {
			t.Fatalf("retry of a success: %v, want 409", err)
		}
	})
	t.Run("NeedsJSON", func(t *testing.T) {
		code, body := e.do(t, "POST", "/v1/dlq/dead-0001/retry", acmeToken, "", "Content-Type", "text/plain")
		if code != http.StatusUnsupportedMediaType {
			t.Fatalf("retry as text/plain: %d %s, want 415", code, body)
		}
	})
	t.Run("Retry", func(t *testing.T) {
		rec, err := acme.Retry(ctx, "dead-0001")
		if err != nil {
			t.Fatal(err)
		}
		if rec.ID == "dead-0001" || rec.RetryOf != "dead-0001" || rec.DeadLetter || rec.Decision == activation.Error {
			t.Fatalf("retry = %+v; want a new successful activation of dead-0001", rec)
		}
		if got := list(t, acme); got != "[]" {
			t.Fatalf("after the retry acme's dead letters are %s, want none", got)
		}
		if got := list(t, admin); got != "[dead-g]" {
			t.Fatalf("after the retry all dead letters are %s, want [dead-g]", got)
		}
	})
}
