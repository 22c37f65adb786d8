// Package chaos proves dedupfn's guarantee under faults by counting
// executions: replicas built with fault injection, killed and restarted,
// with renewals failing and outputs slower than the lease. It is its own
// package so that go test runs it beside test/e2e, not after it. Each
// test has its own peers and replicas, and they run in parallel: they
// wait, mostly (functions and outputs slower than the lease, rebalances).
// The chaos tests' side files are counted by the function itself, so
// the load of the others changes timings, never what is asserted.
package chaos

import (
	"testing"

	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
