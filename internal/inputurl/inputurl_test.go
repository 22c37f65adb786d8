package inputurl_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/inputurl"
)

// newServer mounts an input server as serve does and returns it with
// the test HTTP server's base URL.
func newServer(t *testing.T) *inputurl.Server {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	s, err := inputurl.New("http://" + srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(inputurl.Route, s)
	srv.Start()
	t.Cleanup(srv.Close)
	return s
}

func get(t *testing.T, u string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestInputURL_ServesUntilRevoked(t *testing.T) {
	s := newServer(t)
	data := []byte("the fingerprinted bytes")
	u, revoke := s.Publish(bytes.NewReader(data), int64(len(data)), "text/plain", time.Now().Add(time.Minute))
	if !strings.HasPrefix(u, s.Base()+"/v1/inputs/") || len(u)-len(s.Base()+"/v1/inputs/") < 43 {
		t.Fatalf("url %s: want %s/v1/inputs/ and a 32-byte token", u, s.Base())
	}
	resp, b := get(t, u)
	if resp.StatusCode != http.StatusOK || string(b) != string(data) || resp.ContentLength != int64(len(data)) || resp.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("GET: %s, %d bytes %q, type %q", resp.Status, resp.ContentLength, b, resp.Header.Get("Content-Type"))
	}
	resp, b = get(t, u, "Range", "bytes=4-16")
	if resp.StatusCode != http.StatusPartialContent || string(b) != "fingerprinted" {
		t.Fatalf("GET Range: %s %q, want 206 \"fingerprinted\"", resp.Status, b)
	}
	if resp, _ := get(t, u[:len(u)-1]+"x"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another token: %s, want 404", resp.Status)
	}
	revoke()
	revoke() // idempotent
	if resp, b := get(t, u); resp.StatusCode != http.StatusNotFound || bytes.Contains(b, data) {
		t.Errorf("after revoke: %s %q, want 404", resp.Status, b)
	}
}

func TestInputURL_ExpiresAtItsDeadline(t *testing.T) {
	s := newServer(t)
	u, revoke := s.Publish(strings.NewReader("x"), 1, "", time.Now().Add(50*time.Millisecond))
	defer revoke()
	if resp, _ := get(t, u); resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("before the deadline: %s type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	time.Sleep(100 * time.Millisecond)
	if resp, _ := get(t, u); resp.StatusCode != http.StatusNotFound {
		t.Errorf("after the deadline: %s, want 404", resp.Status)
	}
}

// blockingReader serves its first MiB, then waits for release.
type blockingReader struct {
	size    int64
	release chan struct{}
}

func (r *blockingReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= 1<<20 {
		<-r.release
	}
	n := min(int64(len(p)), r.size-off)
	clear(p[:n])
	if off+n == r.size {
		return int(n), io.EOF
	}
	return int(n), nil
}

// A stream in progress when the activation ends is cut: the reader gets
// fewer bytes than the Content-Length, never a complete-looking body.
func TestInputURL_RevokeCutsAStream(t *testing.T) {
	s := newServer(t)
	r := &blockingReader{size: 8 << 20, release: make(chan struct{})}
	u, revoke := s.Publish(r, r.size, "", time.Now().Add(time.Minute))
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	revoke()
	close(r.release)
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || 1024+n >= r.size {
		t.Fatalf("read %d of %d bytes, err %v: want the stream cut", 1024+n, r.size, err)
	}
}

func TestNew_RefusesABadPublicURL(t *testing.T) {
	for _, u := range []string{"", "ftp://h/", "http://", "dedupfn:8080", "http://h/?a=b"} {
		if _, err := inputurl.New(u); err == nil || !strings.Contains(err.Error(), "expected an http(s) base URL") {
			t.Errorf("New(%q): %v, want a clear error", u, err)
		}
	}
	for u, local := range map[string]bool{"http://127.0.0.1:8080": true, "http://localhost:1": true, "http://[::1]:80/": true,
		"http://0.0.0.0:8080": true, "https://dedupfn.example": false, "http://10.0.0.5:8080": false} {
		s, err := inputurl.New(u)
		if err != nil || s.Local() != local {
			t.Errorf("New(%q): local %v, err %v; want local %v", u, s != nil && s.Local(), err, local)
		}
	}
}
