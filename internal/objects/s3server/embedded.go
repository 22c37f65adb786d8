package s3server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/versity/versitygw/s3api/utils"
	"github.com/versity/versitygw/s3err"
	"github.com/versity/versitygw/s3response"

	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/s3"
)

func init() { objects.Register("embedded", Open) }

// Store is the objects.Store of the "embedded" scheme, for a Server it
// owns. Get, Stat, Put, Copy and Delete call the server's backend in
// process, with no HTTP or SigV4 in between; writes still go through the
// same wrapper as the endpoint's (hashed, stored SHA-256, published
// event). List, MakeBucket and the presigned URLs use the embedded s3
// client over the listener. Close closes both.
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
		Limits:    opts.Limits,
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

// maxKeyLen is the S3 limit on an object key, in bytes.
const maxKeyLen = 1024

// check refuses, as the endpoint and minio-go would, names no request
// could use: an invalid bucket name, and keys that are empty, too long,
// not UTF-8, with a NUL, or not local ("..", "/"). Those are permanent.
func check(op, bucket, key string) error {
	switch {
	case !utils.IsValidBucketName(bucket):
		return fmt.Errorf("embedded: %s %s/%q: %w: invalid bucket name", op, bucket, key, objects.ErrPermanent)
	case key == "", len(key) > maxKeyLen, !validName(key), !utils.IsObjectNameValid(key):
		name := key
		if len(name) > 64 {
			name = name[:64] + "..."
		}
		return fmt.Errorf("embedded: %s %s/%q: %w: invalid object name", op, bucket, name, objects.ErrPermanent)
	}
	return nil
}

// errClosed is returned by a Store's in-process calls after Close. It is
// transient: a restarted store serves the same data.
var errClosed = errors.New("embedded: store closed")

// prepare checks a request's names (see check) and returns the running
// backend, or errClosed.
func (s *Store) prepare(op, bucket, key string) (*publishing, error) {
	if err := check(op, bucket, key); err != nil {
		return nil, err
	}
	be := s.Server.be.Load()
	if be == nil {
		return nil, fmt.Errorf("%w: %s %s/%s", errClosed, op, bucket, key)
	}
	return be, nil
}

// classify puts a backend error of a request on bucket into the
// objects.Store error contract: S3 error answers by their status and
// code, as over HTTP (NoSuchBucket as objects.NoSuchBucket, one line
// instead of the answer's XML); anything else (a file system error the
// endpoint would answer with a 500) is transient.
func classify(bucket string, err error) error {
	var apiErr s3err.S3Error
	if errors.As(err, &apiErr) {
		base := apiErr.BaseError()
		return s3.Classify(err, bucket, base.HTTPStatusCode, base.Code)
	}
	return err
}

// status is the HTTP status of a backend's S3 error answer, 0 for other errors.
func status(err error) int {
	var apiErr s3err.S3Error
	if errors.As(err, &apiErr) {
		return apiErr.BaseError().HTTPStatusCode
	}
	return 0
}

// Get opens an object for streaming; see objects.Store. Info.SHA256 is
// the SHA-256 stored on the very file being read.
func (s *Store) Get(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, objects.Info, error) {
	be, err := s.prepare("get", bucket, key)
	if err != nil {
		return nil, objects.Info{}, err
	}
	rc, info, err := be.open(ctx, bucket, key, versionID, etag)
	if err != nil {
		return nil, objects.Info{}, fmt.Errorf("embedded: get %s/%s: %w", bucket, key, classify(bucket, err))
	}
	return rc, info, nil
}

// Stat returns an object's info, or objects.ErrNotFound. Info.SHA256 is
// set for every object written through the endpoint (see sha256Attr).
func (s *Store) Stat(ctx context.Context, bucket, key string) (objects.Info, error) {
	be, err := s.prepare("stat", bucket, key)
	if err != nil {
		return objects.Info{}, err
	}
	// Opened rather than headed: the stored SHA-256 is then read from the
	// same file as the size and etag.
	rc, info, err := be.open(ctx, bucket, key, "", "")
	if err != nil {
		return objects.Info{}, fmt.Errorf("embedded: stat %s/%s: %w", bucket, key, classify(bucket, err))
	}
	rc.Close()
	return info, nil
}

