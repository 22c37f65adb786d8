package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/dedupfn/dedupfn/internal/bytesize"
)

// sizeValue is a flag (or config file key) holding a size: a number with
// a binary unit ("16GiB", "64MiB", "512KiB", "1.5GiB"), or a bare number
// in the flag's unit of old (bare: 1 for bytes, 1<<20 for MiB), so that
// what worked before still means the same. The variable holds the size in
// units of stored (1: bytes; 1<<20: MiB, which the size must then be a
// whole number of).
type sizeValue[T ~int | ~int64] struct {
	p            *T
	bare, stored int64
	never        bool // -1 is a setting of its own: "never" (--inline-limit)
}

// sizeVar defines a size flag with default def, in units of stored, and
// its usage: say what a bare number counts in it.
func sizeVar[T ~int | ~int64](fs *pflag.FlagSet, p *T, name string, def T, bare, stored int64, usage string) *sizeValue[T] {
	*p = def
	v := &sizeValue[T]{p: p, bare: bare, stored: stored}
	fs.Var(v, name, usage)
	return v
}

func (v *sizeValue[T]) Set(s string) error {
	if v.never && s == "-1" {
		*v.p = -1
		return nil
	}
	n, err := bytesize.Parse(s, v.bare)
	if err != nil {
		return err
	}
	if n%v.stored != 0 {
		return fmt.Errorf("size must be a whole number of %s, got %q", bytesize.Unit(v.stored)[1:], s)
	}
	*v.p = T(n / v.stored)
	return nil
}

func (v *sizeValue[T]) String() string {
	if *v.p < 0 {
		return fmt.Sprint(*v.p)
	}
	return bytesize.Unit(int64(*v.p) * v.stored)
}

func (v *sizeValue[T]) Type() string { return "size" }
