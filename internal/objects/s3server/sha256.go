package s3server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/s3api/middlewares"

	"github.com/dedupfn/dedupfn/internal/objects"
)

// sha256Attr names the metadata attribute (the xattr "user.dedupfn.sha256")
// holding the hex SHA-256 of an object's bytes. Clients cannot write it:
// versitygw keeps all user metadata (x-amz-meta-*) in one JSON attribute,
// so no header names an attribute of its own.
//
// It is written only on the object's own inode: on the staged file before
// the object becomes visible (put), or through a descriptor whose bytes
// were just hashed (multipart complete, copy); and read only through the
// descriptor the object is read from. So it always describes the bytes of
// the file it is attached to, whatever concurrent writers do. Objects are
// never modified in place (every write links a new file), so it stays true.
//
// With sidecar metadata (no xattrs) attributes live beside the file by
// path and could outlive an overwrite, so there the SHA-256 is neither
// stored nor reported, and readers fall back to hashing the bytes.
const sha256Attr = "dedupfn.sha256"

// hashingBody feeds every byte the backend reads from a PUT body into a
// SHA-256, with no extra copy. It forwards the trailing-checksum methods
// of versitygw's chunked-upload reader, which the posix backend looks for
// on the body it is given.
type hashingBody struct {
	r io.Reader
	h hash.Hash
}

var _ middlewares.ChecksumReader = (*hashingBody)(nil)

func newHashingBody(r io.Reader) *hashingBody {
	if r == nil {
		r = strings.NewReader("")
	}
	return &hashingBody{r: r, h: sha256.New()}
}

func (b *hashingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.h.Write(p[:n])
	return n, err
}

// Algorithm is the trailing checksum's algorithm, "" if there is none.
func (b *hashingBody) Algorithm() string {
	if cr, ok := b.r.(middlewares.ChecksumReader); ok {
		return cr.Algorithm()
	}
	return ""
}

// Checksum is the trailing checksum's value, "" if there is none.
func (b *hashingBody) Checksum() string {
	if cr, ok := b.r.(middlewares.ChecksumReader); ok {
		return cr.Checksum()
	}
	return ""
}

// sum is the hex SHA-256 of everything read so far.
func (b *hashingBody) sum() string { return hex.EncodeToString(b.h.Sum(nil)) }

// hashStored reads back an object the backend has just assembled (a
// multipart complete or a copy, whose bytes never pass through a body we
// can wrap), hashes it, and stores the SHA-256 on the same file. Reading
// back costs one pass over local disk, usually from the page cache. If a
// concurrent writer replaced the object in between, the new file is the
// one hashed and marked, which is still true of it.
func (p *publishing) hashStored(bucket, key string) (stored, error) {
	if !p.xattrs {
		return stored{}, nil
	}
	f, err := os.Open(filepath.Join(p.dataDir, bucket, key))
	if err != nil {
		return stored{}, fmt.Errorf("open %s/%s: %w", bucket, key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return stored{}, nil // a directory object: nothing to hash
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return stored{}, fmt.Errorf("hash %s/%s: %w", bucket, key, err)
	}
	st := stored{sha256: hex.EncodeToString(h.Sum(nil)), size: n, modified: fi.ModTime().UTC()}
	if err := p.ms.StoreAttribute(f, bucket, key, sha256Attr, []byte(st.sha256)); err != nil {
		return stored{}, fmt.Errorf("store sha256 of %s/%s: %w", bucket, key, err)
	}
	return st, nil
}

// stored is what hashStored learned of the file it hashed.
type stored struct {
	sha256   string // "" when nothing was hashed
	size     int64
	modified time.Time
}

// storedSHA256 returns the SHA-256 stored on the file body reads from, or
// "" when there is none (an object written before hashing was added, a
// directory object, sidecar metadata) or it is malformed.
func (p *publishing) storedSHA256(body io.Reader, bucket, key string) string {
	f, ok := body.(*os.File)
	if !p.xattrs || !ok {
		return ""
	}
	b, err := p.ms.RetrieveAttribute(f, bucket, key, sha256Attr)
	if err != nil {
		if !errors.Is(err, meta.ErrNoSuchKey) {
			p.logger.Warn("read stored sha256", "bucket", bucket, "key", key, "err", err)
		}
		return ""
	}
	s := string(b)
	if sum, err := hex.DecodeString(s); err != nil || len(sum) != sha256.Size || strings.ToLower(s) != s {
		p.logger.Warn("malformed stored sha256", "bucket", bucket, "key", key)
		return ""
	}
	return s
}

// open opens an object through the backend (unwrapped: reads publish
// nothing) and returns its body and its info, including the stored
// SHA-256 of that very file. A non-empty etag must match (If-Match).
func (p *publishing) open(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, objects.Info, error) {
	in := &s3.GetObjectInput{Bucket: &bucket, Key: &key, Range: new(string)}
	if versionID != "" {
		in.VersionId = &versionID
	}
	if etag != "" {
		q := strings.Trim(etag, `"`) // compared unquoted
		in.IfMatch = &q
	}
	out, err := p.Backend.GetObject(ctx, in)
	if err != nil {
		return nil, objects.Info{}, err
	}
	if out.Body == nil {
		out.Body = io.NopCloser(strings.NewReader(""))
	}
	info := objects.Info{
		Bucket:      bucket,
		Key:         key,
		VersionID:   deref(out.VersionId),
		ETag:        strings.Trim(deref(out.ETag), `"`),
		Size:        derefInt(out.ContentLength),
		ContentType: deref(out.ContentType),
		Metadata:    lowerKeys(out.Metadata),
		SHA256:      p.storedSHA256(out.Body, bucket, key),
	}
	if out.LastModified != nil {
		info.Modified = out.LastModified.UTC()
	} else {
		info.Modified = time.Now().UTC()
	}
	return out.Body, info, nil
}

// lowerKeys returns m with keys lower-cased and any "x-amz-meta-" prefix
// removed; nil for an empty map.
func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.TrimPrefix(strings.ToLower(k), "x-amz-meta-")] = v
	}
	return out
}

