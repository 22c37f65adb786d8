package pipeline

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/inputurl"
	"github.com/dedupfn/dedupfn/internal/registry"
	"github.com/dedupfn/dedupfn/internal/runtime"
)

// objectURLs gives a function outside the sandbox its URLs, valid for the
// run about to start (its timeout and DefaultURLMargin) and no longer:
// get_url is dedupfn's own copy of the input (Config.Inputs), the bytes
// that were fingerprinted, since the key may hold others by the time the
// function fetches it; put_url is a presigned PUT of a staging key. The
// returned func revokes get_url; call it as soon as the invocation ends.
func (p *Pipeline) objectURLs(ctx context.Context, j *job, in *input, ref *runtime.ObjectRef) (revoke func(), err error) {
	life := urlLife(j.fn.Limits.Timeout)
	revoke = func() {}
	if p.cfg.Inputs != nil && in.sp != nil {
		// A spool reads back from memory or from its file, both ReaderAts.
		ra, ok := in.sp.Reader().(io.ReaderAt)
		if !ok {
			return revoke, runtime.Errorf(runtime.ClassPlatform, "serve input by URL: its spool cannot be read at an offset")
		}
		ref.GetURL, revoke = p.cfg.Inputs.Publish(ra, in.sp.Size(), in.info.ContentType, time.Now().Add(life))
	}
	// The function uploads to a staging key, never to the output key
	// itself: an upload there would carry no output marker and could
	// trigger the function on its own output. storeOutput moves it.
	j.staging = event.StagingPrefix + j.rec.ID + "/" + newID()
	if ref.PutURL, err = p.cfg.Objects.PresignPut(ctx, j.fn.Output.Bucket, j.staging, life); err != nil {
		revoke()
		return func() {}, runtime.Errorf(runtime.ClassPlatform, "presign output: %v", err)
	}
	return revoke, nil
}

// urlLife is how long a run's URLs stay valid: its timeout (the
// registry's default when unset, as runtimes default it) and a margin.
func urlLife(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		timeout = registry.DefaultTimeout
	}
	return timeout + DefaultURLMargin
}

// remoteRuntime is implemented by runtimes whose functions run on
// another host (openwhisk): RemoteHost names it.
type remoteRuntime interface {
	RemoteHost(fn runtime.Function) (string, error)
}

// checkReach refuses a function that runs on another host while get_url
// names an address only this machine reaches (Config.Inputs on loopback):
// each of its runs would fail to read its input. A platform on loopback
// itself reaches it.
func (p *Pipeline) checkReach(rt runtime.Runtime, fn registry.Function) error {
	r, ok := rt.(remoteRuntime)
	if !ok || p.cfg.Inputs == nil || !p.cfg.Inputs.Local() {
		return nil
	}
	host, err := r.RemoteHost(runtime.Function{Tenant: fn.Tenant, Name: fn.Name, Config: fn.Config})
	if err != nil || inputurl.LocalHost(host) {
		return nil // no host: the runtime refuses it when invoked, as before
	}
	return fmt.Errorf("function %s runs on %s, which cannot fetch its input from %s (an address only this machine reaches): start serve with --public-url set to an address %s can reach",
		fn.Name, host, p.cfg.Inputs.Base(), host)
}
