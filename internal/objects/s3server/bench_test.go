package s3server_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// openBenchStore opens the embedded store the way `dedupfn serve` does,
// with a Publish hook that accepts every event.
func openBenchStore(b *testing.B) objects.Store {
	b.Helper()
	rec := &recorder{}
	st, err := objects.Open(b.Context(), "embedded:", objects.Options{
		DataDir: filepath.Join(b.TempDir(), "data"), Addr: testutil.FreeAddr(b),
		AccessKey: access, SecretKey: secret,
		Publish: rec.discard,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.MakeBucket(b.Context(), "bench"); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkStorePut4K writes 4 KiB objects through the embedded store.
func BenchmarkStorePut4K(b *testing.B) {
	st := openBenchStore(b)
	body := make([]byte, 4<<10)
	rand.Read(body)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := st.Put(b.Context(), "bench", fmt.Sprintf("in/%d", i%1000), bytes.NewReader(body), int64(len(body)), objects.PutOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreCopy copies a 4 KiB object server-side, as a hit delivers
// its recorded output.
func BenchmarkStoreCopy(b *testing.B) {
	st := openBenchStore(b)
	body := make([]byte, 4<<10)
	rand.Read(body)
	if _, err := st.Put(b.Context(), "bench", "src", bytes.NewReader(body), int64(len(body)), objects.PutOptions{}); err != nil {
		b.Fatal(err)
	}
	opts := objects.PutOptions{ContentType: "application/octet-stream", Metadata: map[string]string{"dedupfn-output-of": "x"}}
	for i := 0; b.Loop(); i++ {
		if _, err := st.Copy(b.Context(), objects.Info{Bucket: "bench", Key: "src"}, "bench", fmt.Sprintf("out/%d", i%1000), opts); err != nil {
			b.Fatal(err)
		}
	}
}
