// Package harness drives the dedupfn binary as a user would, for the
// end-to-end test packages (test/e2e, test/chaos): `dedupfn serve` in a
// subprocess (Server), the production wiring of real MinIO, a
// Kafka-protocol broker and a shared CouchDB-API index (Cluster), and
// the side files in which test functions count their executions.
package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/dedupfn/dedupfn/internal/testutil"
)

// The S3 credentials every Server is started with.
const (
	AccessKey = "e2e-access"
	SecretKey = "e2e-secret-key-0123"
)

// The programs the tests run, built by Main.
var (
	Dedupfn   string
	Thumbnail string // examples/thumbnail, WebAssembly
	Slowcopy  string // test/e2e/testdata/slowcopy, WebAssembly
	// Faulty is dedupfn built with -tags faultinject: DEDUPFN_FAULTS
	// injects index and store faults (cmd/dedupfn/faults_inject.go).
	Faulty string
	// ChaosAction is the process action of the chaos and pipeline tests
	// (test/e2e/testdata/chaosaction).
	ChaosAction string
)

// Main is a test package's TestMain: it builds the programs above into a
// temporary directory, runs the tests and removes the directory.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "dedupfn-e2e-*")
	if err != nil {
		panic(err)
	}
	Dedupfn = filepath.Join(dir, "dedupfn")
	Thumbnail = filepath.Join(dir, "thumbnail.wasm")
	Slowcopy = filepath.Join(dir, "slowcopy.wasm")
	Faulty = filepath.Join(dir, "dedupfn-faulty")
	ChaosAction = filepath.Join(dir, "chaosaction")
	if err := testutil.BuildAll(
		testutil.Binary{Out: Dedupfn, Pkg: "./cmd/dedupfn"},
		testutil.Binary{Out: Faulty, Pkg: "./cmd/dedupfn", Tags: "faultinject"},
		testutil.Binary{Out: ChaosAction, Pkg: "./test/e2e/testdata/chaosaction"},
		testutil.Binary{Out: Thumbnail, Pkg: "./examples/thumbnail", Wasm: true},
		testutil.Binary{Out: Slowcopy, Pkg: "./test/e2e/testdata/slowcopy", Wasm: true},
	); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
