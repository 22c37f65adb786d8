package openwhisk

import (
	"cmp"
	"fmt"

	"github.com/dedupfn/dedupfn/internal/runtime"
)

// RemoteHost returns the host of the controller fn's invocations go to:
// its action runs behind that host and fetches get_url from there, so
// dedupfn refuses at deploy a get_url that host cannot reach.
func (r *Runtime) RemoteHost(fn runtime.Function) (string, error) {
	api := cmp.Or(fn.Config[ConfigAPI], r.opts.API)
	if api == "" {
		return "", fmt.Errorf("openwhisk: function %s has no %s", fn.Name, ConfigAPI)
	}
	u, err := parseAPI(api)
	if err != nil {
		return "", err
	}
	return u.Hostname(), nil
}
