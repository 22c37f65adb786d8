package testutil

import (
	"encoding/json"
	"testing"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// DeployUnchecked stores f with its code in idx as registry.Deploy would,
// but without Deploy's graph check, and refreshes reg: a function whose
// output can trigger itself, as one deployed before that check existed
// can. Tests of the pipeline's own guard against such loops use it.
func DeployUnchecked(tb testing.TB, idx index.DocStore, reg *registry.Registry, f registry.Function, code []byte) registry.Function {
	tb.Helper()
	ctx := tb.Context()
	f.CodeDigest = registry.Digest(code)
	if err := idx.PutBlob(ctx, f.CodeDigest, code); err != nil {
		tb.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		tb.Fatal(err)
	}
	doc, err := json.Marshal(f)
	if err != nil {
		tb.Fatal(err)
	}
	if err := idx.PutDoc(ctx, "function", f.Tenant+"/"+f.Name, doc); err != nil {
		tb.Fatal(err)
	}
	if err := reg.Refresh(ctx); err != nil {
		tb.Fatal(err)
	}
	return f
}
