// Package fingerprint computes the content fingerprint of an object: a
// streaming SHA-256 of its bytes, in bounded memory. MD5 and ETags are never
// trusted on their own: MD5 collisions are cheap to forge, and one upload
// could poison the result of another.
package fingerprint

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/dedupfn/dedupfn/internal/spool"
)

// Algorithm names the hash, and prefixes every fingerprint so fingerprints
// of different algorithms never compare equal.
const Algorithm = "sha256"

// hashers holds what one Sum or Spool needs besides the bytes: a SHA-256
// state, a copy buffer (io.Copy would allocate 32 KiB per call) and room
// for the digest. Pooled, because for a small object allocating them
// costs as much as hashing it.
var hashers = sync.Pool{New: func() any {
	return &hasher{h: sha256.New(), buf: make([]byte, 32<<10)}
}}

type hasher struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// hashCopy streams r through a pooled hasher into w (nil: hash only) and
// returns the fingerprint and the length.
func hashCopy(w io.Writer, r io.Reader) (string, int64, error) {
	hs := hashers.Get().(*hasher)
	defer hashers.Put(hs)
	hs.h.Reset()
	dst := io.Writer(hs.h)
	if w != nil {
		dst = io.MultiWriter(hs.h, w)
	}
	n, err := io.CopyBuffer(dst, r, hs.buf)
	if err != nil {
		return "", n, fmt.Errorf("fingerprint: read: %w", err)
	}
	return format(hs.h.Sum(hs.sum[:0])), n, nil
}

// Sum streams r once and returns its fingerprint and length.
func Sum(r io.Reader) (string, int64, error) { return hashCopy(nil, r) }

// Spool streams r once into a spool while hashing it, so the bytes that
// were fingerprinted can be handed to the function without reading the
// object again. The caller closes the spool.
func Spool(r io.Reader, sp *spool.Spool) (string, error) {
	fp, _, err := hashCopy(sp, r)
	return fp, err
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

func format(sum []byte) string {
	var b [len(Algorithm) + 1 + 2*sha256.Size]byte
	n := copy(b[:], Algorithm+":")
	hex.Encode(b[n:], sum)
	return string(b[:n+hex.EncodedLen(len(sum))])
}
