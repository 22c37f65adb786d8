// Package chaos proves dedupfn's guarantee under faults by counting
// executions: replicas built with fault injection, killed and restarted,
// with renewals failing and outputs slower than the lease. It is its own
// package so that go test runs it beside test/e2e, not after it. Its
// tests run one at a time: four at once on two busy cores starved lease
// renewals past the 2 s lease, and TestChaos_NoKills saw contents run
// twice with no replica killed.
package chaos

import (
	"testing"

	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