// Put writes an object, streaming r; size may be -1. The write is hashed
// and published as an upload through the endpoint would be. The backend
// needs the size up front: a write of unknown size goes through the
// endpoint's listener instead (a multipart upload, hashed on completion),
// where, as for any client, dedupfn-* metadata is dropped. With
// opts.IfNoneMatch the backend checks that no object is at the key under
// the lock it publishes the write with: objects.ErrExists if one is.
func (s *Store) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts objects.PutOptions) (objects.Info, error) {
	be, err := s.prepare("put", bucket, key)
	if err != nil {
		return objects.Info{}, err
	}
	if size < 0 {
		if _, err := s.Client.Put(ctx, bucket, key, r, size, opts); err != nil {
			return objects.Info{}, err
		}
		return s.Stat(ctx, bucket, key) // for the stored SHA-256
	}
	ct := opts.ContentType
	if ct == "" {
		ct = defaultContentType
	}
	in := s3response.PutObjectInput{
		Bucket:        &bucket,
		Key:           &key,
		ContentLength: &size,
		ContentType:   &ct,
		Metadata:      lowerKeys(opts.Metadata),
		Body:          &exactReader{r: r, left: size},
	}
	if opts.IfNoneMatch {
		in.IfNoneMatch = &anyETag
	}
	if opts.IfMatch != "" {
		in.IfMatch = &opts.IfMatch
	}
	out, st, err := be.putObject(ctx, in)
	if err != nil {
		if (opts.IfNoneMatch || opts.IfMatch != "") && status(err) == http.StatusPreconditionFailed {
			return objects.Info{}, fmt.Errorf("embedded: put %s/%s: %w: %w", bucket, key, objects.ErrExists, err)
		}
		return objects.Info{}, fmt.Errorf("embedded: put %s/%s: %w", bucket, key, classify(bucket, err))
	}
	if st.sha256 != "" {
		// What was written is known, from the staged file before it became
		// the object: no read back.
		return objects.Info{Bucket: bucket, Key: key, VersionID: out.VersionID, ETag: strings.Trim(out.ETag, `"`),
			Size: st.size, ContentType: ct, Modified: st.modified, Metadata: lowerKeys(opts.Metadata), SHA256: st.sha256}, nil
	}
	// Without xattrs the stored SHA-256 is not kept: read the info back.
	info, err := s.Stat(ctx, bucket, key)
	if err != nil {
		return objects.Info{}, fmt.Errorf("embedded: put %s/%s: %w", bucket, key, err)
	}
	if info.ETag != strings.Trim(out.ETag, `"`) {
		// Overwritten since: report this write, without what we cannot know.
		info = objects.Info{Bucket: bucket, Key: key, VersionID: out.VersionID, ETag: strings.Trim(out.ETag, `"`),
			Size: derefInt(out.Size), ContentType: ct, Modified: time.Now().UTC(), Metadata: lowerKeys(opts.Metadata)}
	}
	return info, nil
}

// anyETag is If-None-Match's "*": any object at the key.
var anyETag = "*"

// exactReader fails a body shorter than its declared size, which the
// backend would store truncated; the s3 client fails it too.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Copy copies src server-side, replacing its metadata with opts;
// objects.ErrNotFound if the source is missing or, with src.ETag set, has
// changed. The copy is read back (in-process, cheap) for its stored SHA-256.
func (s *Store) Copy(ctx context.Context, src objects.Info, dstBucket, dstKey string, opts objects.PutOptions) (objects.Info, error) {
	if err := check("copy", src.Bucket, src.Key); err != nil {
		return objects.Info{}, err
	}
	if opts.IfNoneMatch || opts.IfMatch != "" {
		return objects.Info{}, fmt.Errorf("embedded: copy to %s/%s: %w: a condition on the copy's destination is not supported", dstBucket, dstKey, objects.ErrPermanent)
	}
	be, err := s.prepare("copy", dstBucket, dstKey)
	if err != nil {
		return objects.Info{}, err
	}
	if strings.Contains(src.Key, "?versionId=") {
		// The backend reads the copy source as "bucket/key?versionId=v".
		return objects.Info{}, fmt.Errorf("embedded: copy %s/%s: %w: key holds ?versionId=", src.Bucket, src.Key, objects.ErrPermanent)
	}
	ct := opts.ContentType
	if ct == "" {
		ct = defaultContentType
	}
	source := url.QueryEscape(src.Bucket) + "/" + url.QueryEscape(src.Key)
	owner := ""
	in := s3response.CopyObjectInput{
		Bucket:              &dstBucket,
		Key:                 &dstKey,
		CopySource:          &source,
		ContentType:         &ct,
		Metadata:            lowerKeys(opts.Metadata),
		MetadataDirective:   types.MetadataDirectiveReplace,
		TaggingDirective:    types.TaggingDirectiveCopy,
		ExpectedBucketOwner: &owner,
	}
	if etag := strings.Trim(src.ETag, `"`); etag != "" {
		in.CopySourceIfMatch = &etag
	}
	out, st, err := be.copyObject(ctx, in, false)
	if err != nil {
		missing := dstBucket // which of the two a NoSuchBucket means
		if src.Bucket != dstBucket {
			if ok, herr := s.BucketExists(ctx, src.Bucket); herr == nil && !ok {
				missing = src.Bucket
			}
		}
		return objects.Info{}, fmt.Errorf("embedded: copy %s/%s to %s/%s: %w", src.Bucket, src.Key, dstBucket, dstKey, classify(missing, err))
	}
	if st.sha256 != "" && out.CopyObjectResult != nil {
		// The copy's own file, hashed after the backend wrote it.
		return objects.Info{Bucket: dstBucket, Key: dstKey, VersionID: deref(out.VersionId), ETag: strings.Trim(deref(out.CopyObjectResult.ETag), `"`),
			Size: st.size, ContentType: ct, Modified: st.modified, Metadata: lowerKeys(opts.Metadata), SHA256: st.sha256}, nil
	}
	info, err := s.Stat(ctx, dstBucket, dstKey)
	if err != nil {
		return objects.Info{}, fmt.Errorf("embedded: copy %s/%s to %s/%s: %w", src.Bucket, src.Key, dstBucket, dstKey, err)
	}
	return info, nil
}

// Delete removes an object; a missing object is not an error.
func (s *Store) Delete(ctx context.Context, bucket, key string) error {
	be, err := s.prepare("delete", bucket, key)
	if err != nil {
		return err
	}
	_, err = be.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		if err = classify(bucket, err); !errors.Is(err, objects.ErrNotFound) {
			return fmt.Errorf("embedded: delete %s/%s: %w", bucket, key, err)
		}
	}
	return nil
}

// Close stops the endpoint. Safe to call twice.
func (s *Store) Close() error {
	return errors.Join(s.Client.Close(), s.Server.Close())
}
