package s3server_test

// versitygw runs one gateway per process, so no test here is parallel:
// each starts its own Server and closes it before the next begins.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/objectstest"
	"github.com/dedupfn/dedupfn/internal/objects/s3"
	"github.com/dedupfn/dedupfn/internal/objects/s3server"
	embeddedsrc "github.com/dedupfn/dedupfn/internal/source/embedded"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

const (
	access = "dedupfn-test"
	secret = "dedupfn-test-secret"
)

// recorder is a Publish hook that keeps events and can be told to fail.
type recorder struct {
	mu   sync.Mutex
	evs  []event.Event
	fail error
}

func (r *recorder) publish(_ context.Context, ev event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.evs = append(r.evs, ev)
	return nil
}

// discard accepts an event without keeping it (benchmarks).
func (r *recorder) discard(context.Context, event.Event) error { return nil }

func (r *recorder) events() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.evs...)
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

func startServer(t testing.TB, dir string, rec *recorder) *s3server.Server {
	t.Helper()
	cfg := s3server.Config{DataDir: dir, Addr: testutil.FreeAddr(t), AccessKey: access, SecretKey: secret}
	if rec != nil {
		cfg.Publish = rec.publish
	}
	srv, err := s3server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return srv
}

func newClient(t testing.TB, srv *s3server.Server) *s3.Client {
	t.Helper()
	c, err := s3.New(srv.Endpoint(), false, access, secret, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), &recorder{})
	objectstest.Run(t, func(t testing.TB) objects.Store { return newClient(t, srv) })
}

// TestPermanentStoreErrors: errors that retrying cannot cure (a refused
// key, a wrong secret) are objects.ErrPermanent, a missing bucket is
// ErrNotFound, and a stopped server is neither.
func TestPermanentStoreErrors(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	objectstest.RunErrors(t, objectstest.ErrorStores{
		Store: func(tb testing.TB) objects.Store { return newClient(tb, srv) },
		WrongSecret: func(tb testing.TB) objects.Store {
			c, err := s3.New(srv.Endpoint(), false, access, "wrong-secret", "", nil)
			if err != nil {
				tb.Fatal(err)
			}
			return c
		},
		Unreachable: func(tb testing.TB) objects.Store {
			c, err := s3.New(testutil.FreeAddr(tb), false, access, secret, "", nil)
			if err != nil {
				tb.Fatal(err)
			}
			return c
		},
	})
}

func TestWrongSecretIsForbidden(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), nil)
	mc, err := minio.New(srv.Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(access, "wrong-secret", ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	err = mc.MakeBucket(t.Context(), "forbidden", minio.MakeBucketOptions{})
	if got := minio.ToErrorResponse(err).StatusCode; got != http.StatusForbidden {
		t.Fatalf("make bucket with wrong secret: status %d (%v), want 403", got, err)
	}
	// And the right secret works on the same server.
	if err := newClient(t, srv).MakeBucket(t.Context(), "allowed"); err != nil {
		t.Fatalf("make bucket with right secret: %v", err)
	}
}

func TestPutPublishesOneEvent(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), rec)
	c := newClient(t, srv)
	if err := c.MakeBucket(t.Context(), "inbox"); err != nil {
		t.Fatal(err)
	}
	body := "a photo, say"
	ui, err := c.Minio().PutObject(t.Context(), "inbox", "dir/my photo+1.jpg", strings.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "image/jpeg", UserMetadata: map[string]string{"Camera": "X100"}})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	evs := rec.events()
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1: %+v", len(evs), evs)
	}
	ev := evs[0]
	if ev.Source != "embedded" || ev.Name != s3server.EventPut || ev.Bucket != "inbox" || ev.Key != "dir/my photo+1.jpg" {
		t.Errorf("event = %+v, want embedded %s in/dir/my photo+1.jpg", ev, s3server.EventPut)
	}
	if ev.ETag != strings.Trim(ui.ETag, `"`) || ev.Size != int64(len(body)) || ev.ContentType != "image/jpeg" {
		t.Errorf("event etag/size/type = %s/%d/%s, want %s/%d/image/jpeg", ev.ETag, ev.Size, ev.ContentType, ui.ETag, len(body))
	}
	if ev.Metadata["camera"] != "X100" || len(ev.Metadata) != 1 {
		t.Errorf("event metadata = %v, want camera=X100", ev.Metadata)
	}
	if ev.Time.IsZero() || time.Since(ev.Time) > time.Minute {
		t.Errorf("event time = %v, want about now", ev.Time)
	}
	if _, err := event.Normalize(ev); err != nil {
		t.Errorf("event does not normalize: %v", err)
	}
}

