package wasm

import "testing"

// The scanner decodes immediates: a byte 0x02 in an immediate is not a
// block, and an opcode it does not know makes it overestimate.
func TestWasmCompileLimits_ScanBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
		want funcStats
	}{
		{"Immediates", []byte{1, 3, 0x7f, // 3 locals i32
			0x41, 0x02, 0x1a, // i32.const 2; drop
			0x42, 0x80, 0x81, 0x82, 0x84, 0x88, 0x90, 0xa0, 0xc0, 0x80, 0x7f, 0x1a, // i64.const (10 bytes); drop
			0x44, 2, 2, 2, 2, 2, 2, 2, 2, 0x1a, // f64.const; drop
			0x28, 0x02, 0x03, 0x1a, // i32.load align 2 offset 3 (needs a memory; not validated here)
			0x0b}, funcStats{locals: 3}},
		{"Nesting", []byte{0, 0x02, 0x40, 0x03, 0x40, 0x41, 0x00, 0x04, 0x40, 0x05, 0x0b, 0x0b, 0x0b, 0x0b},
			funcStats{branches: 4, nesting: 3}},
		{"BrTable", []byte{0, 0x02, 0x40, 0x41, 0x00, 0x0e, 3, 0, 0, 0, 0, 0x0b, 0x0b}, funcStats{branches: 5, nesting: 1}},
		{"UnknownOpcode", []byte{0, 0x02, 0x40, 0x06, 0x0b, 0x0b}, funcStats{branches: 1 + 6, nesting: 1 + 6}},
		{"Truncated", []byte{0, 0x41}, funcStats{branches: 2, nesting: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := scanBody(&reader{b: tc.body}, nil)
			tc.want.bytes = len(tc.body)
			if got != tc.want {
				t.Fatalf("scanBody = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzCheckFunctions: the scanner reads a tenant's module; it must never
// panic and always measure each body it visits by its length.
func FuzzCheckFunctions(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x07\x01\x05\x00\x02\x40\x0b\x0b"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x0a\x05\x01\x03\x00\x0e\xff"))
	f.Fuzz(func(t *testing.T, bin []byte) {
		_ = checkFunctions(bin, func(_ int, s funcStats) error {
			if s.bytes > len(bin) || s.branches < 0 || s.nesting < 0 {
				t.Fatalf("stats %+v of a %d-byte module", s, len(bin))
			}
			return nil
		})
	})
}
