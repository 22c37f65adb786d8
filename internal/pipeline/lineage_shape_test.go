package pipeline_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestLineage_JSONListsNeverNull: issue 20's --json shape has chain and
// derived as lists; an object nothing was made from has "derived": [],
// not null (which a client iterating the list would trip on).
func TestLineage_JSONListsNeverNull(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(nil)
	c.upload("a.jpg", "A")
	l, err := c.pipe.Lineage(t.Context(), c.labels, "a.jpg.label", func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"derived":[]`) || strings.Contains(string(b), "null") {
		t.Fatalf("lineage of a final output: %s; want derived [] and no null", b)
	}
}
