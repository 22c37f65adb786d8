package s3server_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/objectstest"
	"github.com/dedupfn/dedupfn/internal/objects/s3server"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// openStore opens the embedded store (one per test: versitygw runs one
// gateway per process) with rec as its Publish hook.
func openStore(t *testing.T, rec *recorder) *s3server.Store {
	t.Helper()
	st, err := objects.Open(t.Context(), "embedded:", objects.Options{
		DataDir: filepath.Join(t.TempDir(), "data"), Addr: testutil.FreeAddr(t),
		AccessKey: access, SecretKey: secret, Publish: rec.publish,
	})
	if err != nil {
		t.Fatalf("open embedded: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(*s3server.Store)
}

// shared is a store the suites may "close" without stopping the server.
type shared struct{ objects.Store }

func (shared) Close() error { return nil }

// TestStoreConformance runs the objects suites against the embedded store
// itself, whose reads and writes call the backend in process.
func TestStoreConformance(t *testing.T) {
	st := openStore(t, &recorder{})
	objectstest.Run(t, func(testing.TB) objects.Store { return shared{st} })
	objectstest.RunErrors(t, objectstest.ErrorStores{
		Store: func(testing.TB) objects.Store { return shared{st} },
		// Credentials and connections play no part in process; the HTTP
		// client's cases are in TestPermanentStoreErrors.
	})
}

// TestStoreClosed: after Close, in-process calls fail with a transient
// error, never as if the object were missing.
func TestStoreClosed(t *testing.T) {
	st := openStore(t, &recorder{})
	b := objectstest.NewBucket(t, st)
	if _, err := st.Put(t.Context(), b, "k", bytes.NewReader([]byte("x")), 1, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := st.Stat(t.Context(), b, "k")
	if err == nil || errors.Is(err, objects.ErrNotFound) || errors.Is(err, objects.ErrPermanent) {
		t.Errorf("stat after close: %v, want a transient error", err)
	}
}

func b64Sum(b []byte) string {
	s := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestSHA256 checks that every way of writing an object through the
// built-in endpoint (a put with or without a client checksum, a multipart
// upload, a server-side copy, the store's own Put and Copy) yields the
// SHA-256 of the object's bytes, both on the published event and in
// Stat/Get; and that user metadata claiming another SHA-256 changes
// nothing.
func TestSHA256(t *testing.T) {
	rec := &recorder{}
	st := openStore(t, rec)
	mc, err := minio.New(st.Server.Endpoint(), &minio.Options{
		Creds: credentials.NewStaticV4(access, secret, ""), Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: mc}
	b := objectstest.NewBucket(t, st)
	small := []byte("the bytes of a small object")
	big := make([]byte, 11<<20) // three parts of 5 MiB
	rand.Read(big)
	other := []byte("some other object entirely")

	tests := []struct {
		name  string
		key   string
		body  []byte
		write func(t *testing.T, key string, body []byte) error
	}{
		{"PutNoChecksum", "put/plain", small, func(t *testing.T, key string, body []byte) error {
			_, err := mc.PutObject(t.Context(), b, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{DisableContentSha256: true})
			return err
		}},
		{"PutSHA256Checksum", "put/sha256", small, func(t *testing.T, key string, body []byte) error {
			// Core sends the checksum as a plain header.
			_, err := core.PutObject(t.Context(), b, key, bytes.NewReader(body), int64(len(body)), "", "", minio.PutObjectOptions{
				UserMetadata: map[string]string{"x-amz-checksum-sha256": b64Sum(body)},
			})
			return err
		}},
		{"PutEmpty", "put/empty", nil, func(t *testing.T, key string, body []byte) error {
			_, err := mc.PutObject(t.Context(), b, key, bytes.NewReader(body), 0, minio.PutObjectOptions{})
			return err
		}},
		{"PutForgedMetadata", "put/forged", small, func(t *testing.T, key string, body []byte) error {
			forged := hexSum(other)
			_, err := mc.PutObject(t.Context(), b, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{
				UserMetadata: map[string]string{"dedupfn.sha256": forged, "sha256": forged, "dedupfn-sha256": forged},
			})
			return err
		}},
		{"Multipart", "mp/big", big, func(t *testing.T, key string, body []byte) error {
			_, err := mc.PutObject(t.Context(), b, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{PartSize: 5 << 20})
			return err
		}},
		{"ServerSideCopy", "copy/http", small, func(t *testing.T, key string, body []byte) error {
			_, err := mc.CopyObject(t.Context(), minio.CopyDestOptions{Bucket: b, Object: key}, minio.CopySrcOptions{Bucket: b, Object: "put/plain"})
			return err
		}},
		{"StorePutStreamed", "store/put", big, func(t *testing.T, key string, body []byte) error {
			_, err := st.Put(t.Context(), b, key, struct{ io.Reader }{bytes.NewReader(body)}, -1, objects.PutOptions{})
			return err
		}},
		{"StoreCopy", "store/copy", big, func(t *testing.T, key string, body []byte) error {
			_, err := st.Copy(t.Context(), objects.Info{Bucket: b, Key: "mp/big"}, b, key, objects.PutOptions{Metadata: map[string]string{"sha256": hexSum(other)}})
			return err
		}},
		{"Overwrite", "put/plain", other, func(t *testing.T, key string, body []byte) error {
			_, err := st.Put(t.Context(), b, key, bytes.NewReader(body), int64(len(body)), objects.PutOptions{})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := hexSum(tc.body)
			n := len(rec.events())
			if err := tc.write(t, tc.key, tc.body); err != nil {
				t.Fatalf("write: %v", err)
			}
			evs := rec.events()[n:]
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1: %+v", len(evs), evs)
			}
			if evs[0].Key != tc.key || evs[0].SHA256 != want {
				t.Errorf("event %s sha256 = %q, want %s %q", evs[0].Key, evs[0].SHA256, tc.key, want)
			}
			info, err := st.Stat(t.Context(), b, tc.key)
			if err != nil {
				t.Fatalf("stat: %v", err)
			}
			if info.SHA256 != want {
				t.Errorf("stat sha256 = %q, want %q", info.SHA256, want)
			}
			rc, gi, err := st.Get(t.Context(), b, tc.key, "", "")
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, tc.body) {
				t.Fatalf("get body: %d bytes (%v), want the %d bytes written", len(got), err, len(tc.body))
			}
			if gi.SHA256 != want {
				t.Errorf("get sha256 = %q, want %q", gi.SHA256, want)
			}
			// Over HTTP, HEAD and GET in checksum mode report it too, as
			// S3 reports a full-object checksum (base64); not otherwise.
			wantB64 := b64Sum(tc.body)
			oi, err := mc.StatObject(t.Context(), b, tc.key, minio.StatObjectOptions{Checksum: true})
			if err != nil {
				t.Fatalf("HEAD: %v", err)
			}
			if oi.ChecksumSHA256 != wantB64 || oi.ChecksumMode != "FULL_OBJECT" {
				t.Errorf("HEAD x-amz-checksum-sha256 %q (type %q), want %q FULL_OBJECT", oi.ChecksumSHA256, oi.ChecksumMode, wantB64)
			}
			if oi, err := mc.StatObject(t.Context(), b, tc.key, minio.StatObjectOptions{}); err != nil || (oi.ChecksumSHA256 != "" && tc.name != "PutSHA256Checksum") {
				t.Errorf("HEAD without checksum mode: checksum %q (%v), want none", oi.ChecksumSHA256, err)
			}
			obj, err := mc.GetObject(t.Context(), b, tc.key, minio.GetObjectOptions{Checksum: true})
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			body, err := io.ReadAll(obj) // minio-go checks the checksum at EOF
			goi, serr := obj.Stat()
			obj.Close()
			if err != nil || serr != nil || !bytes.Equal(body, tc.body) || goi.ChecksumSHA256 != wantB64 {
				t.Errorf("GET: %d bytes (%v, %v), checksum %q, want the %d bytes written and %q", len(body), err, serr, goi.ChecksumSHA256, len(tc.body), wantB64)
			}
		})
	}

	t.Run("ClientChecksumKept", func(t *testing.T) {
		// Hashing the body must not hide the client's checksum from the
		// backend: it still verifies and stores it.
		oi, err := mc.StatObject(t.Context(), b, "put/sha256", minio.StatObjectOptions{Checksum: true})
		if err != nil {
			t.Fatal(err)
		}
		if oi.ChecksumSHA256 != b64Sum(small) {
			t.Errorf("stored sha256 checksum %q, want the client's %q", oi.ChecksumSHA256, b64Sum(small))
		}
		_, err = core.PutObject(t.Context(), b, "put/lie", bytes.NewReader(small), int64(len(small)), "", "", minio.PutObjectOptions{
			UserMetadata: map[string]string{"x-amz-checksum-sha256": b64Sum(other)},
		})
		if err == nil {
			t.Error("put with a wrong x-amz-checksum-sha256 succeeded")
		}
	})
	t.Run("ForgedMetadataKept", func(t *testing.T) {
		info, err := st.Stat(t.Context(), b, "put/forged")
		if err != nil {
			t.Fatal(err)
		}
		if info.Metadata["sha256"] != hexSum(other) {
			t.Errorf("metadata = %v: the forged value should be stored as plain user metadata", info.Metadata)
		}
	})
}
