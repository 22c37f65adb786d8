package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/source"
	"github.com/dedupfn/dedupfn/internal/source/webhook"
)

const token = "s3cr3t-token"

func minioPayload(name, bucket, key string, size int64) []byte {
	return fmt.Appendf(nil, `{"EventName":%q,"Key":%q,"Records":[{"eventVersion":"2.0","eventSource":"minio:s3",`+
		`"eventTime":"2025-11-25T21:14:03.512Z","eventName":%q,"s3":{"s3SchemaVersion":"1.0","configurationId":"Config",`+
		`"bucket":{"name":%q,"arn":"arn:aws:s3:::%s"},"object":{"key":%q,"size":%d,"eTag":"0cc175b9c0f1b6a831c399e269772661","sequencer":"187B2D0000A1B2C3"}}}]}`,
		name, bucket+"/"+key, name, bucket, bucket, url.QueryEscape(key), size)
}

func TestOpen_Errors(t *testing.T) {
	tests := []struct {
		name string
		url  string
		opts source.Options
		err  string
	}{
		{"NoMux", "webhook:", source.Options{Token: token}, "webhook: needs the API server's mux"},
		{"NoToken", "webhook:", source.Options{Mux: http.NewServeMux()}, "webhook: a bearer token is required"},
		{"Params", "webhook:?x=1", source.Options{Mux: http.NewServeMux(), Token: token}, "webhook: expected the URL webhook: with nothing after it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := source.Open(t.Context(), tt.url, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.err)
			}
		})
	}
}

type fixture struct {
	srv     *httptest.Server
	src     source.Source
	mu      sync.Mutex
	evs     []event.Event
	bad     [][]byte
	handler func(ctx context.Context, ev event.Event) error
}

