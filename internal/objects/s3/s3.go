// Package s3 is the objects.Store for any S3-compatible service (MinIO, AWS
// S3, Ceph RGW, the built-in endpoint) through minio-go. It registers the
// URL scheme "s3":
//
//	s3://KEY:SECRET@host:port?tls=false&region=us-east-1
//
// Without user info in the URL the credentials come from objects.Options,
// else from the environment (DEDUPFN_S3_ACCESS_KEY, DEDUPFN_S3_SECRET_KEY).
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/objects"
)

// Defaults.
const (
	// DefaultRegion is used when the URL names none; setting it avoids a
	// bucket-location round trip before every first request to a bucket.
	DefaultRegion = "us-east-1"
	// StreamPartSize is the multipart part size for writes of unknown
	// size: minio-go buffers one part in memory, and its own default for
	// unknown sizes is 512 MiB.
	StreamPartSize = 16 << 20
	// EnvAccessKey and EnvSecretKey hold the credentials when neither the
	// URL nor objects.Options have them.
	EnvAccessKey = "DEDUPFN_S3_ACCESS_KEY"
	EnvSecretKey = "DEDUPFN_S3_SECRET_KEY"
	// MaxSinglePut is the largest object S3 takes in one PUT: a
	// conditional write up to it goes in one request, which the store
	// checks; a larger one is Stat-ed first.
	MaxSinglePut = 5 << 30
)

func init() { objects.Register("s3", Open) }

// Client is an objects.Store over one S3 endpoint. It is safe for
// concurrent use.
type Client struct {
	mc     *minio.Client
	region string
	logger *slog.Logger

	ifNoneMatchMu sync.Mutex
	ifNoneMatch   map[string]bool // bucket → the store enforces If-None-Match on PUT (probed)
}

var _ objects.Store = (*Client)(nil)

// Open opens the store named by an s3:// URL.
func Open(_ context.Context, u *url.URL, opts objects.Options) (objects.Store, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("s3: url %q has no host, expected s3://KEY:SECRET@host:port", u.Redacted())
	}
	access, secret := opts.AccessKey, opts.SecretKey
	if u.User != nil {
		access = u.User.Username()
		secret, _ = u.User.Password()
	} else if access == "" && secret == "" {
		access, secret = os.Getenv(EnvAccessKey), os.Getenv(EnvSecretKey)
	}
	if access == "" || secret == "" {
		return nil, fmt.Errorf("s3: missing credentials for %s: put KEY:SECRET in the url, or set %s and %s", u.Host, EnvAccessKey, EnvSecretKey)
	}
	q := u.Query()
	secure := true
	if v := q.Get("tls"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("s3: tls must be true or false, got %q", v)
		}
		secure = b
	}
	region := q.Get("region")
	if region == "" {
		region = DefaultRegion
	}
	return New(u.Host, secure, access, secret, region, opts.Logger)
}

// New returns a Client for endpoint (host:port). It validates its
// arguments but sends no request.
func New(endpoint string, secure bool, access, secret, region string, logger *slog.Logger) (*Client, error) {
	if endpoint == "" {
		return nil, errors.New("s3: endpoint must be host:port, got empty")
	}
	if access == "" || secret == "" {
		return nil, fmt.Errorf("s3: missing credentials for %s", endpoint)
	}
	if region == "" {
		region = DefaultRegion
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	transport, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("s3: new client for %s: %w", endpoint, err)
	}
	mc, err := minio.New(endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(access, secret, ""),
		Secure:    secure,
		Region:    region,
		Transport: headerTap{transport},
	})
	if err != nil {
		return nil, fmt.Errorf("s3: new client for %s: %w", endpoint, err)
	}
	return &Client{mc: mc, region: region, logger: logger.With("component", "objects.s3", "endpoint", endpoint),
		ifNoneMatch: map[string]bool{}}, nil
}

// headersKey is the context key under which a request asks headerTap for
// its answer's headers: a *http.Header to fill.
type headersKey struct{}

// headerTap is the client's transport: it hands a request the headers of
// its answer when its context asks (headersKey). MinIO answers a copy
// with the copy's checksum in headers, which minio-go's CopyObject does
// not return; reading it there saves the HEAD after each copy.
type headerTap struct{ base http.RoundTripper }

func (t headerTap) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if h, ok := r.Context().Value(headersKey{}).(*http.Header); ok && resp != nil {
		*h = resp.Header // the last answer's: minio-go may retry
	}
	return resp, err
}

// Minio returns the underlying minio-go client, for tests and for
// operations outside objects.Store (bucket notifications).
func (c *Client) Minio() *minio.Client { return c.mc }

