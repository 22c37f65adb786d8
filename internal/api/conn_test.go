package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/httpserve"
)

// serveLimited serves h as serve does, behind httpserve with short limits
// (bodies must move 1000 bytes a second, measured over 2 s), and
// returns its URL.
func serveLimited(t *testing.T, h http.Handler) string {
	t.Helper()
	srv, err := httpserve.NewServer(h, httpserve.Limits{MinRate: 1000, RateWindow: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// slowDeploy starts a deploy on a raw connection to base whose body
// (declared 4 KiB) arrives one byte every 5 s; its channel gets the
// response status, or 0 when the server closes the connection without
// one.
func slowDeploy(t *testing.T, base, name string) <-chan int {
	t.Helper()
	u, _ := url.Parse(base)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /v1/functions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n", u.Host, adminToken)
	body := []byte(`{"function":{"name":"` + name + `","runtime":"wasm","trigger":{"bucket":"dedup-in"},"output":{"bucket":"dedup-out"}},"code":"`)
	go func() {
		for _, b := range body {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(5 * time.Second)
		}
	}()
	done := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	return done
}

// TestConnections_SlowDeployBodiesDoNotBlockAdmin: two deploys whose
// bodies arrive one byte every 5 s do not hold the deploy slots: the
// admin's deploy completes within 1 s, and the slow ones are cut (on
// f13dda0 they held both slots and the admin's deploy waited for ever).
func TestConnections_SlowDeployBodiesDoNotBlockAdmin(t *testing.T) {
	e := newEnv(t, setup{})
	base := serveLimited(t, e.ts.Config.Handler)
	slow := []<-chan int{slowDeploy(t, base, "slow0"), slowDeploy(t, base, "slow1")}
	time.Sleep(300 * time.Millisecond) // both are reading their bodies
	j, _ := json.Marshal(deployReq(fnDef("quick", "wasm", "dedup-in", "dedup-out"), "x"))
	req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/v1/functions", bytes.NewReader(j))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	// Within a second: sooner than the slow bodies are cut, so they
	// must not have held the slots.
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("admin deploy while two slow deploys are in flight: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin deploy: status %d", resp.StatusCode)
	}
	for i, ch := range slow {
		select {
		case code := <-ch:
			if code != 0 && code != http.StatusRequestTimeout && code != http.StatusBadRequest {
				t.Errorf("slow deploy %d: status %d, want 408, 400 or a closed connection", i, code)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("slow deploy %d still open 5 s after the admin's deploy", i)
		}
	}
}