// newFixture mounts a webhook source on a test server; run starts Run.
func newFixture(t *testing.T, run bool) *fixture {
	t.Helper()
	f := &fixture{}
	mux := http.NewServeMux()
	src, err := source.Open(t.Context(), "webhook:", source.Options{
		Mux: mux, Token: token, Concurrency: 2,
		OnMalformed: func(_ context.Context, payload []byte, err error) {
			if !errors.Is(err, event.ErrMalformed) {
				t.Errorf("OnMalformed err does not wrap ErrMalformed: %v", err)
			}
			f.mu.Lock()
			f.bad = append(f.bad, payload)
			f.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.src = src
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	if run {
		errc := make(chan error, 1)
		go func() {
			errc <- src.Run(context.Background(), func(ctx context.Context, ev event.Event) error {
				f.mu.Lock()
				h := f.handler
				f.mu.Unlock()
				if h != nil {
					if err := h(ctx, ev); err != nil {
						return err
					}
				}
				f.mu.Lock()
				f.evs = append(f.evs, ev)
				f.mu.Unlock()
				return nil
			})
		}()
		t.Cleanup(func() {
			src.Close()
			if err := <-errc; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		// Run is asynchronous: wait until it accepts requests.
		deadline := time.Now().Add(5 * time.Second)
		for f.post(t, "Bearer "+token, []byte(`{"Records":[]}`)).StatusCode != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatal("webhook source not running after 5s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	} else {
		t.Cleanup(func() { src.Close() })
	}
	return f
}

type response struct {
	StatusCode int
	Body       string
}

func (f *fixture) post(t *testing.T, auth string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+webhook.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(b)}
}

func TestWebhook_Auth(t *testing.T) {
	f := newFixture(t, true)
	body := minioPayload("s3:ObjectCreated:Put", "images", "a.jpg", 1)
	for _, auth := range []string{"", "Bearer wrong", "Basic " + token, token, "Bearer"} {
		if r := f.post(t, auth, body); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d, want 401", auth, r.StatusCode)
		}
	}
	f.mu.Lock()
	n := len(f.evs)
	f.mu.Unlock()
	if n != 0 {
		t.Fatalf("unauthorized requests delivered %d events", n)
	}
	if r := f.post(t, "bearer "+token, body); r.StatusCode != http.StatusOK {
		t.Errorf("lower-case scheme: status %d %s, want 200", r.StatusCode, r.Body)
	}
}

func TestWebhook_NotRunning(t *testing.T) {
	f := newFixture(t, false)
	r := f.post(t, "Bearer "+token, minioPayload("s3:ObjectCreated:Put", "images", "a.jpg", 1))
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", r.StatusCode)
	}
}

func TestWebhook_DeliversMinIOEvent(t *testing.T) {
	f := newFixture(t, true)
	release := make(chan struct{})
	f.handler = func(ctx context.Context, ev event.Event) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	done := make(chan response, 1)
	go func() {
		done <- f.post(t, "Bearer "+token, minioPayload("s3:ObjectCreated:Put", "images", "holiday photos/Zürich 1.jpg", 42))
	}()
	// The response waits for the handler: MinIO must not consider the
	// event delivered before its activation is recorded.
	select {
	case r := <-done:
		t.Fatalf("responded %d before the handler returned", r.StatusCode)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	r := <-done
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status %d %s, want 200", r.StatusCode, r.Body)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.evs) != 1 {
		t.Fatalf("got %d events, want 1", len(f.evs))
	}
	ev := f.evs[0]
	if ev.Key != "holiday photos/Zürich 1.jpg" || ev.Bucket != "images" || ev.Size != 42 || ev.Source != "webhook" {
		t.Errorf("event = %+v", ev)
	}
}

// Issue 20: an object-removed event reaches the handler, named, with its
// key decoded and cleaned as a created event's is.
func TestWebhook_DeliversRemovedEvent(t *testing.T) {
	f := newFixture(t, true)
	for _, name := range []string{"s3:ObjectRemoved:Delete", "s3:ObjectRemoved:DeleteMarkerCreated"} {
		if r := f.post(t, "Bearer "+token, minioPayload(name, "images", "holiday photos/x/../Zürich 1.jpg", 0)); r.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d %s, want 200", name, r.StatusCode, r.Body)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.evs) != 2 {
		t.Fatalf("got %d events, want 2: %+v", len(f.evs), f.evs)
	}
	for i, name := range []string{"s3:ObjectRemoved:Delete", "s3:ObjectRemoved:DeleteMarkerCreated"} {
		ev := f.evs[i]
		if !ev.Removed() || ev.Name != name || ev.Key != "holiday photos/Zürich 1.jpg" || ev.Bucket != "images" || ev.Source != "webhook" {
			t.Errorf("event %d = %+v, want %s of images/holiday photos/Zürich 1.jpg", i, ev, name)
		}
	}
}

func TestWebhook_Responses(t *testing.T) {
	f := newFixture(t, true)
	f.handler = func(_ context.Context, ev event.Event) error {
		if ev.Key == "fails" {
			return errors.New("index unavailable")
		}
		return nil
	}
	tests := []struct {
		name     string
		body     []byte
		status   int
		contains string
		events   int
	}{
		{"Created", minioPayload("s3:ObjectCreated:Put", "b", "ok", 1), 200, "", 1},
		{"Delete", minioPayload("s3:ObjectRemoved:Delete", "b", "gone", 0), 200, "", 1},
		{"DeleteMarker", minioPayload("s3:ObjectRemoved:DeleteMarkerCreated", "b", "gone", 0), 200, "", 1},
		{"DeleteNoOP", minioPayload("s3:ObjectRemoved:NoOP", "b", "never", 0), 200, "", 0},
		{"Acl", minioPayload("s3:ObjectAcl:Put", "b", "ok", 1), 200, "", 0},
		{"TestEvent", []byte(`{"Service":"Amazon S3","Event":"s3:TestEvent"}`), 200, "", 0},
		{"Malformed", []byte(`{"Records":"nope"}`), 400, "Records must be an array", 0},
		{"NotJSON", []byte(`<xml/>`), 400, "expected a JSON object", 0},
		{"HandlerFails", minioPayload("s3:ObjectCreated:Put", "b", "fails", 1), 503, "index unavailable", 0},
		{"TooBig", append([]byte(`{"Records":[],"pad":"`), bytes.Repeat([]byte("x"), webhook.MaxBodyBytes)...), 413, "body larger than", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			before := len(f.evs)
			f.mu.Unlock()
			r := f.post(t, "Bearer "+token, tt.body)
			if r.StatusCode != tt.status || !strings.Contains(r.Body, tt.contains) {
				t.Errorf("got %d %q, want %d containing %q", r.StatusCode, r.Body, tt.status, tt.contains)
			}
			f.mu.Lock()
			got := len(f.evs) - before
			f.mu.Unlock()
			if got != tt.events {
				t.Errorf("delivered %d events, want %d", got, tt.events)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bad) != 2 {
		t.Errorf("OnMalformed called %d times, want 2", len(f.bad))
	}
}

func TestWebhook_CloseTwice(t *testing.T) {
	f := newFixture(t, true)
	if err := f.src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.src.Close(); err != nil {
		t.Fatal(err)
	}
	if r := f.post(t, "Bearer "+token, minioPayload("s3:ObjectCreated:Put", "b", "k", 1)); r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after Close: status %d, want 503", r.StatusCode)
	}
	if err := f.src.Run(t.Context(), func(context.Context, event.Event) error { return nil }); err == nil {
		t.Fatal("Run after Close succeeded")
	}
}
