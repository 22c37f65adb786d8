package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/pipeline"
)

// A shared function's hit gives each tenant the lineage of its own
// objects only; another tenant's object is answered as one dedupfn
// knows nothing of.
func TestLineage_TenantSeesOnlyItsOwn(t *testing.T) {
	e, _ := sharedEnv(t, nil)
	secret := "hr/plans-" + t.Name() + ".txt"
	put(t, "acme-in", secret, "same bytes")
	put(t, "globex-in", "mine.txt", "same bytes")
	e.invokeAs(t, acmeToken, "acme-in", secret, false)
	if rec, _ := e.invokeAs(t, otherToken, "globex-in", "mine.txt", false); rec.Decision != "hit" {
		t.Fatalf("globex's run of the same bytes: %s, want a hit of the shared result", rec.Decision)
	}

	code, body := e.do(t, "GET", "/v1/lineage?bucket=acme-out&key="+secret, acmeToken, nil)
	var l pipeline.Lineage
	if err := json.Unmarshal([]byte(body), &l); code != http.StatusOK || err != nil || len(l.Chain) != 2 ||
		l.Chain[0].Bucket != "acme-in" || l.Chain[0].Key != secret || l.Chain[0].Function != "" ||
		l.Chain[1].Function != "sh" || l.Chain[1].Stage != 1 || l.Chain[1].Activation == "" || l.Derived == nil {
		t.Fatalf("acme's lineage of its output: %d %s", code, body)
	}

	code, body = e.do(t, "GET", "/v1/lineage?bucket=globex-out&key=mine.txt", otherToken, nil)
	if code != http.StatusOK || strings.Contains(body, "acme") || strings.Contains(body, "plans") || !strings.Contains(body, `"globex-in"`) {
		t.Fatalf("globex's lineage of its hit: %d %s; want its own chain, nothing of acme's", code, body)
	}
	code, body = e.do(t, "GET", "/v1/lineage?bucket=acme-in&key="+secret, otherToken, nil)
	unknownCode, unknownBody := e.do(t, "GET", "/v1/lineage?bucket=globex-in&key="+secret, otherToken, nil)
	if code != http.StatusNotFound || unknownCode != http.StatusNotFound ||
		strings.Replace(body, "acme-in", "globex-in", 1) != unknownBody {
		t.Fatalf("another tenant's object: %d %s; an unknown one: %d %s; want the same 404", code, body, unknownCode, unknownBody)
	}
	if code, _ := e.do(t, "GET", "/v1/lineage?bucket=acme-in", acmeToken, nil); code != http.StatusBadRequest {
		t.Fatalf("lineage without a key: %d, want 400", code)
	}
}
