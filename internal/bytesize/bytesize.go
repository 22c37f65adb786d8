// Package bytesize formats byte counts in binary (IEC) units, the one
// way every package and command writes a size for people to read, and
// parses the sizes people write (flags, config files).
package bytesize

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
)

// Format writes n rounded to one decimal in the largest binary unit it
// reaches: "512 B", "1.5 KiB", "3.0 MiB", … up to EiB. It is for
// amounts measured or counted (bytes read, objects listed).
func Format(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, unit := float64(n)/1024, 0
	for f >= 1024 && unit < 5 {
		f /= 1024
		unit++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTPE"[unit])
}

// Exact writes n without rounding, in the largest of MiB and KiB that
// divides it, else in bytes: "64 MiB", "64 KiB", "1000 bytes". It is for
// limits, which an error message states as they were set.
func Exact(n int64) string {
	switch {
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// units are the binary units Parse reads and Unit writes, by lowercase
// name; "b" is a byte.
var units = map[string]int64{"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "pib": 1 << 50}

// sizeRE is a size: a decimal number, then optional spaces and a unit.
var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) *([A-Za-z]*)$`)

// Parse reads a size as people write it: a number with a binary unit
// ("16GiB", "64 MiB", "512KiB", "1.5GiB", "100B", any case), or a bare
// number, which counts bare bytes (a flag's unit of old: 1 for bytes,
// 1<<20 for MiB). The size must be a whole number of bytes, >= 0, and fit
// an int64. kB, MB, GB are refused: they are read as powers of 1000 by
// some tools and 1024 by others.
func Parse(s string, bare int64) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("size must be a number >= 0 with an optional unit B, KiB, MiB, GiB, TiB or PiB (such as 64MiB), got %q", s)
	}
	mult := bare
	if m[2] != "" {
		var ok bool
		if mult, ok = units[strings.ToLower(m[2])]; !ok {
			return 0, fmt.Errorf("size unit must be B, KiB, MiB, GiB, TiB or PiB (powers of 1024), got %q in %q", m[2], s)
		}
	}
	r, _ := new(big.Rat).SetString(m[1]) // a decimal, as sizeRE matched
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("size must be a whole number of bytes, got %q", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return r.Num().Int64(), nil
}

// Unit writes n without rounding and without a space, in the largest
// binary unit that divides it, as Parse reads it: "16GiB", "512KiB",
// "1000B". It is for a setting's value (a flag's default).
func Unit(n int64) string {
	for _, u := range []string{"PiB", "TiB", "GiB", "MiB", "KiB"} {
		if m := units[strings.ToLower(u)]; n != 0 && n%m == 0 {
			return fmt.Sprintf("%d%s", n/m, u)
		}
	}
	return fmt.Sprintf("%dB", n)
}
