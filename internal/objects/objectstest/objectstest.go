// Package objectstest is the conformance suite every objects.Store backend
// runs: objectstest.Run(t, newStore). A backend is done when it passes.
package objectstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/objects"
)

// Run runs the suite. newStore returns a store ready for use; the suite
// closes it. Each subtest works in its own freshly made bucket, so one
// store may be shared between subtests.
func Run(t *testing.T, newStore func(t testing.TB) objects.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s objects.Store, bucket string)
	}{
		{"PutGetRoundTrip", testPutGet},
		{"Stat", testStat},
		{"NotFound", testNotFound},
		{"MissingBucket", testMissingBucket},
		{"GetStaleETag", testStaleETag},
		{"Copy", testCopy},
		{"CopyMissingSource", testCopyMissing},
		{"CopyIfMatch", testCopyIfMatch},
		{"CopyReportsDeliveredSHA256", testCopySHA256},
		{"PutIfNoneMatch", testPutIfNoneMatch},
		{"PutIfMatch", testPutIfMatch},
		{"ListPrefix", testList},
		{"ListStartAfter", testListStartAfter},
		{"MakeBucketIdempotent", testMakeBucket},
		{"PresignGet", testPresignGet},
		{"PresignPut", testPresignPut},
		{"StreamedPutUnknownSize", testStreamed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			b := NewBucket(t, s)
			tc.fn(t, s, b)
		})
	}
}

// NewBucket makes a bucket with a unique name in s and returns the name.
func NewBucket(tb testing.TB, s objects.Store) string {
	tb.Helper()
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		tb.Fatal(err)
	}
	name := "t-" + hex.EncodeToString(r[:])
	if err := s.MakeBucket(ctx(tb), name); err != nil {
		tb.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}

func ctx(tb testing.TB) context.Context {
	if t, ok := tb.(interface{ Context() context.Context }); ok {
		return t.Context()
	}
	return context.Background()
}

func put(t *testing.T, s objects.Store, bucket, key, body string, opts objects.PutOptions) objects.Info {
	t.Helper()
	info, err := s.Put(t.Context(), bucket, key, strings.NewReader(body), int64(len(body)), opts)
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	return info
}

func wantMeta(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s metadata = %v, want %v", what, got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s metadata = %v, want %v", what, got, want)
			return
		}
	}
}

func testPutGet(t *testing.T, s objects.Store, b string) {
	body := "hello, dedupfn"
	meta := map[string]string{"Origin": "test", "run-id": "42"}
	pi := put(t, s, b, "dir/a b+c.txt", body, objects.PutOptions{ContentType: "text/plain", Metadata: meta})
	if pi.ETag == "" || strings.Contains(pi.ETag, `"`) {
		t.Errorf("put etag = %q, want non-empty without quotes", pi.ETag)
	}
	if pi.Size != int64(len(body)) {
		t.Errorf("put size = %d, want %d", pi.Size, len(body))
	}
	rc, info, err := s.Get(t.Context(), b, "dir/a b+c.txt", "", "")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != body {
		t.Errorf("body = %q, want %q", got, body)
	}
	if info.Size != int64(len(body)) || info.ContentType != "text/plain" || info.ETag != pi.ETag {
		t.Errorf("get info = %+v, want size %d, text/plain, etag %s", info, len(body), pi.ETag)
	}
	if info.Bucket != b || info.Key != "dir/a b+c.txt" {
		t.Errorf("get info names %s/%s, want %s/dir/a b+c.txt", info.Bucket, info.Key, b)
	}
	wantMeta(t, "get", info.Metadata, map[string]string{"origin": "test", "run-id": "42"})
	// Reading with the current etag succeeds.
	rc2, _, err := s.Get(t.Context(), b, "dir/a b+c.txt", "", pi.ETag)
	if err != nil {
		t.Fatalf("get with current etag: %v", err)
	}
	rc2.Close()
}

func testStat(t *testing.T, s objects.Store, b string) {
	pi := put(t, s, b, "k", "12345", objects.PutOptions{ContentType: "application/json", Metadata: map[string]string{"X": "y"}})
	info, err := s.Stat(t.Context(), b, "k")
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if info.Size != 5 || info.ETag != pi.ETag || info.ContentType != "application/json" {
		t.Errorf("stat = %+v, want size 5, etag %s, application/json", info, pi.ETag)
	}
	if info.Modified.IsZero() || time.Since(info.Modified) > time.Hour {
		t.Errorf("stat modified = %v, want about now", info.Modified)
	}
	wantMeta(t, "stat", info.Metadata, map[string]string{"x": "y"})
}

