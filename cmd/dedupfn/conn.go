package main

import (
	"github.com/spf13/pflag"

	"github.com/dedupfn/dedupfn/internal/httpserve"
)

// connFlags are the connection deadlines of serve's listeners, the API
// and the built-in S3 endpoint alike (see internal/httpserve).
type connFlags struct{ limits httpserve.Limits }

func (f *connFlags) register(fl *pflag.FlagSet) {
	fl.DurationVar(&f.limits.ReadHeaderTimeout, "read-header-timeout", httpserve.DefaultReadHeaderTimeout,
		"close a connection whose request headers take longer than this to arrive")
	fl.DurationVar(&f.limits.IdleTimeout, "idle-timeout", httpserve.DefaultIdleTimeout,
		"close a keep-alive connection idle this long between requests")
	fl.Int64Var(&f.limits.MinRate, "min-body-rate", httpserve.DefaultMinRate,
		"slowest a request or response body may move, in bytes/s averaged over --body-rate-window; slower is cut")
	fl.DurationVar(&f.limits.RateWindow, "body-rate-window", httpserve.DefaultRateWindow,
		"period over which --min-body-rate is measured (the longest a body may stall)")
}
