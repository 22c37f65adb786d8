package s3_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/objectstest"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// TestTrustedSHA256MinIO: Stat and Get report Info.SHA256 only for an
// object whose full-object SHA-256 MinIO verified on upload; an object
// without one, a multipart object with composite checksums, a forged
// user-metadata "checksum" and a wrong checksum never produce one.
func TestTrustedSHA256MinIO(t *testing.T) {
	m := peers.StartMinIO(t, peers.MinIOOptions{})
	st, err := objects.Open(t.Context(), m.URL(), objects.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// Checksums are sent as trailers, which minio-go needs enabling for.
	mc, err := minio.New(m.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""), TrailingHeaders: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	bucket := objectstest.NewBucket(t, st)

	small := []byte("hello, checksums")
	smallSum := sha256.Sum256(small)
	big := make([]byte, 11<<20) // three 5 MiB parts
	rand.Read(big)
	bigSum := sha256.Sum256(big)

	put := func(t *testing.T, key string, body []byte, opts minio.PutObjectOptions) {
		t.Helper()
		if _, err := mc.PutObject(t.Context(), bucket, key, bytes.NewReader(body), int64(len(body)), opts); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	tests := []struct {
		name string
		key  string
		body []byte
		opts minio.PutObjectOptions
		want string // hex, "" for untrusted
	}{
		{name: "SHA256", key: "sha256", body: small,
			opts: minio.PutObjectOptions{Checksum: minio.ChecksumSHA256}, want: hex.EncodeToString(smallSum[:])},
		{name: "NoChecksum", key: "plain", body: small,
			opts: minio.PutObjectOptions{DisableContentSha256: true}},
		{name: "CRC32COnly", key: "crc", body: small,
			opts: minio.PutObjectOptions{Checksum: minio.ChecksumCRC32C}},
		{name: "ForgedMetadata", key: "forged", body: small,
			opts: minio.PutObjectOptions{UserMetadata: map[string]string{
				"sha256": hex.EncodeToString(bigSum[:]), "checksum-sha256": base64.StdEncoding.EncodeToString(bigSum[:]),
			}}},
		{name: "MultipartComposite", key: "multipart", body: big,
			opts: minio.PutObjectOptions{Checksum: minio.ChecksumSHA256, PartSize: 5 << 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			put(t, tc.key, tc.body, tc.opts)
			info, err := st.Stat(t.Context(), bucket, tc.key)
			if err != nil {
				t.Fatalf("stat: %v", err)
			}
			if info.SHA256 != tc.want {
				t.Errorf("stat SHA256 = %q, want %q", info.SHA256, tc.want)
			}
			rc, gi, err := st.Get(t.Context(), bucket, tc.key, "", info.ETag)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, tc.body) {
				t.Fatalf("get body: %d bytes, %v; want the %d bytes put", len(got), err, len(tc.body))
			}
			if gi.SHA256 != tc.want {
				t.Errorf("get SHA256 = %q, want %q", gi.SHA256, tc.want)
			}
		})
	}
	// The multipart case is only meaningful if MinIO really reported a
	// composite SHA-256: check the raw answer.
	oi, err := mc.StatObject(t.Context(), bucket, "multipart", minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	if oi.ChecksumSHA256 == "" {
		t.Errorf("MinIO reported no SHA-256 for the multipart upload (type %q): the composite case tests nothing", oi.ChecksumMode)
	}

	t.Run("WrongChecksumRefused", func(t *testing.T) {
		// A client claiming a SHA-256 that is not its bytes' is refused by
		// the store, so no object can carry a checksum it does not match.
		opts := minio.PutObjectOptions{UserMetadata: map[string]string{
			"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(bigSum[:]),
		}}
		_, err := mc.PutObject(t.Context(), bucket, "lie", bytes.NewReader(small), int64(len(small)), opts)
		if err == nil {
			info, _ := st.Stat(t.Context(), bucket, "lie")
			t.Fatalf("put with a wrong x-amz-checksum-sha256 succeeded; stat SHA256 = %q", info.SHA256)
		}
		if _, err := st.Stat(t.Context(), bucket, "lie"); !errors.Is(err, objects.ErrNotFound) {
			t.Errorf("stat after the refused put: %v, want ErrNotFound", err)
		}
	})
}
