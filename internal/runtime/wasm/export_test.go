package wasm

import "testing"

// MergeDataSegments and SegmentCount let the black-box tests check the
// compile-time data segment merge (datasegments.go).
var MergeDataSegments = mergeDataSegments

func SegmentCount(tb testing.TB, bin []byte) int { return segmentCount(tb, bin) }

// FunctionMaxima returns the largest of each measure CodeLimits bound over
// bin's functions.
func FunctionMaxima(bin []byte) (bytes, branches, nesting int, locals, branchValues uint64) {
	checkFunctions(bin, func(_ int, s funcStats) error {
		bytes, branches, nesting = max(bytes, s.bytes), max(branches, s.branches), max(nesting, s.nesting)
		locals, branchValues = max(locals, s.locals), max(branchValues, s.branchValues())
		return nil
	})
	return
}
