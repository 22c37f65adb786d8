package s3server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/s3"
)

func init() { objects.Register("embedded", Open) }

// Store is the objects.Store of the "embedded" scheme: an s3 client for a
// Server it owns. Close closes both.
type Store struct {
	*s3.Client
	// Server is the running endpoint, for callers that need its address.
	Server *Server
}

var _ objects.Store = (*Store)(nil)

// Open starts a Server on opts.Addr (DefaultAddr if empty) with data in
// <opts.DataDir>/objects, credentials from opts (else the environment, as
// for s3:), events to opts.Publish, and returns a store connected to it.
func Open(ctx context.Context, _ *url.URL, opts objects.Options) (objects.Store, error) {
	if opts.DataDir == "" {
		return nil, errors.New("embedded: data dir must be set")
	}
	dir, err := filepath.Abs(filepath.Join(opts.DataDir, "objects"))
	if err != nil {
		return nil, fmt.Errorf("embedded: data dir: %w", err)
	}
	addr := opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	access, secret := opts.AccessKey, opts.SecretKey
	if access == "" && secret == "" {
		access, secret = os.Getenv(s3.EnvAccessKey), os.Getenv(s3.EnvSecretKey)
	}
	if access == "" || secret == "" {
		return nil, fmt.Errorf("embedded: access key and secret key must be set (options or %s/%s)", s3.EnvAccessKey, s3.EnvSecretKey)
	}
	srv, err := New(Config{
		DataDir:   dir,
		Addr:      addr,
		AccessKey: access,
		SecretKey: secret,
		Publish:   opts.Publish,
		Logger:    opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	client, err := s3.New(srv.Endpoint(), false, access, secret, srv.cfg.Region, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	if err := srv.Start(ctx); err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	return &Store{Client: client, Server: srv}, nil
}

// Close stops the endpoint. Safe to call twice.
func (s *Store) Close() error {
	return errors.Join(s.Client.Close(), s.Server.Close())
}
