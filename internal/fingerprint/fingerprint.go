// Package fingerprint computes the content fingerprint of an object: a
// streaming SHA-256 of its bytes, in bounded memory. MD5 and ETags are never
// trusted on their own: MD5 collisions are cheap to forge, and one upload
// could poison the result of another.
package fingerprint

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/dedupfn/dedupfn/internal/spool"
)

// Algorithm names the hash, and prefixes every fingerprint so fingerprints
// of different algorithms never compare equal.
const Algorithm = "sha256"

// buffers are the copy buffers of Sum and Spool: io.Copy would allocate
// 32 KiB per call, which costs more than hashing a small object.
var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyHashed copies r to w through a pooled buffer.
func copyHashed(w io.Writer, r io.Reader) (int64, error) {
	buf := buffers.Get().(*[]byte)
	defer buffers.Put(buf)
	return io.CopyBuffer(w, r, *buf)
}

// Sum streams r once and returns its fingerprint and length.
func Sum(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := copyHashed(h, r)
	if err != nil {
		return "", n, fmt.Errorf("fingerprint: read: %w", err)
	}
	return format(h.Sum(nil)), n, nil
}

// Spool streams r once into a spool while hashing it, so the bytes that
// were fingerprinted can be handed to the function without reading the
// object again. The caller closes the spool.
func Spool(r io.Reader, sp *spool.Spool) (string, error) {
	h := sha256.New()
	if _, err := copyHashed(io.MultiWriter(h, sp), r); err != nil {
		return "", fmt.Errorf("fingerprint: read: %w", err)
	}
	return format(h.Sum(nil)), nil
}

// Hex returns the bare hex digest of a fingerprint.
func Hex(fp string) string {
	if len(fp) > len(Algorithm)+1 && fp[:len(Algorithm)+1] == Algorithm+":" {
		return fp[len(Algorithm)+1:]
	}
	return fp
}

// FromSHA256Hex returns the fingerprint of an object whose SHA-256 the
// store already holds (objects.Info.SHA256, event.Event.SHA256), so a hit
// needs no read: "sha256:<hex>", the same string Sum gives for the bytes.
// hexSum must be 64 hex digits (either case); anything else is an error,
// never a fingerprint.
func FromSHA256Hex(hexSum string) (string, error) {
	sum, err := hex.DecodeString(hexSum)
	if err != nil || len(sum) != sha256.Size {
		return "", fmt.Errorf("fingerprint: sha256 must be %d hex digits, got %q", 2*sha256.Size, hexSum)
	}
	return format(sum), nil
}

// Format returns the fingerprint of a finished SHA-256 digest (h.Sum(nil)
// of a crypto/sha256 hash that saw all of the object's bytes).
func Format(sum []byte) string { return format(sum) }

func format(sum []byte) string { return Algorithm + ":" + hex.EncodeToString(sum) }
