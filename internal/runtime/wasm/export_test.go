package wasm

import "testing"

// MergeDataSegments and SegmentCount let the black-box tests check the
// compile-time data segment merge (datasegments.go).
var MergeDataSegments = mergeDataSegments

func SegmentCount(tb testing.TB, bin []byte) int { return segmentCount(tb, bin) }
