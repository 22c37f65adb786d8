package objectstest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/objects"
)

// ErrorStores opens the stores RunErrors needs. Each returned store is
// closed by the suite.
type ErrorStores struct {
	// Store opens a working store.
	Store func(tb testing.TB) objects.Store
	// WrongSecret opens a store for the same endpoint whose requests are
	// signed with the right access key but a wrong secret key.
	WrongSecret func(tb testing.TB) objects.Store
	// Unreachable opens a store for an address where nothing listens
	// (connection refused), as when the server is stopped.
	Unreachable func(tb testing.TB) objects.Store
}

// errorClass is how a caller must treat an error.
type errorClass string

const (
	classNotFound  errorClass = "not found"
	classPermanent errorClass = "permanent"
	classTransient errorClass = "transient"
)

func classify(err error) errorClass {
	switch {
	case errors.Is(err, objects.ErrNotFound) && errors.Is(err, objects.ErrPermanent):
		return "both not found and permanent"
	case errors.Is(err, objects.ErrNotFound):
		return classNotFound
	case errors.Is(err, objects.ErrPermanent):
		return classPermanent
	}
	return classTransient
}

// RunErrors checks the error contract of objects.Store (see
// objects.ErrPermanent): each case's Get must fail, and its error must be
// classified not found, permanent or transient as a caller deciding
// whether to retry needs.
func RunErrors(t *testing.T, stores ErrorStores) {
	t.Helper()
	tests := []struct {
		name  string
		store func(tb testing.TB) objects.Store
		key   string
		// missingBucket reads from a bucket that does not exist.
		missingBucket bool
		want          errorClass
	}{
		// Retrying cannot create the bucket (issue 19 item 3).
		{name: "MissingBucket", store: stores.Store, key: "k", missingBucket: true, want: classPermanent},
		{name: "MissingKey", store: stores.Store, key: "missing", want: classNotFound},
		// Keys the client or the server refuses: no retry will change that.
		{name: "KeyWithNUL", store: stores.Store, key: "bad\x00key", want: classPermanent},
		{name: "KeyNotUTF8", store: stores.Store, key: "bad\xffkey", want: classPermanent},
		{name: "KeyTooLong", store: stores.Store, key: strings.Repeat("k", 1025), want: classPermanent},
		{name: "EmptyKey", store: stores.Store, key: "", want: classPermanent},
		{name: "WrongSecret", store: stores.WrongSecret, key: "k", want: classPermanent},
		{name: "Unreachable", store: stores.Unreachable, key: "k", want: classTransient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.store == nil {
				t.Skip("backend provides no store for this case")
			}
			good := stores.Store(t)
			t.Cleanup(func() { good.Close() })
			bucket := NewBucket(t, good)
			s := tc.store(t)
			t.Cleanup(func() { s.Close() })
			if tc.missingBucket {
				bucket += "-nope"
			}
			// A client that retries transient errors (minio-go does, about
			// 10 times with backoff) must still give up well within this.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			name := tc.key
			if len(name) > 40 {
				name = name[:40] + "..."
			}
			rc, _, err := s.Get(ctx, bucket, tc.key, "", "")
			if err == nil {
				rc.Close()
				t.Fatalf("get %s/%q succeeded, want a %s error", bucket, name, tc.want)
			}
			if ctx.Err() != nil {
				t.Fatalf("get %s/%q: gave up only at the test deadline: %v", bucket, name, err)
			}
			if got := classify(err); got != tc.want {
				t.Errorf("get %s/%q: error %.200q is %s, want %s", bucket, name, err, got, tc.want)
			}
		})
	}
}
