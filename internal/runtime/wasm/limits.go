package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Why check a module's functions before compiling it?
//
// wazero's optimizing compiler takes time quadratic in the basic blocks of
// one function, and proportional to blocks times the values (locals,
// parameters, block parameters and results) it carries across them: a
// function of 40,000 blocks compiles for about half a minute, one of
// 100,000 br_table targets for 8 seconds and 240 MB, one of 5,000
// parameters and 2,000 branches for 33 s and 750 MB. It checks its
// context only between functions, so one such function can be neither
// cancelled nor bounded in memory once its compile has started; a function
// declaring 2^32 locals makes its decoder allocate 4 GiB first. So each
// function body is read here, before wazero sees the module, and a module
// with a function over CodeLimits is refused with the limit's name. The
// defaults (wasm.go) admit the largest functions of real modules several
// times over; docs/security.md has the measurements.

// CodeLimits bound each function of a module; a module with a function over
// one of them is refused before it is compiled. Zero fields take the
// Default values.
type CodeLimits struct {
	// FunctionBytes bounds the size of one function body.
	FunctionBytes int
	// Branches bounds one function's block, loop, if, else, br and br_if
	// instructions plus its br_table targets: each makes a basic block or
	// an edge of the compiler's graph.
	Branches int
	// Nesting bounds how deep block, loop and if nest in one function.
	Nesting int
	// Locals bounds one function's parameters and declared locals.
	Locals int
	// BranchValues bounds Branches times the values of one function: its
	// locals plus the parameters and results of its largest block type.
	// The compiler's SSA construction does work for each such value at
	// each branch (50,000 locals with 2,000 branches took 88 s; blocks of
	// 3,000 parameters and results with 4,000 branches, 43 s).
	BranchValues int
}

func (l CodeLimits) withDefaults() CodeLimits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.FunctionBytes, DefaultMaxFunctionBytes)
	def(&l.Branches, DefaultMaxFunctionBranches)
	def(&l.Nesting, DefaultMaxFunctionNesting)
	def(&l.Locals, DefaultMaxFunctionLocals)
	def(&l.BranchValues, DefaultMaxFunctionBranchValues)
	return l
}

func (l CodeLimits) validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"function bytes", l.FunctionBytes}, {"branches", l.Branches}, {"nesting", l.Nesting}, {"locals", l.Locals}, {"branches × values", l.BranchValues}} {
		if f.v < 0 {
			return fmt.Errorf("wasm: max %s must be >= 0, got %d", f.name, f.v)
		}
	}
	return nil
}

// ErrOverLimit is wrapped by the error of a module refused by CodeLimits.
var ErrOverLimit = errors.New("module over the runtime's limits")

// funcStats is what checkFunctions measures of one function body.
type funcStats struct {
	bytes, branches, nesting int
	locals                   uint64 // parameters included
	blockValues              uint64 // parameters and results of its largest block type
}

// branchValues is the measure CodeLimits.BranchValues bounds.
func (s funcStats) branchValues() uint64 { return uint64(s.branches) * (s.locals + s.blockValues) }

// check returns an error naming the first limit of lim that function i is
// over (flag names the serve flag that sets it).
func (s funcStats) check(i int, lim CodeLimits) error {
	over := func(what string, got uint64, limit int, flag string) error {
		return fmt.Errorf("%w: function %d has %d %s, over the limit of %d (--%s)",
			ErrOverLimit, i, got, what, limit, flag)
	}
	switch {
	case s.bytes > lim.FunctionBytes:
		return over("bytes of code", uint64(s.bytes), lim.FunctionBytes, "wasm-max-function-bytes")
	case s.branches > lim.Branches:
		return over("blocks and branches", uint64(s.branches), lim.Branches, "wasm-max-function-branches")
	case s.nesting > lim.Nesting:
		return over("levels of nested blocks", uint64(s.nesting), lim.Nesting, "wasm-max-function-nesting")
	case s.locals > uint64(lim.Locals):
		return over("locals (parameters included)", s.locals, lim.Locals, "wasm-max-function-locals")
	case s.branchValues() > uint64(lim.BranchValues):
		return over("branches × values (locals and block parameters and results)", s.branchValues(), lim.BranchValues, "wasm-max-function-branch-values")
	}
	return nil
}

