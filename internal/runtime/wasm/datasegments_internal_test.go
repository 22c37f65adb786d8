package wasm

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/tetratelabs/wazero"
)

// dataModule is a module with one exported page of memory and the given
// data section contents (and a DataCount section if dataCount >= 0).
func dataModule(segments []byte, dataCount int) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, 5, 3, 1, 0, 1)                                   // memory: one, min 1 page
	b = append(b, 7, 10, 1, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0) // export "memory"
	if dataCount >= 0 {
		b = append(b, sectionDataCount, 1, byte(dataCount))
	}
	b = append(b, sectionData)
	b = binary.AppendUvarint(b, uint64(len(segments)))
	return append(b, segments...)
}

// active encodes active segments at the given offsets.
func active(segs ...segment) []byte {
	b := binary.AppendUvarint(nil, uint64(len(segs)))
	for _, s := range segs {
		b = append(b, 0, opI32Const)
		b = appendSleb(b, int64(s.offset))
		b = append(b, opEnd)
		b = binary.AppendUvarint(b, uint64(len(s.data)))
		b = append(b, s.data...)
	}
	return b
}

// memoryImage instantiates bin and returns its memory's first page.
func memoryImage(t *testing.T, bin []byte) []byte {
	t.Helper()
	ctx := t.Context()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, bin)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	page, ok := mod.Memory().Read(0, 65536)
	if !ok {
		t.Fatal("read memory")
	}
	return bytes.Clone(page)
}

func segmentCount(t testing.TB, bin []byte) int {
	t.Helper()
	for i := 8; i < len(bin); {
		size, n := binary.Uvarint(bin[i+1:])
		if bin[i] == sectionData {
			c, _ := binary.Uvarint(bin[i+1+n:])
			return int(c)
		}
		i += 1 + n + int(size)
	}
	return 0
}

func TestMergeDataSegments(t *testing.T) {
	tests := []struct {
		name      string
		bin       []byte
		wantSegs  int
		unchanged bool
	}{
		{"NearbyMerged", dataModule(active(
			segment{300, []byte("ccc")}, // out of order: order does not matter without overlaps
			segment{10, []byte("aaaa")},
			segment{14, []byte("bb")},
		), -1), 1, false},
		{"FarApartKept", dataModule(active(
			segment{0, []byte("x")},
			segment{0 + 1 + maxSegmentGap + 1, []byte("y")},
			segment{0 + 1 + maxSegmentGap + 2, []byte("z")},
		), -1), 2, false},
		{"OverlapUnchanged", dataModule(active(
			segment{10, []byte("aaaa")},
			segment{12, []byte("bb")}, // writes over the first: the order matters
		), -1), 2, true},
		{"DataCountUnchanged", dataModule(active(
			segment{10, []byte("a")},
			segment{20, []byte("b")},
		), 2), 2, true},
		{"PassiveUnchanged", dataModule([]byte{2, 0, opI32Const, 5, opEnd, 1, 'a', 1, 1, 'p'}, -1), 2, true},
		{"OneSegmentUnchanged", dataModule(active(segment{7, []byte("only")}), -1), 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := bytes.Clone(tt.bin)
			got := mergeDataSegments(tt.bin)
			if !bytes.Equal(tt.bin, orig) {
				t.Fatal("merging wrote over its input")
			}
			if tt.unchanged {
				if !bytes.Equal(got, tt.bin) {
					t.Fatal("module rewritten; want it left as it is")
				}
				return
			}
			if n := segmentCount(t, got); n != tt.wantSegs {
				t.Fatalf("%d segments after merging, want %d", n, tt.wantSegs)
			}
			if !bytes.Equal(memoryImage(t, got), memoryImage(t, tt.bin)) {
				t.Fatal("the merged module's memory differs from the original's")
			}
		})
	}
}