func TestCopyPublishesDestination(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), rec)
	c := newClient(t, srv)
	if err := c.MakeBucket(t.Context(), "inbox"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(t.Context(), "inbox", "src", strings.NewReader("12345"), 5, objects.PutOptions{Metadata: map[string]string{"old": "1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Copy(t.Context(), objects.Info{Bucket: "inbox", Key: "src"}, "inbox", "out/dst", objects.PutOptions{ContentType: "text/plain", Metadata: map[string]string{"New": "2"}}); err != nil {
		t.Fatal(err)
	}
	// A client cannot pass its copy off as dedupfn's output (which would
	// publish nothing): the mark is dropped and the copy publishes. (The
	// store's in-process writes of real outputs publish nothing:
	// TestClientCannotSetDedupfnMetadata.)
	if _, err := c.Copy(t.Context(), objects.Info{Bucket: "inbox", Key: "src"}, "inbox", "out/output", objects.PutOptions{Metadata: map[string]string{"Dedupfn-Output-Of": "abc"}}); err != nil {
		t.Fatal(err)
	}
	evs := rec.events()
	if len(evs) != 3 || evs[2].Key != "out/output" || len(evs[2].Metadata) != 0 {
		t.Fatalf("got %d events, want 3 (put, copy, the client's copy with the mark dropped): %+v", len(evs), evs)
	}
	ev := evs[1]
	if ev.Name != s3server.EventCopy || ev.Key != "out/dst" || ev.Size != 5 {
		t.Errorf("copy event = %+v, want %s out/dst size 5", ev, s3server.EventCopy)
	}
	if ev.Metadata["new"] != "2" || ev.Metadata["old"] != "" {
		t.Errorf("copy event metadata = %v, want only new=2", ev.Metadata)
	}
}

func TestPublishErrorFailsPut(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), rec)
	c := newClient(t, srv)
	if err := c.MakeBucket(t.Context(), "inbox"); err != nil {
		t.Fatal(err)
	}
	rec.setFail(errors.New("queue full"))
	// minio-go retries 5xx; give it a short deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := c.Minio().PutObject(ctx, "inbox", "k", strings.NewReader("x"), 1, minio.PutObjectOptions{})
	if err == nil {
		t.Fatal("put succeeded although publish failed")
	}
	if got := minio.ToErrorResponse(err).StatusCode; got < 500 {
		t.Errorf("put with failing publish: status %d (%v), want 5xx", got, err)
	}
	rec.setFail(nil)
	if _, err := c.Put(t.Context(), "inbox", "k", strings.NewReader("y"), 1, objects.PutOptions{}); err != nil {
		t.Fatalf("put after publish recovered: %v", err)
	}
	if n := len(rec.events()); n != 1 {
		t.Errorf("got %d events, want 1 (only the accepted put)", n)
	}
}

