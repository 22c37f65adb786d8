// Command copy is the smallest dedupfn function: it copies its input
// (stdin) to its output (stdout). `dedupfn bench` runs it to measure the
// platform's own cost around a function that does almost nothing.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -trimpath -o copy.wasm .
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "copy:", err)
		os.Exit(1)
	}
}
