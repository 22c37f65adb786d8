package indextest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/index"
)

// DocsPrefix checks that DocsPrefix selects exactly the documents of a
// kind whose ids start with the prefix, in id order, across the
// boundaries the pipeline's ids have ("ab" is a prefix of "abc" and of
// "ab."); a backend that pages its listing runs it with a small page too.
func DocsPrefix(t *testing.T, idx index.Index) {
	ctx := t.Context()
	ids := []string{"abc.2", "ab", "b", "ab/x", "a", "abc", "ab.1", "aa", "ab.1/f", "a_b", "axb", "b0"}
	for _, id := range ids {
		if err := idx.PutDoc(ctx, "lineage", id, []byte(`{"id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"ab.z", "abd", "ab"} { // another kind: never listed
		if err := idx.PutDoc(ctx, "lineagex", id, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"ab", []string{"ab", "ab.1", "ab.1/f", "ab/x", "abc", "abc.2"}},
		{"ab.", []string{"ab.1", "ab.1/f"}},
		{"ab.1", []string{"ab.1", "ab.1/f"}},
		{"ab/", []string{"ab/x"}},
		{"abc", []string{"abc", "abc.2"}},
		{"abc.2", []string{"abc.2"}},
		{"abc.2.", nil},
		{"b", []string{"b", "b0"}},
		{"a_", []string{"a_b"}}, // no wildcard: "axb" is not listed
		{"zz", nil},
	} {
		var got []string
		err := idx.DocsPrefix(ctx, "lineage", tc.prefix, func(id string, doc []byte) error {
			if want := `{"id":"` + id + `"}`; string(doc) != want {
				return fmt.Errorf("doc of %s = %s, want %s", id, doc, want)
			}
			got = append(got, id)
			return nil
		})
		if err != nil {
			t.Fatalf("DocsPrefix(%q): %v", tc.prefix, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("DocsPrefix(%q) = %q, want %q: exactly the ids with the prefix, in id order", tc.prefix, got, tc.want)
		}
	}
	var got []string
	if err := idx.DocsPrefix(ctx, "none", "", func(id string, _ []byte) error { got = append(got, id); return nil }); err != nil || got != nil {
		t.Fatalf("DocsPrefix of an empty kind = %q, %v; want nothing", got, err)
	}

	stop := errors.New("stop")
	calls := 0
	err := idx.DocsPrefix(ctx, "lineage", "ab", func(id string, _ []byte) error {
		calls++
		if strings.HasPrefix(id, "ab.") {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Fatalf("DocsPrefix with fn failing on the 2nd doc = %v after %d calls, want fn's error after 2", err, calls)
	}
}