// Get opens an object for streaming; see objects.Store.
func (c *Client) Get(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, objects.Info, error) {
	// Checksum mode: the answer carries the stored checksum (see
	// trustedSHA256), and minio-go verifies a full-object checksum at EOF.
	o := minio.GetObjectOptions{VersionID: versionID, Checksum: true}
	if etag != "" {
		if err := o.SetMatchETag(strings.Trim(etag, `"`)); err != nil {
			return nil, objects.Info{}, fmt.Errorf("s3: get %s/%s: %w", bucket, key, err)
		}
	}
	// One GET, whose answer's headers are the info: minio-go's
	// GetObject would HEAD the object first for obj.Stat, then GET it.
	rc, oi, _, err := minio.Core{Client: c.mc}.GetObject(ctx, bucket, key, o)
	if err != nil {
		return nil, objects.Info{}, fmt.Errorf("s3: get %s/%s: %w", bucket, key, c.getError(ctx, bucket, err))
	}
	return rc, toInfo(bucket, oi), nil
}

// Stat returns an object's info, or objects.ErrNotFound.
func (c *Client) Stat(ctx context.Context, bucket, key string) (objects.Info, error) {
	oi, err := c.mc.StatObject(ctx, bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		return objects.Info{}, fmt.Errorf("s3: stat %s/%s: %w", bucket, key, translate(bucket, err))
	}
	return toInfo(bucket, oi), nil
}

// Put writes an object, streaming r; size may be -1. With
// opts.IfNoneMatch, a store that enforces If-None-Match on PUT (probed
// once per bucket: enforcesIfNoneMatch) decides in the write itself,
// which goes in one PUT; otherwise, or for a size one PUT cannot take,
// a Stat decides first.
func (c *Client) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts objects.PutOptions) (objects.Info, error) {
	po := minio.PutObjectOptions{
		ContentType:  opts.ContentType,
		UserMetadata: opts.Metadata,
	}
	if size < 0 {
		po.PartSize = StreamPartSize
	}
	if opts.IfNoneMatch {
		enforced := false
		if size >= 0 && size <= MaxSinglePut {
			var err error
			if enforced, err = c.enforcesIfNoneMatch(ctx, bucket); err != nil {
				return objects.Info{}, fmt.Errorf("s3: put %s/%s: %w", bucket, key, err)
			}
		}
		if enforced {
			po.SetMatchETagExcept("*")
			po.DisableMultipart = true // the header is checked on a single PUT
		} else if _, err := c.Stat(ctx, bucket, key); err == nil {
			return objects.Info{}, fmt.Errorf("s3: put %s/%s: %w", bucket, key, objects.ErrExists)
		} else if !errors.Is(err, objects.ErrNotFound) {
			return objects.Info{}, fmt.Errorf("s3: put %s/%s: %w", bucket, key, err)
		}
	}
	if opts.IfMatch != "" {
		po.SetMatchETag(opts.IfMatch)
		po.DisableMultipart = true // the header is checked on a single PUT
	}
	ui, err := c.mc.PutObject(ctx, bucket, key, r, size, po)
	if err != nil {
		if (opts.IfNoneMatch || opts.IfMatch != "") && minio.ToErrorResponse(err).StatusCode == http.StatusPreconditionFailed {
			return objects.Info{}, fmt.Errorf("s3: put %s/%s: %w: %w", bucket, key, objects.ErrExists, err)
		}
		return objects.Info{}, fmt.Errorf("s3: put %s/%s: %w", bucket, key, translate(bucket, err))
	}
	ct := opts.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	return objects.Info{
		Bucket:      bucket,
		Key:         key,
		VersionID:   ui.VersionID,
		ETag:        strings.Trim(ui.ETag, `"`),
		Size:        ui.Size,
		ContentType: ct,
		Modified:    ui.LastModified,
		Metadata:    lowerKeys(opts.Metadata),
	}, nil
}

