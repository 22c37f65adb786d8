package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// TestMaxParamsFlag (issue 17 item 12): serve --max-params (KiB) sets the
// API's params cap; the default is 64 KiB, and 0 is refused.
func TestMaxParamsFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{{nil, registry.DefaultMaxParamsBytes}, {[]string{"--max-params", "8"}, 8 << 10}} {
		var o securityOptions
		fl := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		o.register(fl)
		if err := fl.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if _, err := o.openWhiskOptions(nil); err != nil {
			t.Fatal(err)
		}
		if got := o.apiConfig(api.Config{}).MaxParamsBytes; got != tc.want {
			t.Errorf("%v: MaxParamsBytes = %d, want %d", tc.args, got, tc.want)
		}
	}
	var o securityOptions
	fl := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o.register(fl)
	fl.Parse([]string{"--max-params", "0"})
	if _, err := o.openWhiskOptions(nil); err == nil || !strings.Contains(err.Error(), "--max-params") {
		t.Fatalf("--max-params 0: %v, want it refused", err)
	}
}
