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

	"github.com/dedupfn/dedupfn/internal/spool"
)

// Algorithm names the hash, and prefixes every fingerprint so fingerprints
// of different algorithms never compare equal.
const Algorithm = "sha256"

// Sum streams r once and returns its fingerprint and length.
func Sum(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
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
	if _, err := io.Copy(io.MultiWriter(h, sp), r); err != nil {
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

func format(sum []byte) string { return Algorithm + ":" + hex.EncodeToString(sum) }
