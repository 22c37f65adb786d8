// Package objects defines the object store dedupfn reads inputs from and
// writes outputs to. Backends register a URL scheme: s3: (any S3 through
// minio-go) and embedded: (the built-in endpoint in objects/s3server).
package objects

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/httpserve"
	"github.com/dedupfn/dedupfn/internal/plugin"
)

// ErrNotFound is returned for a missing object or object version (and,
// where the store cannot tell which is missing, as for a HEAD on AWS S3,
// for a Stat in a missing bucket).
var ErrNotFound = errors.New("objects: not found")

// ErrExists is returned by a Put with PutOptions.IfNoneMatch when an
// object is already at the key: nothing was written. It is neither
// ErrNotFound nor ErrPermanent.
var ErrExists = errors.New("objects: an object exists at the key")

// ErrNoSuchBucket is wrapped by the errors of requests to a bucket that
// does not exist. It wraps ErrPermanent: retrying will not create the
// bucket, so a function whose output bucket is missing is a dead letter
// at once rather than re-run.
var ErrNoSuchBucket = fmt.Errorf("%w: no such bucket", ErrPermanent)

// NoSuchBucket is the error of a request to bucket, which does not exist:
// one line naming it and how to create it, wrapping ErrNoSuchBucket and
// cause, if any (the store's own answer, kept out of the text: it may be
// XML).
func NoSuchBucket(bucket string, cause error) error {
	return &noSuchBucketError{bucket: bucket, cause: cause}
}

type noSuchBucketError struct {
	bucket string
	cause  error
}

func (e *noSuchBucketError) Error() string {
	return fmt.Sprintf("bucket %q does not exist: create it (aws s3 mb s3://%s, or dedupfn serve --create-bucket %s)",
		e.bucket, e.bucket, e.bucket)
}

func (e *noSuchBucketError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrNoSuchBucket}
	}
	return []error{ErrNoSuchBucket, e.cause}
}

// ErrPermanent is wrapped by errors that retrying the same request will not
// cure: the store understood the request and refused it (a 4xx such as
// AccessDenied, SignatureDoesNotMatch, InvalidObjectName, InvalidObjectState
// for an archived object, a malformed request), or the client refused to
// send it (an invalid key). Check it with errors.Is.
//
// A missing object or version is ErrNotFound instead, never both; a
// missing bucket is ErrNoSuchBucket, which is permanent.
// Everything else (5xx, SlowDown, 408, 409, 429, timeouts, refused or reset
// connections, a cancelled context) wraps neither and is transient.
var ErrPermanent = errors.New("objects: permanent error")

// ErrAccessDenied is wrapped, with ErrPermanent, by errors of a store
// that refused the request's credentials (an unknown access key, a wrong
// secret: the signature does not match) or their access (AccessDenied).
// Check it with errors.Is to tell a user to check their credentials.
var ErrAccessDenied = errors.New("objects: the store refused the credentials")

// Info describes one object.
type Info struct {
	Bucket      string
	Key         string
	VersionID   string
	ETag        string // without quotes
	Size        int64
	ContentType string
	Modified    time.Time
	// Metadata is the user metadata, keys lower-case without "x-amz-meta-".
	Metadata map[string]string
	// SHA256 is the lower-case hex SHA-256 of the whole object's bytes,
	// set only when the store holds a trusted full-object checksum: one it
	// computed from the bytes itself (the built-in endpoint) or verified
	// against them on upload (an S3 FULL_OBJECT x-amz-checksum-sha256).
	// Composite multipart checksums, ETags, MD5 and user metadata never
	// set it. Empty means unknown: read and hash the object.
	SHA256 string
}

// PutOptions are set on a written object.
type PutOptions struct {
	ContentType string
	Metadata    map[string]string // user metadata, keys without "x-amz-meta-"
	// IfNoneMatch makes a Put write only if no object is at the key, else
	// fail with ErrExists (If-None-Match: *), decided by the store
	// atomically with the write where it enforces the header; a backend
	// whose store does not checks first (a Stat), which leaves the race a
	// Stat before a write always has. Put only: neither MinIO nor the
	// built-in endpoint honours it on a copy, so Copy refuses it.
	IfNoneMatch bool
	// IfMatch, an ETag, makes a Put write only over the object that has
	// it (If-Match), else fail with ErrExists: the caller saw that object
	// and decided it may be replaced, and an object put there since is not
	// it. Put only, as IfNoneMatch; a store that ignores the header writes
	// anyway.
	IfMatch string
}

