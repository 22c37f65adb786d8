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

func TestParse(t *testing.T) {
	const MiB = 1 << 20
	for _, tc := range []struct {
		in   string
		bare int64
		want int64
	}{
		{"16GiB", 1, 16 << 30},
		{"64MiB", 1, 64 << 20},
		{"512KiB", MiB, 512 << 10},
		{"1.5GiB", 1, 3 << 29},
		{"16 GiB", 1, 16 << 30},
		{"12mib", 1, 12 << 20},
		{"100B", MiB, 100},
		{"4096", 1, 4096},
		{"64", MiB, 64 << 20},
		{"0", MiB, 0},
		{"2TiB", 1, 2 << 40},
	} {
		got, err := bytesize.Parse(tc.in, tc.bare)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q, %d) = %d, %v, want %d", tc.in, tc.bare, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "GiB", "-1MiB", "12MB", "16GB", "1.5", "0.3B", "1.1KiB", "9EiB", "99999999999999999999", "12 bananas", "0x10"} {
		if got, err := bytesize.Parse(in, 1); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, got)
		}
	}
}

func TestUnit(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1000: "1000B", 16 << 30: "16GiB", 64 << 20: "64MiB", 512 << 10: "512KiB", 3 << 29: "1536MiB"} {
		if got := bytesize.Unit(n); got != want {
			t.Errorf("Unit(%d) = %q, want %q", n, got, want)
		}
		if back, err := bytesize.Parse(bytesize.Unit(n), 1); err != nil || back != n {
			t.Errorf("Parse(Unit(%d)) = %d, %v", n, back, err)
		}
	}
}
