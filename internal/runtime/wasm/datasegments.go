package wasm

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// Why merge data segments?
//
// Go's wasm linker writes a module's initial data as one data segment per
// run of non-zero bytes: a trivial Go function carries about 30,000 of
// them. wazero evaluates each segment's offset expression, allocating, on
// every instantiation, and a module is instantiated for every run: a CPU
// profile of `dedupfn bench` put a fifth of the server's CPU there. The
// segments sit a few bytes apart, so the same memory image is written by a
// handful of segments whose gaps are filled with the zeros a fresh memory
// holds anyway.
//
// mergeDataSegments does that at compile time, and only where the result
// is the same memory image for certain: every segment active, on memory 0,
// at an i32.const offset, no two overlapping (so their order does not
// matter), and no DataCount section (whose presence allows memory.init and
// data.drop to name segments by index). Anything else is left as it is.

// maxSegmentGap is the largest run of zeros between two segments that is
// written out to merge them: a few KiB of zeros cost less to copy than a
// segment costs to set up.
const maxSegmentGap = 4096

const (
	sectionData      = 11
	sectionDataCount = 12
	opI32Const       = 0x41
	opEnd            = 0x0b
)

type segment struct {
	offset uint32
	data   []byte
}

// mergeDataSegments returns bin with adjacent active data segments merged,
// or bin itself when it has nothing to merge or cannot be merged safely.
func mergeDataSegments(bin []byte) []byte {
	if len(bin) < 8 || !bytes.Equal(bin[:8], []byte("\x00asm\x01\x00\x00\x00")) {
		return bin
	}
	dataStart, dataEnd := -1, -1 // the data section's contents
	sectionStart := -1
	for i := 8; i < len(bin); {
		id := bin[i]
		size, n := binary.Uvarint(bin[i+1:])
		if n <= 0 || uint64(len(bin)-i-1-n) < size {
			return bin
		}
		start := i + 1 + n
		switch id {
		case sectionDataCount:
			return bin
		case sectionData:
			sectionStart, dataStart, dataEnd = i, start, start+int(size)
		}
		i = start + int(size)
	}
	if dataStart < 0 {
		return bin
	}
	segs, ok := parseActiveSegments(bin[dataStart:dataEnd])
	if !ok || len(segs) < 2 {
		return bin
	}
	slices.SortFunc(segs, func(a, b segment) int { return int(int64(a.offset) - int64(b.offset)) })
	// Each merged segment's data is a new slice (a segment's data is a
	// window on bin: appending to it would write over bin), grown by
	// append so that merging stays linear.
	var merged []segment
	for _, s := range segs {
		if len(merged) > 0 {
			last := &merged[len(merged)-1]
			end := uint64(last.offset) + uint64(len(last.data))
			if uint64(s.offset) < end {
				return bin // overlapping: the order of the segments matters
			}
			if gap := uint64(s.offset) - end; gap <= maxSegmentGap {
				last.data = append(last.data, make([]byte, gap)...)
				last.data = append(last.data, s.data...)
				continue
			}
		}
		merged = append(merged, segment{offset: s.offset, data: bytes.Clone(s.data)})
	}
	if len(merged) == len(segs) {
		return bin
	}
	var section []byte
	section = binary.AppendUvarint(section, uint64(len(merged)))
	for _, s := range merged {
		section = append(section, 0, opI32Const)
		section = appendSleb(section, int64(int32(s.offset)))
		section = append(section, opEnd)
		section = binary.AppendUvarint(section, uint64(len(s.data)))
		section = append(section, s.data...)
	}
	out := make([]byte, 0, len(bin)-(dataEnd-sectionStart)+len(section)+6)
	out = append(out, bin[:sectionStart]...)
	out = append(out, sectionData)
	out = binary.AppendUvarint(out, uint64(len(section)))
	out = append(out, section...)
	return append(out, bin[dataEnd:]...)
}

// parseActiveSegments reads a data section's segments, and reports false
// unless each is active on memory 0 at an i32.const offset (flag 0).
func parseActiveSegments(b []byte) ([]segment, bool) {
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return nil, false
	}
	b = b[n:]
	segs := make([]segment, 0, count)
	for range count {
		if len(b) < 2 || b[0] != 0 || b[1] != opI32Const {
			return nil, false
		}
		off, n := readSleb(b[2:])
		if n <= 0 || off < 0 || off > 1<<32-1 {
			return nil, false
		}
		b = b[2+n:]
		if len(b) < 1 || b[0] != opEnd {
			return nil, false
		}
		size, n := binary.Uvarint(b[1:])
		if n <= 0 || uint64(len(b)-1-n) < size {
			return nil, false
		}
		data := b[1+n : 1+n+int(size)]
		// A negative i32 offset reads as a large unsigned one: the module
		// is left for wazero to judge.
		if off > 1<<31-1 {
			return nil, false
		}
		segs = append(segs, segment{offset: uint32(off), data: data})
		b = b[1+n+int(size):]
	}
	return segs, len(b) == 0
}

// readSleb reads a signed LEB128 integer of up to 64 bits.
func readSleb(b []byte) (int64, int) {
	var v int64
	var shift uint
	for i, c := range b {
		if i == 10 {
			return 0, -1
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c < 0x80 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, i + 1
		}
	}
	return 0, -1
}

func appendSleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
