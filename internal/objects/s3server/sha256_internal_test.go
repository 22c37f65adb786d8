package s3server

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	"github.com/versity/versitygw/s3api/middlewares"
)

// trailer stands in for versitygw's chunked-upload reader.
type trailer struct{ io.Reader }

func (trailer) Algorithm() string { return "crc32c" }
func (trailer) Checksum() string  { return "AAAAAA==" }

// TestHashingBody: the wrapper hashes exactly the bytes read, and shows
// the backend the trailing checksum of the body it wraps (and none when
// the body has none), so wrapping never changes what the backend verifies.
func TestHashingBody(t *testing.T) {
	const data = "streamed bytes"
	want := sha256.Sum256([]byte(data))

	b := newHashingBody(trailer{strings.NewReader(data)})
	var r io.Reader = b
	cr, ok := r.(middlewares.ChecksumReader)
	if !ok || cr.Algorithm() != "crc32c" || cr.Checksum() != "AAAAAA==" {
		t.Fatalf("trailing checksum not forwarded: ok=%v", ok)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	if got := b.sum(); got != hex.EncodeToString(want[:]) {
		t.Errorf("sum = %s, want %x", got, want)
	}

	plain := newHashingBody(strings.NewReader(data))
	if plain.Algorithm() != "" || plain.Checksum() != "" {
		t.Errorf("a plain body reports trailing checksum %q %q, want none", plain.Algorithm(), plain.Checksum())
	}
}
