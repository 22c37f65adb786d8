package bolt_test

import (
	"fmt"
	"testing"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/index/bolt"
)

// outputDocs are the three documents the pipeline notes for an output
// (derived, output, copy), of about their real sizes.
func outputDocs(i int64) []index.Doc {
	prov := fmt.Appendf(nil, `{"bucket":"out","key":"o%d","sha256":"%064d","tenant":"t","function":"f","version":1,"stage":1,`+
		`"input":{"bucket":"in","key":"k%d","sha256":"%064d"},"activation":"a%d","dedup_key":"%064d","written":"2026-12-02T01:00:00Z"}`, i, i, i, i, i, i)
	return []index.Doc{
		{Kind: "derived", ID: fmt.Sprintf("in/k%d/out/o%d", i, i), Doc: fmt.Appendf(nil, `{"bucket":"out","key":"o%d","tenant":"t","function":"f","stage":1}`, i)},
		{Kind: "output", ID: fmt.Sprintf("out/o%d", i), Doc: prov},
		{Kind: "copy", ID: fmt.Sprintf("%064d/out/o%d", i, i), Doc: fmt.Appendf(nil, `{"bucket":"out","key":"o%d","sha256":"%064d"}`, i, i)},
	}
}

// putDocs3 notes one output's documents with one PutDocs; putDoc3x with
// three PutDoc calls, as noteOutput did before PutDocs.
func putDocs3(b *testing.B, db *bolt.DB, i int64) error {
	return db.PutDocs(b.Context(), outputDocs(i))
}

func putDoc3x(b *testing.B, db *bolt.DB, i int64) error {
	for _, d := range outputDocs(i) {
		if err := db.PutDoc(b.Context(), d.Kind, d.ID, d.Doc); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkPutDocs3: one output's provenance in one PutDocs, one writer
// at a time and from benchGoroutines goroutines.
func BenchmarkPutDocs3(b *testing.B) { benchNoteOutput(b, putDocs3) }

// BenchmarkPutDoc3x: the same documents in three PutDoc calls.
func BenchmarkPutDoc3x(b *testing.B) { benchNoteOutput(b, putDoc3x) }

func benchNoteOutput(b *testing.B, op func(*testing.B, *bolt.DB, int64) error) {
	b.Run("serial", func(b *testing.B) {
		db := openBench(b)
		b.ResetTimer()
		start := db.CommitsForTest(b)
		for i := range b.N {
			if err := op(b, db, int64(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(db.CommitsForTest(b)-start)/float64(b.N), "commits/op")
	})
	b.Run(fmt.Sprintf("parallel%d", benchGoroutines), func(b *testing.B) {
		db := openBench(b)
		parallel(b, db, func(i int64) error { return op(b, db, i) })
	})
}
