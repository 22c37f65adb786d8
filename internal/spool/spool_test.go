package spool_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/spool"
)

func TestSpool_MaxSize(t *testing.T) {
	sp := spool.New(t.TempDir(), 4, 10)
	defer sp.Close()
	if _, err := io.Copy(sp, strings.NewReader("0123456789")); err != nil {
		t.Fatalf("10 bytes into a 10-byte spool: %v", err)
	}
	if _, err := sp.Write([]byte("x")); !errors.Is(err, spool.ErrTooLarge) {
		t.Fatalf("11th byte: err = %v, want ErrTooLarge", err)
	}
	got, _ := io.ReadAll(sp.Reader())
	if string(got) != "0123456789" {
		t.Fatalf("read back %q", got)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
