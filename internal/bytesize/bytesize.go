// Package bytesize formats byte counts in binary (IEC) units, the one
// way every package and command writes a size for people to read.
package bytesize

import "fmt"

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