func testNotFound(t *testing.T, s objects.Store, b string) {
	if _, _, err := s.Get(t.Context(), b, "missing", "", ""); !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("get missing key: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(t.Context(), b, "missing"); !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("stat missing key: err = %v, want ErrNotFound", err)
	}
}

// testMissingBucket: a request to a bucket that does not exist is
// objects.ErrNoSuchBucket, which is permanent (retrying cannot create the
// bucket) and not ErrNotFound (the object is not merely gone), with one
// line naming the bucket and how to create it instead of the store's XML.
// A HEAD has no body to say which is missing: Stat may say ErrNotFound.
func testMissingBucket(t *testing.T, s objects.Store, b string) {
	missing := b + "-nope"
	wantNoSuchBucket(t, "get", missing, func() error {
		_, _, err := s.Get(t.Context(), missing, "k", "", "")
		return err
	})
	wantNoSuchBucket(t, "put", missing, func() error {
		_, err := s.Put(t.Context(), missing, "k", strings.NewReader("x"), 1, objects.PutOptions{})
		return err
	})
	wantNoSuchBucket(t, "list", missing, func() error {
		return s.List(t.Context(), missing, "", "", func(objects.Info) error { return nil })
	})
	src := put(t, s, b, "src", "copy me", objects.PutOptions{})
	wantNoSuchBucket(t, "copy", missing, func() error {
		_, err := s.Copy(t.Context(), src, missing, "k", objects.PutOptions{})
		return err
	})
	if _, err := s.Stat(t.Context(), missing, "k"); !errors.Is(err, objects.ErrNoSuchBucket) && !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("stat in missing bucket: err = %v, want ErrNoSuchBucket or ErrNotFound", err)
	}
	for bucket, want := range map[string]bool{b: true, missing: false} {
		if got, err := s.BucketExists(t.Context(), bucket); err != nil || got != want {
			t.Errorf("BucketExists(%s) = %v, %v; want %v", bucket, got, err, want)
		}
	}
}

// wantNoSuchBucket checks that op on the missing bucket fails as
// testMissingBucket says.
func wantNoSuchBucket(t *testing.T, op, bucket string, do func() error) {
	t.Helper()
	err := do()
	switch {
	case !errors.Is(err, objects.ErrNoSuchBucket) || !errors.Is(err, objects.ErrPermanent) || errors.Is(err, objects.ErrNotFound):
		t.Errorf("%s in missing bucket: err = %v, want ErrNoSuchBucket (permanent, not ErrNotFound)", op, err)
	case !strings.Contains(err.Error(), `bucket "`+bucket+`" does not exist`) || !strings.Contains(err.Error(), "s3 mb s3://"+bucket) ||
		strings.ContainsAny(err.Error(), "<\n"):
		t.Errorf("%s in missing bucket: message %q, want one line naming bucket %s and how to create it", op, err, bucket)
	}
}

func testStaleETag(t *testing.T, s objects.Store, b string) {
	first := put(t, s, b, "k", "version one", objects.PutOptions{})
	second := put(t, s, b, "k", "version two!", objects.PutOptions{})
	if first.ETag == second.ETag {
		t.Fatalf("two different bodies got the same etag %s", first.ETag)
	}
	rc, _, err := s.Get(t.Context(), b, "k", "", first.ETag)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("get with stale etag: err = %v, want ErrNotFound", err)
	}
}

