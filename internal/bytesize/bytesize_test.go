package bytesize_test

import (
	"testing"

	"github.com/dedupfn/dedupfn/internal/bytesize"
)

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{
		0:                "0 B",
		1023:             "1023 B",
		1024:             "1.0 KiB",
		1536:             "1.5 KiB",
		5 << 20:          "5.0 MiB",
		3 << 30:          "3.0 GiB",
		1<<62 + 1<<61:    "6.0 EiB",
		1<<20 - 1:        "1024.0 KiB",
		10<<20 + 512<<10: "10.5 MiB",
	} {
		if got := bytesize.Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestExact(t *testing.T) {
	for n, want := range map[int64]string{
		0:             "0 bytes",
		1000:          "1000 bytes",
		64 << 10:      "64 KiB",
		64 << 20:      "64 MiB",
		1 << 30:       "1024 MiB",
		1<<20 + 1<<10: "1025 KiB",
	} {
		if got := bytesize.Exact(n); got != want {
			t.Errorf("Exact(%d) = %q, want %q", n, got, want)
		}
	}
}