// enforcesIfNoneMatch reports whether the store refuses a PUT with
// If-None-Match: * where an object exists, as MinIO, AWS S3 and the
// built-in endpoint do; a store that ignores the header would let a
// conditional write replace a user's object. It probes once per bucket,
// with two such PUTs of an empty object under event.StagingPrefix (which
// triggers nothing) and a delete, and remembers the answer; an error is
// not remembered.
func (c *Client) enforcesIfNoneMatch(ctx context.Context, bucket string) (bool, error) {
	c.ifNoneMatchMu.Lock()
	defer c.ifNoneMatchMu.Unlock()
	if enforced, known := c.ifNoneMatch[bucket]; known {
		return enforced, nil
	}
	var id [8]byte
	rand.Read(id[:])
	key := event.StagingPrefix + "if-none-match-probe/" + hex.EncodeToString(id[:])
	po := minio.PutObjectOptions{DisableMultipart: true}
	po.SetMatchETagExcept("*")
	put := func() error {
		_, err := c.mc.PutObject(ctx, bucket, key, bytes.NewReader(nil), 0, po)
		return err
	}
	if err := put(); err != nil {
		return false, fmt.Errorf("probe If-None-Match: %w", translate(bucket, err))
	}
	err := put()
	enforced := minio.ToErrorResponse(err).StatusCode == http.StatusPreconditionFailed
	if rerr := c.mc.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); rerr != nil {
		c.logger.Warn("delete If-None-Match probe", "bucket", bucket, "key", key, "err", rerr)
	}
	if err != nil && !enforced {
		return false, fmt.Errorf("probe If-None-Match: %w", translate(bucket, err))
	}
	if !enforced {
		c.logger.Warn("the store does not enforce If-None-Match on PUT: conditional writes Stat the key first", "bucket", bucket)
	}
	c.ifNoneMatch[bucket] = enforced
	return enforced, nil
}

// Copy copies an object server-side, replacing its metadata with opts. It
// asks the store for a SHA-256 checksum of the copy, so Info.SHA256 is
// the hash of the bytes delivered where the store computes one (MinIO,
// AWS S3; a store that ignores the request leaves it empty).
func (c *Client) Copy(ctx context.Context, src objects.Info, dstBucket, dstKey string, opts objects.PutOptions) (objects.Info, error) {
	if opts.IfNoneMatch || opts.IfMatch != "" {
		return objects.Info{}, fmt.Errorf("s3: copy to %s/%s: %w: a condition on the copy's destination is not supported", dstBucket, dstKey, objects.ErrPermanent)
	}
	meta := opts.Metadata
	if meta == nil {
		// REPLACE with no metadata at all: an empty map still sends the
		// directive, so the source's metadata is not carried over.
		meta = map[string]string{}
	}
	etag := strings.Trim(src.ETag, `"`)
	var answer http.Header
	ui, err := c.mc.CopyObject(context.WithValue(ctx, headersKey{}, &answer),
		minio.CopyDestOptions{
			Bucket:          dstBucket,
			Object:          dstKey,
			ReplaceMetadata: true,
			UserMetadata:    meta,
			ContentType:     opts.ContentType,
			// The store hashes the bytes it copies: the copy's SHA-256
			// (Info.SHA256) tells what was delivered, whatever the source's ETag.
			ChecksumType: minio.ChecksumSHA256,
		},
		minio.CopySrcOptions{Bucket: src.Bucket, Object: src.Key, MatchETag: etag})
	if err != nil {
		return objects.Info{}, fmt.Errorf("s3: copy %s/%s to %s/%s: %w", src.Bucket, src.Key, dstBucket, dstKey, c.copyError(ctx, src.Bucket, dstBucket, err))
	}
	if etag != "" {
		// The copy is of the version src describes: its size is src's.
		ct := opts.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		info := objects.Info{
			Bucket: dstBucket, Key: dstKey, VersionID: ui.VersionID, ETag: strings.Trim(ui.ETag, `"`),
			Size: src.Size, ContentType: ct, Modified: ui.LastModified, Metadata: lowerKeys(meta),
			SHA256: trustedSHA256(minio.ObjectInfo{ChecksumSHA256: ui.ChecksumSHA256, ChecksumMode: ui.ChecksumMode}),
		}
		if info.SHA256 == "" {
			// MinIO sends the SHA-256 it computed while copying in the
			// answer's headers, not in its body.
			info.SHA256 = trustedSHA256(minio.ObjectInfo{
				ChecksumSHA256: answer.Get("X-Amz-Checksum-Sha256"), ChecksumMode: answer.Get("X-Amz-Checksum-Type")})
		}
		if info.SHA256 == "" {
			// A store that answers with neither: one HEAD reads it.
			if st, err := c.Stat(ctx, dstBucket, dstKey); err == nil && st.ETag == info.ETag {
				info.SHA256 = st.SHA256
			}
		}
		return info, nil
	}
	// The copy response carries no size or metadata: read them back.
	info, err := c.Stat(ctx, dstBucket, dstKey)
	if err != nil {
		return objects.Info{}, fmt.Errorf("s3: copy %s/%s to %s/%s: %w", src.Bucket, src.Key, dstBucket, dstKey, err)
	}
	return info, nil
}

