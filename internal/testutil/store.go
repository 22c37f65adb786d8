package testutil

import (
	"context"
	"net"
	"os"
	"testing"

	"github.com/dedupfn/dedupfn/internal/objects"
	_ "github.com/dedupfn/dedupfn/internal/objects/s3server" // registers embedded:
)

// embeddedStore starts the built-in S3 endpoint in a temporary directory,
// for a TestMain: only one can run per process, so a package's tests share
// it (each test using its own buckets). stop closes it and removes its data.
func embeddedStore() (store objects.Store, stop func(), err error) {
	dir, err := os.MkdirTemp("", "dedupfn-store-*")
	if err != nil {
		return nil, nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	addr := l.Addr().String()
	l.Close()
	store, err = objects.Open(context.Background(), "embedded:", objects.Options{
		DataDir: dir, Addr: addr, AccessKey: "test-access", SecretKey: "test-secret-key",
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return store, func() { store.Close(); os.RemoveAll(dir) }, nil
}

// MainWithStore is a TestMain body for packages whose tests share one
// embedded store: it starts it into *store, runs the tests, stops it and
// exits with the tests' code.
func MainWithStore(m *testing.M, store *objects.Store) {
	s, stop, err := embeddedStore()
	if err != nil {
		panic(err)
	}
	*store = s
	code := m.Run()
	stop()
	os.Exit(code)
}