func testCopy(t *testing.T, s objects.Store, b string) {
	put(t, s, b, "src", "copy me", objects.PutOptions{ContentType: "text/plain", Metadata: map[string]string{"old": "1"}})
	dst := NewBucket(t, s)
	info, err := s.Copy(t.Context(), objects.Info{Bucket: b, Key: "src"}, dst, "out/dst", objects.PutOptions{ContentType: "text/x-copied", Metadata: map[string]string{"New": "2"}})
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if info.Size != 7 || info.Key != "out/dst" || info.Bucket != dst {
		t.Errorf("copy info = %+v, want %s/out/dst size 7", info, dst)
	}
	rc, gi, err := s.Get(t.Context(), dst, "out/dst", "", "")
	if err != nil {
		t.Fatalf("get copy: %v", err)
	}
	defer rc.Close()
	body, _ := io.ReadAll(rc)
	if string(body) != "copy me" {
		t.Errorf("copied body = %q", body)
	}
	wantMeta(t, "copy", gi.Metadata, map[string]string{"new": "2"})
	if gi.ContentType != "text/x-copied" {
		t.Errorf("copy content type = %q, want text/x-copied", gi.ContentType)
	}
	// The source is untouched.
	si, err := s.Stat(t.Context(), b, "src")
	if err != nil {
		t.Fatalf("stat source: %v", err)
	}
	wantMeta(t, "source", si.Metadata, map[string]string{"old": "1"})
}

// testCopySHA256: a copy's Info.SHA256 is the SHA-256 of the bytes the
// store delivered to the destination (issue 17 item 3: a hit checks what
// it delivered, not the source's ETag), with and without If-Match.
func testCopySHA256(t *testing.T, s objects.Store, b string) {
	src := put(t, s, b, "src", "deliver me", objects.PutOptions{})
	want := sha256.Sum256([]byte("deliver me"))
	for _, etag := range []string{"", src.ETag} {
		info, err := s.Copy(t.Context(), objects.Info{Bucket: b, Key: "src", ETag: etag, Size: src.Size}, b, "dst", objects.PutOptions{})
		if err != nil {
			t.Fatalf("copy (If-Match %q): %v", etag, err)
		}
		if info.SHA256 != hex.EncodeToString(want[:]) {
			t.Errorf("copy (If-Match %q): SHA256 = %q, want %x", etag, info.SHA256, want)
		}
	}
}

// testPutIfNoneMatch: a conditional Put writes where no object is, and
// where one is fails with ErrExists (not ErrNotFound, not permanent),
// leaving it as it was; a conditional Copy is refused.
func testPutIfNoneMatch(t *testing.T, s objects.Store, b string) {
	cond := objects.PutOptions{IfNoneMatch: true, Metadata: map[string]string{"writer": "conditional"}}
	put(t, s, b, "absent", "written", cond)
	if got := read(t, s, b, "absent"); got != "written" {
		t.Errorf("conditional put to an absent key: body %q, want %q", got, "written")
	}
	before := put(t, s, b, "users", "the user's own", objects.PutOptions{})
	for _, key := range []string{"users", "absent"} {
		_, err := s.Put(t.Context(), b, key, strings.NewReader("overwrite"), 9, cond)
		if !errors.Is(err, objects.ErrExists) || errors.Is(err, objects.ErrNotFound) || errors.Is(err, objects.ErrPermanent) {
			t.Errorf("conditional put over %s: err = %v, want ErrExists only", key, err)
		}
	}
	if got := read(t, s, b, "users"); got != "the user's own" {
		t.Errorf("a refused conditional put changed the object: body %q", got)
	}
	if st, err := s.Stat(t.Context(), b, "users"); err != nil || st.ETag != before.ETag || st.Metadata["writer"] != "" {
		t.Errorf("after a refused conditional put: stat = %+v, %v; want the user's object (etag %s)", st, err, before.ETag)
	}
	_, err := s.Copy(t.Context(), objects.Info{Bucket: b, Key: "users"}, b, "copy", cond)
	if err == nil {
		t.Error("a conditional copy was accepted: no store here enforces If-None-Match on a copy")
	}
}

// testPutIfMatch: a Put conditional on an ETag replaces the object that
// has it, and fails with ErrExists over any other (one put there since),
// leaving that as it was; a Copy with the condition is refused.
func testPutIfMatch(t *testing.T, s objects.Store, b string) {
	seen := put(t, s, b, "k", "dedupfn's earlier output", objects.PutOptions{})
	put(t, s, b, "k", "replaced", objects.PutOptions{IfMatch: seen.ETag})
	if got := read(t, s, b, "k"); got != "replaced" {
		t.Errorf("put on the seen ETag: body %q, want %q", got, "replaced")
	}
	_, err := s.Put(t.Context(), b, "k", strings.NewReader("overwrite"), 9, objects.PutOptions{IfMatch: seen.ETag})
	if !errors.Is(err, objects.ErrExists) || errors.Is(err, objects.ErrPermanent) {
		t.Errorf("put on a stale ETag: err = %v, want ErrExists", err)
	}
	if got := read(t, s, b, "k"); got != "replaced" {
		t.Errorf("a refused put on a stale ETag changed the object: body %q", got)
	}
	if _, err := s.Copy(t.Context(), objects.Info{Bucket: b, Key: "k"}, b, "copy", objects.PutOptions{IfMatch: seen.ETag}); err == nil {
		t.Error("a copy conditional on its destination was accepted")
	}
}