// The gateway's HEAD and GET with x-amz-checksum-mode: ENABLED of a whole
// object report the stored SHA-256 as x-amz-checksum-sha256 (base64, type
// FULL_OBJECT), as S3 reports a checksum verified on upload: clients
// (analyze, the s3 client's Stat) then need not read the bytes to know
// them. Only for the whole object (no range or part), and never in place
// of a checksum the backend itself keeps (a client's, verified on upload).

// wholeObject reports whether a request in checksum mode asks for the whole
// object: the only case where S3 reports a full-object checksum.
func wholeObject(mode types.ChecksumMode, rng *string, part *int32) bool {
	return mode == types.ChecksumModeEnabled && deref(rng) == "" && part == nil
}

// withStoredSHA256 reports sum (hex) in a response's checksum fields, unless
// the backend already reports a SHA-256 or a checksum of another type.
func withStoredSHA256(sum string, have *string, typ types.ChecksumType) (*string, types.ChecksumType) {
	if sum == "" || have != nil || (typ != "" && typ != types.ChecksumTypeFullObject) {
		return have, typ
	}
	raw, err := hex.DecodeString(sum)
	if err != nil {
		return have, typ
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	return &b64, types.ChecksumTypeFullObject
}

// GetObject serves a client's GET. The stored SHA-256 is read from the very
// file descriptor whose bytes the answer streams, so it is that content's
// whatever concurrent writers do (see sha256Attr).
func (c clientBackend) GetObject(ctx context.Context, in *s3.GetObjectInput) (*s3.GetObjectOutput, error) {
	out, err := c.Backend.GetObject(ctx, in)
	if err != nil || out == nil || !wholeObject(in.ChecksumMode, in.Range, in.PartNumber) {
		return out, err
	}
	out.ChecksumSHA256, out.ChecksumType = withStoredSHA256(c.storedSHA256(out.Body, deref(in.Bucket), deref(in.Key)), out.ChecksumSHA256, out.ChecksumType)
	return out, nil
}

// headRaced, when set (tests), runs between reading the SHA-256 of the
// object's file and the backend's HEAD: where an overwrite would race.
var headRaced func(bucket, key string)

// HeadObject answers a client's HEAD. The backend's HEAD reads the object
// by path and returns no file, so an overwrite may land between reading
// the SHA-256 and the HEAD: the SHA-256 would then be one content's and
// the ETag and size another's. So the file is opened first and the
// SHA-256 read through that descriptor, then the backend heads the path,
// then the path is checked to still name the opened file (same inode,
// which cannot be reused while it is open). Objects are never rewritten in
// place and a file is linked as an object only once, at its write, so a
// path that names the same file before and after the HEAD named it
// during the HEAD: the answer's ETag and size are that file's, and so is
// the SHA-256. Otherwise the header is left out (the client reads the
// bytes), never wrong. Comparing ETags instead would trust MD5, which
// collides.
func (c clientBackend) HeadObject(ctx context.Context, in *s3.HeadObjectInput) (*s3.HeadObjectOutput, error) {
	if !c.xattrs || !wholeObject(in.ChecksumMode, in.Range, in.PartNumber) || deref(in.VersionId) != "" {
		return c.Backend.HeadObject(ctx, in)
	}
	bucket, key := deref(in.Bucket), deref(in.Key)
	var (
		sum    string
		opened os.FileInfo
		path   string
	)
	if filepath.IsLocal(bucket) && filepath.IsLocal(key) {
		path = filepath.Join(c.dataDir, bucket, key)
		if f, err := os.Open(path); err == nil {
			// Held open until the check: an inode number is only reused
			// once its file is gone, unlinked and closed.
			defer f.Close()
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				opened, sum = fi, c.storedSHA256(f, bucket, key)
			}
		}
	}
	if headRaced != nil && sum != "" {
		headRaced(bucket, key)
	}
	out, err := c.Backend.HeadObject(ctx, in)
	if err != nil || out == nil || sum == "" {
		return out, err
	}
	if now, err := os.Stat(path); err != nil || !os.SameFile(opened, now) {
		return out, nil // overwritten or deleted meanwhile: say nothing
	}
	out.ChecksumSHA256, out.ChecksumType = withStoredSHA256(sum, out.ChecksumSHA256, out.ChecksumType)
	return out, nil
}
