package s3server

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dedupfn/dedupfn/internal/objects"
)

// freeAddr is a free loopback address (testutil's FreeAddr, which this
// package's internal tests cannot import: testutil imports it).
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestHeadChecksumRace: a HEAD in checksum mode reports the stored SHA-256
// of the file it heads, never another content's: an overwrite landing
// between reading the SHA-256 and the backend's HEAD leaves the header
// out; many overwrites racing many HEADs never pair an ETag with the
// other content's checksum.
func TestHeadChecksumRace(t *testing.T) {
	const access, secret = "race-access", "race-secret-key"
	opened, err := Open(t.Context(), nil, objects.Options{
		DataDir: filepath.Join(t.TempDir(), "data"), Addr: freeAddr(t), AccessKey: access, SecretKey: secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	st := opened.(*Store)
	t.Cleanup(func() { st.Close() })
	if !st.Server.be.Load().xattrs {
		t.Fatal("no xattrs on the test file system: the endpoint stores no SHA-256 to report")
	}
	mc, err := minio.New(st.Server.Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	const bucket = "race"
	if err := st.MakeBucket(t.Context(), bucket); err != nil {
		t.Fatal(err)
	}
	a, b := bytes.Repeat([]byte("a"), 4096), bytes.Repeat([]byte("b"), 4096)
	sums := map[string]string{} // ETag -> base64 SHA-256
	put := func(key string, body []byte) {
		t.Helper()
		info, err := st.Put(t.Context(), bucket, key, bytes.NewReader(body), int64(len(body)), objects.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(body)
		sums[info.ETag] = base64.StdEncoding.EncodeToString(s[:])
	}
	head := func(key string) minio.ObjectInfo {
		t.Helper()
		oi, err := mc.StatObject(t.Context(), bucket, key, minio.StatObjectOptions{Checksum: true})
		if err != nil {
			t.Fatal(err)
		}
		return oi
	}
	put("k", a)
	put("k", b)
	put("k", a)

	t.Run("NoRace", func(t *testing.T) {
		if oi := head("k"); oi.ChecksumSHA256 != sums[oi.ETag] || oi.ChecksumMode != "FULL_OBJECT" {
			t.Errorf("checksum %q (type %q) for ETag %s, want %q FULL_OBJECT", oi.ChecksumSHA256, oi.ChecksumMode, oi.ETag, sums[oi.ETag])
		}
	})
	t.Run("OverwriteBeforeTheHead", func(t *testing.T) {
		headRaced = func(string, string) {
			headRaced = nil
			put("k", b)
		}
		defer func() { headRaced = nil }()
		oi := head("k")
		if oi.ETag != etagOf(sums, b) {
			t.Fatalf("the HEAD saw ETag %s, not the overwrite's: the race was not staged", oi.ETag)
		}
		if oi.ChecksumSHA256 != "" {
			t.Errorf("checksum %q reported across an overwrite (the file's is %q)", oi.ChecksumSHA256, sums[oi.ETag])
		}
	})
	t.Run("ManyOverwrites", func(t *testing.T) {
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				body := a
				if i%2 == 1 {
					body = b
				}
				if _, err := st.Put(t.Context(), bucket, "k", bytes.NewReader(body), int64(len(body)), objects.PutOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		var mu sync.Mutex
		var vouched, heads int
		deadline := time.Now().Add(2 * time.Second)
		var hg sync.WaitGroup
		for range 8 {
			hg.Add(1)
			go func() {
				defer hg.Done()
				for time.Now().Before(deadline) {
					oi, err := mc.StatObject(t.Context(), bucket, "k", minio.StatObjectOptions{Checksum: true})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					heads++
					if oi.ChecksumSHA256 != "" {
						vouched++
						if oi.ChecksumSHA256 != sums[oi.ETag] {
							t.Errorf("ETag %s answered with checksum %q, its content's is %q", oi.ETag, oi.ChecksumSHA256, sums[oi.ETag])
						}
					}
					mu.Unlock()
				}
			}()
		}
		hg.Wait()
		stop.Store(true)
		wg.Wait()
		t.Logf("%d HEADs racing overwrites, %d with a checksum", heads, vouched)
		if heads == 0 {
			t.Fatal("no HEAD answered")
		}
		if oi := head("k"); oi.ChecksumSHA256 != sums[oi.ETag] {
			t.Errorf("after the writes: checksum %q for ETag %s, want %q", oi.ChecksumSHA256, oi.ETag, sums[oi.ETag])
		}
	})
}

func etagOf(sums map[string]string, body []byte) string {
	s := sha256.Sum256(body)
	want := base64.StdEncoding.EncodeToString(s[:])
	for etag, sum := range sums {
		if sum == want {
			return etag
		}
	}
	return ""
}