// read returns the body of bucket/key.
func read(t *testing.T, s objects.Store, bucket, key string) string {
	t.Helper()
	rc, _, err := s.Get(t.Context(), bucket, key, "", "")
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return string(body)
}

func testCopyMissing(t *testing.T, s objects.Store, b string) {
	_, err := s.Copy(t.Context(), objects.Info{Bucket: b, Key: "missing"}, b, "dst", objects.PutOptions{})
	if !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("copy of missing source: err = %v, want ErrNotFound", err)
	}
}

// testCopyIfMatch: a copy of a source described by its ETag copies that
// version, with the answer's Info right without a read back, and fails
// with ErrNotFound once the source has changed, writing nothing.
func testCopyIfMatch(t *testing.T, s objects.Store, b string) {
	first := put(t, s, b, "src", "version one", objects.PutOptions{})
	info, err := s.Copy(t.Context(), first, b, "out/one", objects.PutOptions{ContentType: "text/x-one", Metadata: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatalf("copy of the current version: %v", err)
	}
	got, err := s.Stat(t.Context(), b, "out/one")
	if err != nil {
		t.Fatalf("stat copy: %v", err)
	}
	if info.Bucket != b || info.Key != "out/one" || info.Size != got.Size || info.ETag != got.ETag || info.ContentType != got.ContentType {
		t.Errorf("copy answered %+v; the copy is %+v", info, got)
	}
	wantMeta(t, "copy", info.Metadata, map[string]string{"k": "v"})

	put(t, s, b, "src", "version two!", objects.PutOptions{})
	_, err = s.Copy(t.Context(), first, b, "out/stale", objects.PutOptions{})
	if !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("copy of a changed source by its old ETag: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(t.Context(), b, "out/stale"); !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("a refused copy left out/stale behind (stat err = %v)", err)
	}
}

func testList(t *testing.T, s objects.Store, b string) {
	for _, k := range []string{"in/a", "in/b/c", "in/d", "other/e", "inx"} {
		put(t, s, b, k, "x", objects.PutOptions{})
	}
	var got []string
	err := s.List(t.Context(), b, "in/", "", func(i objects.Info) error {
		if i.Size != 1 || i.ETag == "" || i.Bucket != b {
			t.Errorf("listed %+v, want size 1 with etag in %s", i, b)
		}
		got = append(got, i.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if want := []string{"in/a", "in/b/c", "in/d"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("list in/ = %v, want %v (in key order)", got, want)
	}
	// An error from fn stops the listing and is returned.
	stop := errors.New("stop")
	n := 0
	err = s.List(t.Context(), b, "", "", func(objects.Info) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("list with failing fn: err = %v after %d calls, want stop after 1", err, n)
	}
}

// testListStartAfter: a listing is in byte order of the keys, across
// "directories" ("a-b" < "a/b" < "a0", though a file system walk visits
// a/ first), and resumes after any key, listed or not. (No key is also a
// "directory": file-system backends cannot hold both p/a and p/a/b.)
func testListStartAfter(t *testing.T, s objects.Store, b string) {
	keys := []string{"p/a-b", "p/a/b", "p/a/c", "p/a0", "p/b/x/y", "p/c"}
	for _, k := range keys {
		put(t, s, b, k, "x", objects.PutOptions{})
	}
	put(t, s, b, "q/outside", "x", objects.PutOptions{})
	list := func(after string) []string {
		t.Helper()
		var got []string
		if err := s.List(t.Context(), b, "p/", after, func(i objects.Info) error { got = append(got, i.Key); return nil }); err != nil {
			t.Fatalf("list after %q: %v", after, err)
		}
		return got
	}
	if got := list(""); fmt.Sprint(got) != fmt.Sprint(keys) {
		t.Fatalf("list p/ = %v, want %v (byte order)", got, keys)
	}
	for _, tc := range []struct{ after, want string }{
		{"p/a-b", "[p/a/b p/a/c p/a0 p/b/x/y p/c]"},
		{"p/a/b", "[p/a/c p/a0 p/b/x/y p/c]"},
		{"p/a/bb", "[p/a/c p/a0 p/b/x/y p/c]"}, // not a key: resumes where it would sort
		{"p/a/c", "[p/a0 p/b/x/y p/c]"},        // the last key of a "directory"
		{"p/b", "[p/b/x/y p/c]"},
		{"p/c", "[]"},
		{"a", fmt.Sprint(keys)}, // before the prefix: everything under it
	} {
		if got := fmt.Sprint(list(tc.after)); got != tc.want {
			t.Errorf("list p/ after %q = %s, want %s", tc.after, got, tc.want)
		}
	}
	// Paging by hand (stop, resume after the last key seen) sees every key once.
	var paged []string
	after := ""
	for range len(keys) + 1 {
		var page []string
		full := errors.New("page full")
		err := s.List(t.Context(), b, "p/", after, func(i objects.Info) error {
			if page = append(page, i.Key); len(page) == 2 {
				return full
			}
			return nil
		})
		if err != nil && !errors.Is(err, full) {
			t.Fatalf("list after %q: %v", after, err)
		}
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	if fmt.Sprint(paged) != fmt.Sprint(keys) {
		t.Errorf("paged listing = %v, want %v", paged, keys)
	}
}

func testMakeBucket(t *testing.T, s objects.Store, b string) {
	if err := s.MakeBucket(t.Context(), b); err != nil {
		t.Errorf("second make bucket: %v", err)
	}
	put(t, s, b, "k", "still here", objects.PutOptions{})
	if err := s.MakeBucket(t.Context(), b); err != nil {
		t.Errorf("make bucket over a non-empty bucket: %v", err)
	}
	if _, err := s.Stat(t.Context(), b, "k"); err != nil {
		t.Errorf("object lost after make bucket: %v", err)
	}
}

func testPresignGet(t *testing.T, s objects.Store, b string) {
	put(t, s, b, "p/get me", "presigned body", objects.PutOptions{})
	u, err := s.PresignGet(t.Context(), b, "p/get me", time.Minute)
	if err != nil {
		t.Fatalf("presign get: %v", err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET presigned: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "presigned body" {
		t.Errorf("GET presigned = %d %q, want 200 %q", resp.StatusCode, body, "presigned body")
	}
}

func testPresignPut(t *testing.T, s objects.Store, b string) {
	u, err := s.PresignPut(t.Context(), b, "p/put", time.Minute)
	if err != nil {
		t.Fatalf("presign put: %v", err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, u, strings.NewReader("uploaded"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT presigned: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT presigned = %d %s, want 200", resp.StatusCode, body)
	}
	rc, _, err := s.Get(t.Context(), b, "p/put", "", "")
	if err != nil {
		t.Fatalf("get presigned upload: %v", err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	if string(got) != "uploaded" {
		t.Errorf("presigned upload body = %q, want %q", got, "uploaded")
	}
}

// testStreamed writes 20 MiB of unknown size (more than one part) and
// checks the bytes that come back by hash, never holding both in memory.
func testStreamed(t *testing.T, s objects.Store, b string) {
	const size = 20 << 20
	src := io.LimitReader(rand.Reader, size)
	h := sha256.New()
	// Hide the size: no Len/Seek, so the store sees a plain stream.
	info, err := s.Put(t.Context(), b, "big", struct{ io.Reader }{io.TeeReader(src, h)}, -1, objects.PutOptions{ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatalf("streamed put: %v", err)
	}
	want := h.Sum(nil)
	if info.Size != size {
		t.Errorf("streamed put size = %d, want %d", info.Size, size)
	}
	rc, gi, err := s.Get(t.Context(), b, "big", "", info.ETag)
	if err != nil {
		t.Fatalf("get streamed: %v", err)
	}
	defer rc.Close()
	h2 := sha256.New()
	n, err := io.Copy(h2, rc)
	if err != nil {
		t.Fatalf("read streamed: %v", err)
	}
	if n != size || gi.Size != size || !bytes.Equal(h2.Sum(nil), want) {
		t.Errorf("streamed object read back %d bytes (info %d), hash match %v; want %d bytes, same hash", n, gi.Size, bytes.Equal(h2.Sum(nil), want), size)
	}
}
