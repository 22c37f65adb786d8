package s3server_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
	"github.com/minio/minio-go/v7/pkg/signer"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/s3server"
)

// emptySHA256 is the SHA-256 of the empty body every fuzzed request has.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// FuzzS3Request sends arbitrary method, path, query and header bytes,
// unsigned or signed with the right credentials (so that they get past
// authentication to the handlers and the posix backend), to an in-process
// built-in endpoint, and fails on any 5xx: bad input is the client's fault
// (4xx, or 501 for what the gateway does not implement), never an
// internal error.
//
// versitygw serves through fiber/fasthttp, not net/http, so there is no
// http.Handler to call: each request is written as raw HTTP/1.1 to the
// endpoint's loopback listener, which also fuzzes its HTTP parsing.
func FuzzS3Request(f *testing.F) {
	srv := startServer(f, filepath.Join(f.TempDir(), "data"), nil)
	c := newClient(f, srv)
	if err := c.MakeBucket(f.Context(), "fuzz"); err != nil {
		f.Fatal(err)
	}
	if _, err := c.Put(f.Context(), "fuzz", "obj", strings.NewReader("body"), 4, objects.PutOptions{}); err != nil {
		f.Fatal(err)
	}
	seeds := []struct {
		method, path, query, header string
		signed                      bool
	}{
		{"GET", "/fuzz/obj", "", "", true},
		{"GET", "/fuzz/obj", "", "", false},
		{"HEAD", "/fuzz/obj", "", "Range: bytes=0-1\n", true},
		{"GET", "/fuzz/bad\x00key", "", "", true},
		{"HEAD", "/fuzz/bad\x00key", "", "", true},
		{"PUT", "/fuzz/bad\x00key", "", "", true},
		{"DELETE", "/fuzz/bad\x00key", "", "", true},
		{"GET", "/fuzz/bad\xffkey", "", "", true},
		{"GET", "/fuzz/%zz", "", "", true},
		{"GET", "/fuzz/%00", "", "", false},
		{"GET", "/fuzz", "list-type=2&prefix=%00", "", true},
		{"GET", "/fuzz", "prefix=a\x00b&delimiter=/", "", true},
		{"PUT", "/fuzz/copy", "", "X-Amz-Copy-Source: fuzz/bad%00key\n", true},
		{"PUT", "/fuzz/copy", "", "X-Amz-Copy-Source: /fuzz/obj\nX-Amz-Meta-A: \x01\n", true},
		{"POST", "/fuzz/mp", "uploads", "", true},
		{"PUT", "/fuzz/mp", "partNumber=1&uploadId=../../x", "", true},
		{"GET", "/fuzz/obj", "versionId=%00", "", true},
		{"PUT", "/new\x00bucket", "", "", true},
		{"GET", "/", "", "", true},
		{"BREW", "/fuzz/obj", "acl", "If-Match: \"x\"\n", true},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, []byte(s.header), s.signed)
	}
	f.Fuzz(func(t *testing.T, method, path, query string, header []byte, signed bool) {
		raw, ok := buildRequest(srv.Endpoint(), method, path, query, header, signed)
		if !ok {
			t.Skip("not expressible as an HTTP/1.1 request")
		}
		status, body, err := roundTrip(srv.Endpoint(), method, raw)
		if err != nil {
			t.Fatalf("request %q: %v", raw, err)
		}
		// 501 Not Implemented is an answer about the request (a method or
		// S3 API the gateway does not have), not a server fault.
		if status >= 500 && status != http.StatusNotImplemented {
			t.Fatalf("request %q: status %d, want < 500; body:\n%s", raw, status, body)
		}
	})
}

// buildRequest renders one bodiless request as raw HTTP/1.1, signed with
// the test credentials when signed is set. ok is false when method is not
// an HTTP token.
func buildRequest(endpoint, method, path, query string, header []byte, signed bool) (raw []byte, ok bool) {
	if method == "" || !isToken(method) {
		return nil, false
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	h := http.Header{}
	for _, line := range strings.Split(string(header), "\n") {
		name, value, found := strings.Cut(strings.TrimSuffix(line, "\r"), ":")
		if !found || !isToken(name) || strings.ContainsAny(value, "\r\n") {
			continue
		}
		switch http.CanonicalHeaderKey(name) {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Authorization", "X-Amz-Date", "X-Amz-Content-Sha256":
			continue // set below: they frame and sign the request
		}
		h.Add(name, strings.TrimLeft(value, " "))
	}
	u := &url.URL{Scheme: "http", Host: endpoint, Path: path, RawQuery: query}
	target := path
	if !isRequestTarget(target) {
		target = s3utils.EncodePath(path)
	}
	if signed {
		h.Set("X-Amz-Content-Sha256", emptySHA256)
		req := &http.Request{Method: method, URL: u, Header: h, Host: endpoint}
		req = signer.SignV4(*req, access, secret, "", s3server.DefaultRegion)
		h = req.Header
		// The signature covers the encoded path and the canonical query
		// (SignV4 has rewritten u.RawQuery to it): send exactly those.
		target = s3utils.EncodePath(path)
	}
	if u.RawQuery != "" {
		if !isRequestTarget(u.RawQuery) {
			return nil, false
		}
		target += "?" + u.RawQuery
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\nConnection: close\r\n", method, target, endpoint)
	for k, vs := range h {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	return b.Bytes(), true
}

// roundTrip sends raw on a new connection and returns the response status
// (0 if the server closed the connection without answering).
func roundTrip(endpoint, method string, raw []byte) (int, []byte, error) {
	conn, err := net.DialTimeout("tcp", endpoint, 5*time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(raw); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return 0, nil, fmt.Errorf("no answer: %w", err)
		}
		return 0, nil, nil // closed without an answer: refused, not an internal error
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return resp.StatusCode, body, fmt.Errorf("status %d, body never ends: %w", resp.StatusCode, err)
	}
	return resp.StatusCode, body, nil
}

// isToken reports whether s is an HTTP token (a method or header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// isRequestTarget reports whether s can be sent as is in a request line.
func isRequestTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '#' {
			return false
		}
	}
	return true
}