// Store reads and writes objects. Implementations are safe for concurrent use.
// Every method's error wraps ErrNotFound, wraps ErrPermanent, or is
// transient (see ErrPermanent); a conditional Put's may also be ErrExists.
type Store interface {
	// Get opens an object for streaming. A non-empty versionID reads that
	// version; a non-empty etag makes the read fail with ErrNotFound if the
	// object has changed since the event (If-Match). The caller closes the reader.
	Get(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, Info, error)
	// Stat returns an object's info, or ErrNotFound.
	Stat(ctx context.Context, bucket, key string) (Info, error)
	// Put writes an object of size bytes (-1 if unknown) from r.
	Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts PutOptions) (Info, error)
	// Copy copies the object src.Bucket/src.Key server-side, replacing its
	// metadata with opts. ErrNotFound if the source is missing. A non-empty
	// src.ETag copies only that version of the source (If-Match; ErrNotFound
	// if it changed); a remote store then makes the Info returned from src
	// (its Size) and the copy's answer instead of reading it back. The
	// Info's SHA256 is the store's own SHA-256 of the bytes it delivered
	// to the destination where it computes one on copy (the built-in
	// endpoint; MinIO/S3, asked for a SHA-256 checksum), else empty: it is
	// what a hit checks, never the source's ETag.
	Copy(ctx context.Context, src Info, dstBucket, dstKey string, opts PutOptions) (Info, error)
	// Delete removes an object; a missing object is not an error.
	Delete(ctx context.Context, bucket, key string) error
	// List calls fn for every object under prefix in bucket whose key
	// sorts after startAfter ("" = from the first), in key order (byte
	// order, as S3 lists), until fn returns an error, which List returns.
	// A listing resumed with startAfter = the last key seen continues
	// where it stopped.
	List(ctx context.Context, bucket, prefix, startAfter string, fn func(Info) error) error
	// MakeBucket creates a bucket; an existing bucket is not an error.
	MakeBucket(ctx context.Context, bucket string) error
	// BucketExists reports whether a bucket exists (a deploy checks its
	// trigger and output buckets).
	BucketExists(ctx context.Context, bucket string) (bool, error)
	// PresignGet and PresignPut return URLs that grant access to one object
	// for expiry, for remote functions (OpenWhisk) that fetch their own input.
	PresignGet(ctx context.Context, bucket, key string, expiry time.Duration) (string, error)
	PresignPut(ctx context.Context, bucket, key string, expiry time.Duration) (string, error)
	io.Closer
}

// Options are passed to every backend constructor.
type Options struct {
	Logger *slog.Logger
	// DataDir is where embedded backends keep their files.
	DataDir string
	// Addr is the listen address of the built-in endpoint (embedded: only).
	Addr string
	// Limits are the deadlines of the built-in endpoint's connections
	// (embedded: only); zero fields take httpserve's defaults.
	Limits httpserve.Limits
	// AccessKey and SecretKey are the credentials when the URL has none.
	AccessKey, SecretKey string
	// Publish, when set, receives an event for every object created through
	// an embedded endpoint. The write is acknowledged to the client only
	// after Publish returns nil, so an accepted event is durable.
	Publish func(context.Context, event.Event) error
}

// OpenFunc opens a backend from its URL.
type OpenFunc func(ctx context.Context, u *url.URL, opts Options) (Store, error)

var backends = plugin.New[OpenFunc]("objects")

// Register makes a backend available under a URL scheme. Call from init.
func Register(scheme string, open OpenFunc) { backends.Register(scheme, open) }

// Open opens the store named by rawURL.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	open, u, err := backends.Lookup(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return open(ctx, u, opts)
}