// Delete removes an object; a missing object is not an error.
func (c *Client) Delete(ctx context.Context, bucket, key string) error {
	if err := c.mc.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err != nil && !errors.Is(translate(bucket, err), objects.ErrNotFound) {
		return fmt.Errorf("s3: delete %s/%s: %w", bucket, key, translate(bucket, err))
	}
	return nil
}

// List calls fn for every object under prefix in bucket after startAfter,
// in key order (ListObjectsV2 start-after). Listing results carry no user
// metadata or content type.
func (c *Client) List(ctx context.Context, bucket, prefix, startAfter string, fn func(objects.Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine when fn returns early
	opts := minio.ListObjectsOptions{Prefix: prefix, StartAfter: startAfter, Recursive: true}
	for oi := range c.mc.ListObjects(ctx, bucket, opts) {
		if oi.Err != nil {
			return fmt.Errorf("s3: list %s/%s: %w", bucket, prefix, translate(bucket, oi.Err))
		}
		if err := fn(toInfo(bucket, oi)); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// MakeBucket creates a bucket; an existing one owned by us is not an error.
func (c *Client) MakeBucket(ctx context.Context, bucket string) error {
	err := c.mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: c.region})
	if err == nil {
		return nil
	}
	switch minio.ToErrorResponse(err).Code {
	case "BucketAlreadyOwnedByYou", "BucketAlreadyExists":
		// BucketAlreadyExists may mean someone else's bucket: only ours is fine.
		if ok, herr := c.mc.BucketExists(ctx, bucket); herr == nil && ok {
			return nil
		}
	}
	return fmt.Errorf("s3: make bucket %s: %w", bucket, translate(bucket, err))
}

// BucketExists reports whether a bucket exists (one HEAD).
func (c *Client) BucketExists(ctx context.Context, bucket string) (bool, error) {
	ok, err := c.mc.BucketExists(ctx, bucket)
	if err != nil {
		return false, fmt.Errorf("s3: head bucket %s: %w", bucket, translate(bucket, err))
	}
	return ok, nil
}

// PresignGet returns a URL to download one object until expiry.
func (c *Client) PresignGet(ctx context.Context, bucket, key string, expiry time.Duration) (string, error) {
	u, err := c.mc.PresignedGetObject(ctx, bucket, key, expiry, nil)
	if err != nil {
		return "", fmt.Errorf("s3: presign get %s/%s: %w", bucket, key, err)
	}
	return u.String(), nil
}

// PresignPut returns a URL to upload one object until expiry.
func (c *Client) PresignPut(ctx context.Context, bucket, key string, expiry time.Duration) (string, error) {
	u, err := c.mc.PresignedPutObject(ctx, bucket, key, expiry)
	if err != nil {
		return "", fmt.Errorf("s3: presign put %s/%s: %w", bucket, key, err)
	}
	return u.String(), nil
}

// Close releases idle connections. Safe to call twice.
func (c *Client) Close() error { return nil }

// getError translates a Get's error, telling a missing bucket from a
// missing object: the answer to a HEAD (minio-go's first request of a
// Get) has no body to tell NoSuchKey from NoSuchBucket, and only MinIO
// says which in a header. One HEAD of the bucket, on a miss only, tells.
func (c *Client) getError(ctx context.Context, bucket string, err error) error {
	t := translate(bucket, err)
	var r minio.ErrorResponse
	if !errors.Is(t, objects.ErrNotFound) || (errors.As(err, &r) && r.Code == "PreconditionFailed") {
		return t
	}
	if ok, herr := c.mc.BucketExists(ctx, bucket); herr == nil && !ok {
		return objects.NoSuchBucket(bucket, err)
	}
	return t
}

// copyError translates a Copy's error: a NoSuchBucket answer names the
// destination's bucket, or the source's when that is the missing one.
func (c *Client) copyError(ctx context.Context, srcBucket, dstBucket string, err error) error {
	var r minio.ErrorResponse
	if errors.As(err, &r) && r.Code == "NoSuchBucket" && srcBucket != dstBucket {
		if ok, herr := c.mc.BucketExists(ctx, srcBucket); herr == nil && !ok {
			return translate(srcBucket, err)
		}
	}
	return translate(dstBucket, err)
}

// translate maps S3 error answers to a request on bucket into the
// objects.Store error contract, keeping the original error in the chain:
// a missing bucket is objects.NoSuchBucket; other "missing" answers and
// failed preconditions wrap objects.ErrNotFound; answers that retrying
// cannot change wrap objects.ErrPermanent (see permanent); anything else
// (5xx, throttling, network and context errors) is returned as is.
func translate(bucket string, err error) error {
	if err == nil {
		return nil
	}
	var r minio.ErrorResponse
	errors.As(err, &r)
	return Classify(err, bucket, r.StatusCode, r.Code)
}

// Classify wraps err, an S3 error answer to a request on bucket with HTTP
// status and error code (0 and "" for errors that are not answers), into
// the objects.Store error contract the way translate does, for stores
// that get S3 errors without HTTP (the built-in endpoint's in-process calls).
func Classify(err error, bucket string, status int, code string) error {
	if err == nil {
		return nil
	}
	if credentialCodes[code] {
		return fmt.Errorf("%w: %w: %w", objects.ErrAccessDenied, objects.ErrPermanent, err)
	}
	switch code {
	case "NoSuchBucket":
		// Permanent, with one line instead of the store's answer.
		return objects.NoSuchBucket(bucket, err)
	case "NoSuchKey", "NoSuchVersion", "NotFound", "PreconditionFailed":
		return fmt.Errorf("%w: %w", objects.ErrNotFound, err)
	}
	if status == http.StatusNotFound || status == http.StatusPreconditionFailed {
		return fmt.Errorf("%w: %w", objects.ErrNotFound, err)
	}
	if permanent(minio.ErrorResponse{StatusCode: status, Code: code}) {
		return fmt.Errorf("%w: %w", objects.ErrPermanent, err)
	}
	return err
}

// credentialCodes are S3 error codes refusing a request's credentials or
// their access, the one list every store's errors are read against. The
// built-in endpoint answers an unknown access key with a 404
// XAdminUserNotFound, not to be read as a missing object.
var credentialCodes = map[string]bool{
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "XAdminUserNotFound": true,
}

// transientCodes are S3 error codes that may go away on their own although
// some servers send them with a 4xx status.
var transientCodes = map[string]bool{
	"SlowDown": true, "SlowDownRead": true, "SlowDownWrite": true,
	"Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true, "RequestThrottled": true,
	"RequestTimeout": true, "RequestError": true, "InternalError": true, "ServiceUnavailable": true,
	"OperationAborted": true, "RequestTimeTooSkewed": true,
	"ExpiredToken": true, "ExpiredTokenException": true,
	"XMinioServerNotInitialized": true,
}

// permanent reports whether an S3 error answer will not change if the same
// request is sent again: a 4xx other than 408 (timeout), 409 (conflict,
// such as a concurrent operation) and 429 (throttled), unless its code
// says otherwise. minio-go's own refusals (an empty, too long or non-UTF-8
// key) are 400s too. Errors that are not S3 answers (network, context)
// have no status and are never permanent.
func permanent(r minio.ErrorResponse) bool {
	if transientCodes[r.Code] {
		return false
	}
	switch r.StatusCode {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests:
		return false
	}
	return r.StatusCode >= 400 && r.StatusCode < 500
}

func toInfo(bucket string, oi minio.ObjectInfo) objects.Info {
	return objects.Info{
		Bucket:      bucket,
		Key:         oi.Key,
		VersionID:   oi.VersionID,
		ETag:        strings.Trim(oi.ETag, `"`),
		Size:        oi.Size,
		ContentType: oi.ContentType,
		Modified:    oi.LastModified,
		Metadata:    lowerKeys(oi.UserMetadata),
		SHA256:      trustedSHA256(oi),
	}
}

// checksumTypeFullObject is the x-amz-checksum-type of a checksum over the
// whole object's bytes (as opposed to COMPOSITE, a checksum of part
// checksums).
const checksumTypeFullObject = "FULL_OBJECT"

// trustedSHA256 returns the hex SHA-256 of the whole object when the store
// reported one it verified on upload: an x-amz-checksum-sha256 of type
// FULL_OBJECT, or with no type at all (servers that predate the header
// only had single-part checksums). A composite multipart checksum
// ("<base64>-N", type COMPOSITE) is a hash of part hashes, not a content
// fingerprint, and is never trusted; neither are ETags, MD5 or metadata.
func trustedSHA256(oi minio.ObjectInfo) string {
	v := oi.ChecksumSHA256
	if v == "" || strings.Contains(v, "-") {
		return ""
	}
	if oi.ChecksumMode != "" && !strings.EqualFold(oi.ChecksumMode, checksumTypeFullObject) {
		return ""
	}
	sum, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(sum) != sha256.Size {
		return ""
	}
	return hex.EncodeToString(sum)
}

// lowerKeys returns m with keys lower-cased and any "x-amz-meta-" prefix
// removed; nil for an empty map.
func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		k = strings.ToLower(k)
		out[strings.TrimPrefix(k, "x-amz-meta-")] = v
	}
	return out
}
