package testutil_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"testing"

	"github.com/dedupfn/dedupfn/internal/testutil"
)

func TestMD5CollisionPair(t *testing.T) {
	a, b := testutil.MD5CollisionPair()
	if bytes.Equal(a, b) {
		t.Fatal("the pair is one content twice")
	}
	if md5.Sum(a) != md5.Sum(b) {
		t.Fatalf("MD5s differ: %x, %x", md5.Sum(a), md5.Sum(b))
	}
	if sha256.Sum256(a) == sha256.Sum256(b) {
		t.Fatal("SHA-256s are equal")
	}
}