func TestAWSCLIMultipartUpload(t *testing.T) {
	aws := testutil.Tool(t, "DEDUPFN_AWS", "bin/aws")
	rec := &recorder{}
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), rec)
	if err := newClient(t, srv).MakeBucket(t.Context(), "uploads"); err != nil {
		t.Fatal(err)
	}
	const size = 20 << 20
	file := filepath.Join(t.TempDir(), "big.bin")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.CommandContext(t.Context(), aws, "--endpoint-url", srv.URL(), "--region", "us-east-1",
		"s3", "cp", file, "s3://uploads/in/big file.bin")
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+access, "AWS_SECRET_ACCESS_KEY="+secret,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("aws s3 cp: %v\n%s", err, out)
	}
	evs := rec.events()
	if len(evs) != 1 {
		t.Fatalf("got %d events, want exactly 1: %+v", len(evs), evs)
	}
	ev := evs[0]
	if ev.Name != s3server.EventComplete || ev.Bucket != "uploads" || ev.Key != "in/big file.bin" || ev.Size != size {
		t.Errorf("event = %+v, want %s uploads/in/big file.bin size %d", ev, s3server.EventComplete, size)
	}
	if !strings.Contains(ev.ETag, "-") {
		t.Errorf("event etag %q, want a multipart etag (md5-N)", ev.ETag)
	}
}

func TestDataSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	rec := &recorder{}
	first := startServer(t, dir, rec)
	c := newClient(t, first)
	if err := c.MakeBucket(t.Context(), "keep"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(t.Context(), "keep", "k", strings.NewReader("durable"), 7, objects.PutOptions{Metadata: map[string]string{"a": "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := first.Start(t.Context()); err == nil {
		t.Error("a closed server started again; want an error (start a new one)")
	}

	second := startServer(t, dir, rec)
	rc, info, err := newClient(t, second).Get(t.Context(), "keep", "k", "", "")
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	defer rc.Close()
	body, _ := io.ReadAll(rc)
	if string(body) != "durable" || info.Metadata["a"] != "b" {
		t.Errorf("after restart: body %q metadata %v, want durable a=b", body, info.Metadata)
	}
}

func TestEmbeddedScheme(t *testing.T) {
	rec := &recorder{}
	data := t.TempDir()
	st, err := objects.Open(t.Context(), "embedded:", objects.Options{
		DataDir: data, Addr: testutil.FreeAddr(t), AccessKey: access, SecretKey: secret, Publish: rec.publish,
	})
	if err != nil {
		t.Fatalf("open embedded: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.MakeBucket(t.Context(), "bkt"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(t.Context(), "bkt", "k", strings.NewReader("x"), 1, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.events()); n != 1 {
		t.Errorf("got %d events, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(data, "objects", "bkt", "k")); err != nil {
		t.Errorf("object not stored under <data>/objects: %v", err)
	}
	// dedupfn's own deletes (the pipeline removing outputs) publish
	// nothing, unlike a client's (TestDeletePublishesRemoved): the
	// pipeline follows them in process.
	if err := st.Delete(t.Context(), "bkt", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(t.Context(), "bkt", "k"); !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("stat after delete: %v, want ErrNotFound", err)
	}
	if evs := rec.events(); len(evs) != 1 || evs[0].Removed() {
		t.Errorf("events %+v, want only the put's", evs)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  s3server.Config
		want string
	}{
		{"RelativeDir", s3server.Config{DataDir: "data", Addr: "127.0.0.1:9000", AccessKey: "a", SecretKey: "s"}, "absolute"},
		{"NoAddr", s3server.Config{DataDir: "/tmp/x", AccessKey: "a", SecretKey: "s"}, "host:port"},
		{"PortZero", s3server.Config{DataDir: "/tmp/x", Addr: "127.0.0.1:0", AccessKey: "a", SecretKey: "s"}, "fixed port"},
		{"NoSecret", s3server.Config{DataDir: "/tmp/x", Addr: "127.0.0.1:9000", AccessKey: "a"}, "secret key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s3server.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%+v) = %v, want error containing %q", tc.cfg, err, tc.want)
			}
		})
	}
}

// TestUploadReachesEmbeddedQueue wires the endpoint to the embedded event
// queue the way `dedupfn serve` does: an upload is in the queue, with a
// sequencer, by the time the client has its answer.
func TestUploadReachesEmbeddedQueue(t *testing.T) {
	data := t.TempDir()
	q, err := embeddedsrc.OpenQueue(filepath.Join(data, embeddedsrc.FileName), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	st, err := objects.Open(t.Context(), "embedded:", objects.Options{
		DataDir: data, Addr: testutil.FreeAddr(t), AccessKey: access, SecretKey: secret, Publish: q.Publish,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.MakeBucket(t.Context(), "inbox"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(t.Context(), "inbox", "a.txt", strings.NewReader("abc"), 3, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Len(); err != nil || n != 1 {
		t.Fatalf("queue holds %d events (%v) right after the put, want 1", n, err)
	}
	got := make(chan event.Event, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go q.Run(ctx, func(_ context.Context, e event.Event) error { got <- e; return nil })
	select {
	case e := <-got:
		if e.Key != "a.txt" || e.Size != 3 || e.Sequencer == "" {
			t.Errorf("queued event = %+v, want a.txt size 3 with a sequencer", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("queued event not delivered")
	}
}

// TestStartFailsWhenAddressInUse: when another process holds the port, Start
// fails with "address already in use" and never reports listening: it must
// not take a foreign server at the address for its own.
func TestStartFailsWhenAddressInUse(t *testing.T) {
	tests := []struct {
		name   string
		listen string // where the other process listens
		http   bool   // whether it answers HTTP (anything, 200)
	}{
		{name: "PlainListener", listen: "127.0.0.1:0"},
		{name: "HTTPServer", listen: "127.0.0.1:0", http: true},
		{name: "WildcardListener", listen: "0.0.0.0:0"},
		{name: "WildcardHTTPServer", listen: "0.0.0.0:0", http: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if tc.http {
				hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					io.WriteString(w, "<ok/>")
				})}
				go hs.Serve(ln)
				defer hs.Close()
			}
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			var logs bytes.Buffer
			srv, err := s3server.New(s3server.Config{
				DataDir: filepath.Join(t.TempDir(), "data"), Addr: net.JoinHostPort("127.0.0.1", port),
				AccessKey: access, SecretKey: secret,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err = srv.Start(ctx)
			srv.Close()
			if err == nil || !strings.Contains(err.Error(), "address already in use") {
				t.Fatalf("start on a taken port: %v, want an error containing %q", err, "address already in use")
			}
			if strings.Contains(logs.String(), "listening") {
				t.Errorf("logged listening although the port is taken:\n%s", logs.String())
			}
		})
	}
}

// TestStoredObjectsArePrivate: whatever the umask, objects written through
// the endpoint (a put and a multipart upload, also while in progress) are
// 0600 files in 0700 directories: no group or other bits anywhere under
// the data directory.
func TestStoredObjectsArePrivate(t *testing.T) {
	old := syscall.Umask(0) // the widest umask: modes must be set explicitly
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dir, nil)
	c := newClient(t, srv)
	if err := c.MakeBucket(t.Context(), "private"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(t.Context(), "private", "dir/sub/put.txt", strings.NewReader("secret data"), 11, objects.PutOptions{Metadata: map[string]string{"a": "b"}}); err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: c.Minio()}
	id, err := core.NewMultipartUpload(t.Context(), "private", "mp/upload.bin", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	part, err := core.PutObjectPart(t.Context(), "private", "mp/upload.bin", id, 1, strings.NewReader("part one"), 8, minio.PutObjectPartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir, "during a multipart upload")
	if _, err := core.CompleteMultipartUpload(t.Context(), "private", "mp/upload.bin", id,
		[]minio.CompletePart{{PartNumber: 1, ETag: part.ETag}}, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir, "after the uploads")
	for _, f := range []string{"private/dir/sub/put.txt", "private/mp/upload.bin"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("object file %s: %v", f, err)
		}
	}
}

// checkPrivate fails for every file or directory under (and including)
// root with group or other bits, and for the root of the sidecar metadata
// tree if there is one (versitygw makes directories inside it 0777 minus
// the umask: the root is what keeps them private).
func checkPrivate(t *testing.T, root, when string) {
	t.Helper()
	n := 0
	for _, r := range []string{root, root + ".meta"} {
		err := filepath.WalkDir(r, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				if r != root && errors.Is(err, os.ErrNotExist) {
					return filepath.SkipDir
				}
				return err
			}
			if r != root && path != r {
				return filepath.SkipDir
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			n++
			if perm := info.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s: %s has mode %v, want no group/other bits", when, path, info.Mode())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n < 3 {
		t.Fatalf("%s: only %d entries under %s; is the data dir right?", when, n, root)
	}
}

// Issue 20: a client's delete publishes an object-removed event (one per
// key of a multi-delete) before it is answered, with the bucket, key and
// time; dedupfn's own deletes through the in-process Store publish none.
func TestDeletePublishesRemoved(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), rec)
	c := newClient(t, srv)
	ctx := t.Context()
	if err := c.MakeBucket(ctx, "inbox"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"dir/my photo+1.jpg", "m1", "m 2", "m3"} {
		if _, err := c.Put(ctx, "inbox", k, strings.NewReader("x"), 1, objects.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	removed := func() []event.Event {
		var out []event.Event
		for _, ev := range rec.events() {
			if ev.Removed() {
				out = append(out, ev)
			}
		}
		return out
	}
	before := time.Now().Add(-time.Second)
	if err := c.Minio().RemoveObject(ctx, "inbox", "dir/my photo+1.jpg", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	evs := removed()
	if len(evs) != 1 {
		t.Fatalf("after a delete: %d removed events, want 1: %+v", len(evs), evs)
	}
	ev := evs[0]
	if ev.Source != "embedded" || ev.Name != s3server.EventDelete || ev.Bucket != "inbox" || ev.Key != "dir/my photo+1.jpg" ||
		ev.Time.Before(before) || time.Since(ev.Time) > time.Minute || ev.SHA256 != "" {
		t.Errorf("removed event = %+v, want embedded %s of inbox/dir/my photo+1.jpg, about now", ev, s3server.EventDelete)
	}
	if n, err := event.Normalize(ev); err != nil || !n.Removed() || n.Key != ev.Key {
		t.Errorf("removed event normalizes to %+v, %v", n, err)
	}

	keys := make(chan minio.ObjectInfo, 2)
	keys <- minio.ObjectInfo{Key: "m1"}
	keys <- minio.ObjectInfo{Key: "m 2"}
	close(keys)
	for e := range c.Minio().RemoveObjects(ctx, "inbox", keys, minio.RemoveObjectsOptions{}) {
		t.Fatalf("multi-delete: %s: %v", e.ObjectName, e.Err)
	}
	got := map[string]string{}
	for _, ev := range removed()[1:] {
		got[ev.Key] = ev.Name
	}
	if len(got) != 2 || got["m1"] != s3server.EventDelete || got["m 2"] != s3server.EventDelete {
		t.Errorf("multi-delete published %v, want %s for m1 and m 2", got, s3server.EventDelete)
	}

	// A delete the backend refuses (no such bucket) publishes nothing.
	if err := c.Minio().RemoveObject(ctx, "nobucket", "m3", minio.RemoveObjectOptions{}); err == nil {
		t.Error("delete in a missing bucket succeeded")
	}
	if n := len(removed()); n != 3 {
		t.Errorf("%d removed events after a refused delete, want 3", n)
	}

	// A delete whose event cannot be published fails, so that the client
	// tries again (a delete is idempotent) and the event is not lost.
	rec.setFail(errors.New("queue full"))
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second) // minio-go retries 5xx
	defer cancel()
	err := c.Minio().RemoveObject(fctx, "inbox", "m3", minio.RemoveObjectOptions{})
	if got := minio.ToErrorResponse(err).StatusCode; got < 500 {
		t.Errorf("delete with failing publish: status %d (%v), want 5xx", got, err)
	}
	rec.setFail(nil)
	if err := c.Minio().RemoveObject(ctx, "inbox", "m3", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if evs := removed(); len(evs) != 4 || evs[3].Key != "m3" {
		t.Errorf("removed events %+v, want a 4th for m3 after the retry", evs)
	}
}
