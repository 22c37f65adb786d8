package httpserve_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/httpserve"
)

// short are limits a test can wait out: a body must move 300 bytes every
// 300 ms.
var short = httpserve.Limits{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond,
	MinRate: 1000, RateWindow: 300 * time.Millisecond}

// serve runs h behind NewServer(short) and returns its address.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv, err := httpserve.NewServer(h, short, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// readAllHandler answers 200 with the body's length, or 408 when reading
// it timed out.
var readAllHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.WriteHeader(http.StatusRequestTimeout)
		return
	}
	fmt.Fprint(w, n)
})

// closedWithin fails unless the server ends c (an answer, then EOF, or
// just EOF) within d. It returns the status answered (0 for none).
func closedWithin(t *testing.T, c net.Conn, d time.Duration) int {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	status := 0
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, nil); err == nil {
		status = resp.StatusCode
		io.Copy(io.Discard, resp.Body)
	}
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open %v later (err %v)", d, err)
	}
	return status
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestConnections_IdleAndHeaderTimeouts: a connection that sends nothing,
// one that sends part of its headers, and a keep-alive connection idle
// after its request are all closed by the server.
func TestConnections_IdleAndHeaderTimeouts(t *testing.T) {
	addr := serve(t, readAllHandler)
	t.Run("Nothing", func(t *testing.T) {
		closedWithin(t, dial(t, addr), 2*time.Second)
	})
	t.Run("PartialHeader", func(t *testing.T) {
		c := dial(t, addr)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n")
		closedWithin(t, c, 2*time.Second)
	})
	t.Run("IdleKeepAlive", func(t *testing.T) {
		c := dial(t, addr)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("idle keep-alive connection still open 2 s later (err %v)", err)
		}
	})
}

// TestConnections_SlowBodyCut: a body sent one byte every 100 ms (below
// 300 bytes per 300 ms) is cut: the handler's read times out.
func TestConnections_SlowBodyCut(t *testing.T) {
	addr := serve(t, readAllHandler)
	c := dial(t, addr)
	fmt.Fprintf(c, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	go func() {
		for range 1000 {
			if _, err := c.Write([]byte{'a'}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	if status := closedWithin(t, c, 3*time.Second); status != 0 && status != http.StatusRequestTimeout {
		t.Fatalf("slow body: status %d, want 408 or none", status)
	}
}

// paced is a reader of n bytes that yields chunk bytes every pause.
type paced struct {
	n, chunk int
	pause    time.Duration
}

func (p *paced) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	time.Sleep(p.pause)
	k := min(len(b), p.chunk, p.n)
	p.n -= k
	return k, nil
}

// TestConnections_LongBodiesAtRatePass: no fixed deadline: a request body
// and a response body that each take more than four windows, moving above
// the minimum rate, get through whole.
func TestConnections_LongBodiesAtRatePass(t *testing.T) {
	const size = 40 << 10 // 2 KiB every 50 ms: 2 s, 40 KB/s
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			readAllHandler.ServeHTTP(w, r)
			return
		}
		io.Copy(w, &paced{n: size, chunk: 2 << 10, pause: 50 * time.Millisecond})
	}))
	resp, err := http.Post("http://"+addr+"/", "application/octet-stream", &paced{n: size, chunk: 2 << 10, pause: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != fmt.Sprint(size) {
		t.Fatalf("long upload: status %d, body %.40q, want 200 %d", resp.StatusCode, b, size)
	}
	resp, err = http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("long download: %d bytes, %v, want %d", n, err, size)
	}
}

// TestConnections_SlowHandlerNotCut: time the handler spends busy, between
// reads or before writing, is not held against the client.
func TestConnections_SlowHandlerNotCut(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 10)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		time.Sleep(time.Second) // three windows
		rest, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		time.Sleep(time.Second)
		w.Write(bytes.Repeat([]byte("x"), len(buf)+len(rest)))
	}))
	resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader(strings.Repeat("y", 100)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) != 100 {
		t.Fatalf("slow handler: status %d, %d bytes (%.40q), want 200 and 100", resp.StatusCode, len(b), b)
	}
}

// TestConnections_StalledReaderCut: a client that stops reading a large
// response makes the handler's writes fail within a window or two, rather
// than holding the handler forever.
func TestConnections_StalledReaderCut(t *testing.T) {
	wrote := make(chan error, 1)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for range 1 << 14 { // 1 GiB: far more than socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}))
	c := dial(t, addr)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case err := <-wrote:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write to a stalled reader: %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler still writes to a client that stopped reading 5 s ago")
	}
}

func TestLimitsWithDefaults(t *testing.T) {
	l, err := httpserve.Limits{}.WithDefaults()
	if err != nil || l.ReadHeaderTimeout != httpserve.DefaultReadHeaderTimeout || l.IdleTimeout != httpserve.DefaultIdleTimeout ||
		l.MinRate != httpserve.DefaultMinRate || l.RateWindow != httpserve.DefaultRateWindow {
		t.Fatalf("zero limits: %+v, %v; want the defaults", l, err)
	}
	if _, err := (httpserve.Limits{IdleTimeout: -time.Second}).WithDefaults(); err == nil || !strings.Contains(err.Error(), "idle timeout must be >= 0, got -1s") {
		t.Fatalf("negative idle timeout: %v", err)
	}
}
