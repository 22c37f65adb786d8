package attack

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
)

// globex tries to feed its outputs into acme's pipeline (issue 20: a
// tenant's function is never triggered by another tenant's outputs unless
// the bucket is the tenant's own): an output into acme's trigger bucket
// and a trigger of acme's on globex's output bucket are both refused, and
// globex's outputs in its own bucket run nothing of acme's.
func attackChainIntoOtherTenant(t *testing.T) {
	s := startServer(t)
	_, errOut := deploy(t, s.client(globexToken), copyFn(t, "feed", "globex-in", "", "acme-in", false))
	_, errTrig := deploy(t, s.client(acmeToken), copyFn(t, "tap", "globex-out", "", "acme-out", false))
	mustDeploy(t, s.client(globexToken), copyFn(t, "gcp", "globex-in", "", "globex-out", false))
	mustDeploy(t, s.client(acmeToken), copyFn(t, "acp", "acme-in", "", "acme-out", false))
	s.put("globex-in", "p.txt", []byte("globex's"), nil)
	s.waitActivations(1, time.Minute, onKey("globex-in", "p.txt"))
	time.Sleep(time.Second) // a chained activation would show now
	acme := 0
	for _, r := range s.activations() {
		if r.Tenant == "acme" {
			acme++
		}
	}
	mine, err := s.client(acmeToken).Activations(t.Context(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	out := s.get("acme-out", "p.txt")
	report(t, "403, 403; no acme activation", fmt.Sprintf("%s, %s; %d acme activations (%d in its own view), acme-out/p.txt %s",
		status(errOut), status(errTrig), acme, len(mine), short(out)))
	if status(errOut) != "403" || status(errTrig) != "403" {
		t.Errorf("globex's output into acme-in: %v; acme's trigger on globex-out: %v; want both 403", errOut, errTrig)
	}
	if acme != 0 || len(mine) != 0 || out != nil {
		t.Errorf("globex's output triggered acme: %d activations of acme's (%v), acme-out/p.txt %q", acme, names(mine), out)
	}
}

// status is the HTTP status an API call's error names, "ok" for none.
func status(err error) string {
	if err == nil {
		return "ok"
	}
	if _, code, ok := strings.Cut(err.Error(), "(HTTP "); ok {
		return strings.TrimSuffix(code, ")")
	}
	return err.Error()
}

func names(recs []activation.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Function+" "+r.Event.Bucket+"/"+r.Event.Key)
	}
	return out
}
