package fingerprint_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/fingerprint"
	"github.com/dedupfn/dedupfn/internal/spool"
)

func ExampleSum() {
	fp, n, _ := fingerprint.Sum(strings.NewReader("hello"))
	fmt.Println(fp, n)
	// Output: sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 5
}

func TestSpool_SameAsSum(t *testing.T) {
	for _, size := range []int{0, 1, 1 << 10, 3 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := make([]byte, size)
			rand.Read(data)
			want, _, err := fingerprint.Sum(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			sp := spool.New(t.TempDir(), 64<<10, 0)
			defer sp.Close()
			got, err := fingerprint.Spool(bytes.NewReader(data), sp)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("spool fingerprint %s, sum %s", got, want)
			}
			back, _ := io.ReadAll(sp.Reader())
			if !bytes.Equal(back, data) {
				t.Fatalf("spooled bytes differ from input (%d vs %d bytes)", len(back), len(data))
			}
		})
	}
}

// A 64 MiB stream hashes with bounded memory: the spool moves to disk past
// its memory limit, so the heap does not grow with the object.
func TestSpool_BoundedMemory(t *testing.T) {
	sp := spool.New(t.TempDir(), 1<<20, 0)
	defer sp.Close()
	const size = 64 << 20
	if _, err := fingerprint.Spool(io.LimitReader(zeroReader{}, size), sp); err != nil {
		t.Fatal(err)
	}
	if sp.Size() != size {
		t.Fatalf("size %d, want %d", sp.Size(), size)
	}
	if sp.Bytes() != nil {
		t.Fatal("64 MiB spool is held in memory, want a temp file")
	}
}

func TestHex(t *testing.T) {
	if got := fingerprint.Hex("sha256:abc"); got != "abc" {
		t.Fatalf("Hex = %q", got)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func ExampleFromSHA256Hex() {
	// The hex digest a store holds for "hello" gives the same fingerprint
	// as reading the bytes.
	fp, _ := fingerprint.FromSHA256Hex("2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824")
	sum, _, _ := fingerprint.Sum(strings.NewReader("hello"))
	fmt.Println(fp, fp == sum)
	// Output: sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 true
}

func TestFromSHA256Hex_Rejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"Empty", ""},
		{"Short", "2cf24dba"},
		{"Long", strings.Repeat("ab", 33)},
		{"NotHex", strings.Repeat("zz", 32)},
		{"Prefixed", "sha256:" + strings.Repeat("ab", 32)},
		{"Base64", "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fp, err := fingerprint.FromSHA256Hex(tc.in)
			if err == nil || fp != "" {
				t.Errorf("FromSHA256Hex(%q) = %q, %v; want an error", tc.in, fp, err)
			}
		})
	}
}

func TestFormat_SameAsSum(t *testing.T) {
	data := []byte("some object bytes")
	want, _, _ := fingerprint.Sum(bytes.NewReader(data))
	sum := sha256.Sum256(data)
	if got := fingerprint.Format(sum[:]); got != want {
		t.Errorf("Format = %s, want %s", got, want)
	}
}
