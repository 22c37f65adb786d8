package api

import "testing"

// SetSeriesScanCapForTest lowers SeriesScanCap for the test tb.
func SetSeriesScanCapForTest(tb testing.TB, n int) {
	tb.Helper()
	old := seriesScanCap
	seriesScanCap = n
	tb.Cleanup(func() { seriesScanCap = old })
}
