package activation_test

import (
	"encoding/json"
	"testing"

	"github.com/dedupfn/dedupfn/internal/activation"
)

func TestStatsHitRate(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs []activation.Decision
		want float64
	}{
		{"None", nil, 0},
		{"OnlyErrorsAndSkipped", []activation.Decision{activation.Error, activation.Skipped}, 0},
		{"AllRuns", []activation.Decision{activation.Miss, activation.Miss}, 0},
		{"WaitsAreHits", []activation.Decision{activation.Miss, activation.Hit, activation.Wait, activation.Error}, 2.0 / 3},
		{"AllHits", []activation.Decision{activation.Hit}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st activation.Stats
			for _, d := range tc.recs {
				st.Add(activation.Record{Decision: d})
			}
			if got := st.HitRate(); got != tc.want {
				t.Fatalf("HitRate of %v = %v, want %v", tc.recs, got, tc.want)
			}
		})
	}
}

// FunctionStats is one flat JSON object: tenant, function and the totals.
func TestFunctionStatsJSON(t *testing.T) {
	fs := activation.FunctionStats{Tenant: "acme", Function: "thumb"}
	fs.Add(activation.Record{Decision: activation.Miss, FunctionMS: 12})
	b, err := json.Marshal(fs)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"tenant":"acme","function":"thumb","events":1,"runs":1,"hits":0,"waits":0,"errors":0,"skipped":0,"deletes":0,"dead_letters":0,"function_ms":12,"saved_ms":0}`
	if string(b) != want {
		t.Fatalf("JSON %s\nwant %s", b, want)
	}
}