// checkFunctions measures every function body of bin's code section, its
// parameters counted as locals (they are, to the compiler), and returns
// visit's first error. A module whose sections cannot be delimited is
// left to wazero, which refuses it without compiling; one whose types or
// functions cannot be read is refused, so that no parameter goes
// uncounted.
func checkFunctions(bin []byte, visit func(i int, s funcStats) error) error {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return nil
	}
	var types []funcType
	var funcTypes []uint64 // per function of the code section
	for i := 8; i < len(bin); {
		id := bin[i]
		size, n := binary.Uvarint(bin[i+1:])
		if n <= 0 || uint64(len(bin)-i-1-n) < size {
			return nil
		}
		start := i + 1 + n
		sec := bin[start : start+int(size)]
		var ok bool
		switch id {
		case sectionType:
			if types, ok = readTypes(sec); !ok {
				return fmt.Errorf("%w: its type section cannot be read", errUnreadable)
			}
		case sectionFunction:
			if funcTypes, ok = readIndices(sec); !ok {
				return fmt.Errorf("%w: its function section cannot be read", errUnreadable)
			}
		case sectionCode:
			return scanCode(sec, types, func(i int, s funcStats) error {
				if i < len(funcTypes) && funcTypes[i] < uint64(len(types)) {
					s.locals += types[funcTypes[i]].params
				}
				return visit(i, s)
			})
		}
		i = start + int(size)
	}
	return nil
}

const (
	sectionType     = 1
	sectionFunction = 3
	sectionCode     = 10
)

var errUnreadable = errors.New("module cannot be read")

// funcType is what the limits need of a function type.
type funcType struct{ params, results uint64 }

// readTypes reads the function types of a type section; false if it holds
// anything else (wazero, with the core 2.0 features dedupfn enables,
// accepts nothing else either).
func readTypes(sec []byte) ([]funcType, bool) {
	r := reader{b: sec}
	n := r.u32()
	if n > uint64(len(sec)) { // each type takes at least 3 bytes
		return nil, false
	}
	types := make([]funcType, 0, n)
	for range n {
		if r.byte() != 0x60 {
			return nil, false
		}
		params := r.valtypes()
		types = append(types, funcType{params: params, results: r.valtypes()})
	}
	return types, !r.bad && r.i == len(sec)
}

// readIndices reads a vector of u32 (the function section: a type index
// per function).
func readIndices(sec []byte) ([]uint64, bool) {
	r := reader{b: sec}
	n := r.u32()
	if n > uint64(len(sec)) {
		return nil, false
	}
	idx := make([]uint64, 0, n)
	for range n {
		idx = append(idx, r.u32())
	}
	return idx, !r.bad && r.i == len(sec)
}

func scanCode(sec []byte, types []funcType, visit func(i int, s funcStats) error) error {
	r := reader{b: sec}
	count := r.u32()
	for i := 0; uint64(i) < count && r.ok(); i++ {
		size := r.u32()
		if !r.ok() || size > uint64(len(r.b)-r.i) {
			return nil
		}
		body := reader{b: r.b[r.i : r.i+int(size)]}
		r.i += int(size)
		s := scanBody(&body, types)
		if err := visit(i, s); err != nil {
			return err
		}
	}
	return nil
}

// scanBody measures one function body: its locals, then its instructions,
// decoded with their immediates so that an immediate byte is never taken
// for an opcode. An opcode it does not know (of a feature it does not
// decode) or a body it cannot read stops the decoding, and every byte of
// the body is then counted as a branch and a level of nesting: an
// overestimate, as every instruction takes at least one byte, so such a
// function is refused only if it could be over.
func scanBody(r *reader, types []funcType) funcStats {
	s := funcStats{bytes: len(r.b)}
	groups := r.u32()
	for g := uint64(0); g < groups && r.ok(); g++ {
		s.locals += r.u32()
		r.valtype()
	}
	depth := 0
	for r.ok() && r.i < len(r.b) {
		op := r.byte()
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if: blocktype
			if t := r.s33(); t >= 0 { // a type index, else none or one value type
				if t >= int64(len(types)) {
					r.bad = true
					break
				}
				s.blockValues = max(s.blockValues, types[t].params+types[t].results)
			}
			s.branches++
			depth++
			s.nesting = max(s.nesting, depth)
		case op == 0x05: // else
			s.branches++
		case op == 0x0b: // end
			depth--
		case op == 0x0c || op == 0x0d: // br, br_if: label
			r.u32()
			s.branches++
		case op == 0x0e: // br_table: labels, default
			n := r.u32()
			for k := uint64(0); k <= n && r.ok(); k++ {
				r.u32()
			}
			s.branches += int(min(n+1, uint64(len(r.b))))
		case op == 0x00 || op == 0x01 || op == 0x0f || op == 0x1a || op == 0x1b || op == 0xd1 ||
			op >= 0x45 && op <= 0xc4: // no immediate
		case op == 0x10 || op >= 0x20 && op <= 0x26 || op == 0x3f || op == 0x40 || op == 0xd2:
			r.u32() // call, local/global/table get/set, memory.size/grow, ref.func
		case op == 0x11: // call_indirect: type, table
			r.u32()
			r.u32()
		case op == 0x1c: // select t*
			n := r.u32()
			r.skip(n)
		case op >= 0x28 && op <= 0x3e: // loads and stores
			r.memarg()
		case op == 0x41 || op == 0x42 || op == 0xd0: // i32/i64.const, ref.null heap type
			r.s64()
		case op == 0x43:
			r.skip(4)
		case op == 0x44:
			r.skip(8)
		case op == 0xfc && r.prefixed0xFC():
		case op == 0xfd && r.prefixed0xFD():
		default:
			r.bad = true
		}
	}
	if r.bad {
		s.branches += len(r.b)
		s.nesting = max(s.nesting, depth+len(r.b))
	}
	return s
}

// prefixed0xFC skips the immediates of a 0xFC instruction (saturating
// truncations, bulk memory, tables); false for one it does not know.
func (r *reader) prefixed0xFC() bool {
	switch sub := r.u32(); {
	case sub <= 7: // trunc_sat
	case sub == 8, sub == 10, sub == 12, sub == 14: // memory.init, memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.u32()
	default:
		return false
	}
	return true
}

// prefixed0xFD skips the immediates of a SIMD instruction; false for one
// it does not know.
func (r *reader) prefixed0xFD() bool {
	switch sub := r.u32(); {
	case sub <= 11, sub == 92, sub == 93: // v128 loads and stores
		r.memarg()
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		r.skip(16)
	case sub >= 21 && sub <= 34: // extract/replace lane
		r.skip(1)
	case sub >= 84 && sub <= 91: // load/store lane
		r.memarg()
		r.skip(1)
	case sub <= 255: // the rest have no immediate
	default:
		return false
	}
	return true
}

// reader reads a wasm body; past its end or on a bad LEB128 it stops
// (ok is false) and every read returns 0.
type reader struct {
	b   []byte
	i   int
	bad bool
}

func (r *reader) ok() bool { return !r.bad }

func (r *reader) byte() byte {
	if r.bad || r.i >= len(r.b) {
		r.bad = true
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *reader) skip(n uint64) {
	if r.bad || n > uint64(len(r.b)-r.i) {
		r.bad = true
		return
	}
	r.i += int(n)
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (r *reader) u32() uint64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.i:])
	if n <= 0 || n > 5 {
		r.bad = true
		return 0
	}
	r.i += n
	return v
}

// s64 skips a signed LEB128 (s32, s33 or s64): at most 10 bytes, the
// last without its high bit.
func (r *reader) s64() {
	for n := 0; !r.bad; n++ {
		if n == 10 {
			r.bad = true
			return
		}
		if r.byte()&0x80 == 0 {
			return
		}
	}
}

// s33 reads a signed LEB128 of at most 5 bytes (a block type).
func (r *reader) s33() int64 {
	var v int64
	for n := 0; !r.bad; n++ {
		if n == 5 {
			r.bad = true
			break
		}
		b := r.byte()
		v |= int64(b&0x7f) << (7 * n)
		if b&0x80 == 0 {
			if b&0x40 != 0 { // negative: sign-extend
				v |= -1 << (7 * (n + 1))
			}
			return v
		}
	}
	return 0
}

// valtype skips a value type: one byte, or (ref null? heaptype).
func (r *reader) valtype() {
	if t := r.byte(); t == 0x63 || t == 0x64 {
		r.s64()
	}
}

// valtypes skips a vector of value types and returns its length.
func (r *reader) valtypes() uint64 {
	n := r.u32()
	for k := uint64(0); k < n && r.ok(); k++ {
		r.valtype()
	}
	return n
}

// memarg skips an alignment (whose bit 6 announces a memory index) and an
// offset.
func (r *reader) memarg() {
	if r.u32()&0x40 != 0 {
		r.u32()
	}
	r.u32()
}
