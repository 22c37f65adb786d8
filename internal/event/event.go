// Package event is the object event model (created and removed) shared by
// every source, and the one place where events are cleaned (see Normalize).
package event

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// Event is one object-created or object-removed notification, whatever
// source it came from (see Removed).
type Event struct {
	// Source names where the event came from: "embedded", "kafka",
	// "webhook", "reconcile" or "invoke".
	Source string `json:"source"`
	// Name is the S3 event name, e.g. "s3:ObjectCreated:Put".
	Name      string `json:"name"`
	Bucket    string `json:"bucket"`
	Key       string `json:"key"` // URL-decoded
	VersionID string `json:"version_id,omitempty"`
	ETag      string `json:"etag,omitempty"`
	Sequencer string `json:"sequencer,omitempty"`
	// Nonce distinguishes deliberate re-runs of one object version (an
	// on-demand invoke) and events without an object (a malformed payload's
	// digest); object events leave it empty.
	Nonce       string            `json:"nonce,omitempty"`
	Size        int64             `json:"size"`
	ContentType string            `json:"content_type,omitempty"`
	Time        time.Time         `json:"time"`
	Metadata    map[string]string `json:"metadata,omitempty"` // user metadata, lower-case keys without x-amz-meta-
	// SHA256 is the lower-case hex SHA-256 of the whole object's bytes. It
	// is set only by sources that computed it from the bytes themselves
	// (the built-in endpoint hashes every write) or had the store verify
	// it; never from anything an uploader controls (user metadata, an
	// unverified header). Empty means unknown: read and hash the object.
	SHA256 string `json:"sha256,omitempty"`

	// timeFilled: Normalize set Time, which the event did not carry.
	timeFilled bool
}

// HasTime reports whether the event carried its own time (the upload's,
// the same in every redelivery), not one Normalize filled in.
func (e Event) HasTime() bool { return !e.Time.IsZero() && !e.timeFilled }

// ErrMalformed wraps every parse error of outside input.
var ErrMalformed = errors.New("malformed event")

// ErrNotCreated is returned for well-formed events that are neither
// object-created nor object-removed (ACL changes, restores, replication,
// MinIO's ObjectRemoved:NoOP), and for objects that are never function
// inputs, created or removed (folder markers, dedupfn's staging area):
// sources skip them.
var ErrNotCreated = errors.New("not an object-created or object-removed event")

// StagingPrefix is the key prefix under which functions that write their
// output through a presigned URL put it, before dedupfn moves it to its
// output key. Objects under it never trigger a function.
const StagingPrefix = ".dedupfn/staging/"

// ID identifies one object content at one key: (bucket, key, version,
// SHA-256 of the content), so the pipeline takes it after the fingerprint,
// with SHA256 set to the bytes' own. A redelivered event, the same upload
// found by the reconciler, and a backfill all have the same ID; a new
// content under the key has a different one even where the store gives no
// versions and its ETag (an MD5, cheap to make collide) is the old one's.
// The ETag is left out: it never decides identity. The sequencer is left
// out too: the reconciler cannot know it, and an ID that depended on it
// would give one upload two activations.
func (e Event) ID() string {
	h := sha256.New()
	for _, s := range []string{e.Bucket, e.Key, e.VersionID, e.SHA256, e.Nonce} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// IsCreated reports whether the event name is an object-created one.
func IsCreated(name string) bool {
	n := strings.TrimPrefix(name, "s3:")
	return name == "" || strings.HasPrefix(n, "ObjectCreated")
}

// noOpRemoved is MinIO's event for a delete that removed nothing (a
// missing key, or a missing version of a key that may still exist): it
// must never be taken for the removal of an input.
const noOpRemoved = "ObjectRemoved:NoOP"

// IsRemoved reports whether the event name is an object-removed one:
// s3:ObjectRemoved:Delete, s3:ObjectRemoved:DeleteMarkerCreated (a delete
// marker in a versioned bucket counts as a delete) or any other
// ObjectRemoved:*, except MinIO's ObjectRemoved:NoOP, which removed nothing.
func IsRemoved(name string) bool {
	n := strings.TrimPrefix(name, "s3:")
	return strings.HasPrefix(n, "ObjectRemoved") && n != noOpRemoved
}

// Removed reports whether e is an object-removed event (IsRemoved); every
// other event that passed Normalize is an object-created one.
func (e Event) Removed() bool { return IsRemoved(e.Name) }

// Normalize checks the event and cleans it: resolves the key's "." and
// ".." segments as the store does (CleanKey), trims the etag quotes and
// lower-cases metadata keys. Keys must already be URL-decoded by the parser.
// Object-removed events are cleaned the same way (so that a delete names
// the key its upload's event named); they need no size, etag or SHA-256.
func Normalize(e Event) (Event, error) {
	if e.Bucket == "" {
		return e, fmt.Errorf("%w: missing bucket", ErrMalformed)
	}
	if e.Key == "" {
		return e, fmt.Errorf("%w: missing object key", ErrMalformed)
	}
	if !IsCreated(e.Name) && !IsRemoved(e.Name) {
		return e, fmt.Errorf("%w: %s", ErrNotCreated, e.Name)
	}
	if strings.HasSuffix(e.Key, "/") {
		return e, fmt.Errorf("%w: %s is a folder marker", ErrNotCreated, e.Key)
	}
	key, err := CleanKey(e.Key)
	if err != nil {
		return e, err
	}
	e.Key = key
	if strings.HasPrefix(e.Key, StagingPrefix) {
		return e, fmt.Errorf("%w: %s is a staged function output", ErrNotCreated, e.Key)
	}
	e.ETag = strings.Trim(e.ETag, `"`)
	if len(e.Metadata) > 0 {
		m := make(map[string]string, len(e.Metadata))
		for k, v := range e.Metadata {
			k = strings.ToLower(k)
			k = strings.TrimPrefix(k, "x-amz-meta-")
			m[k] = v
		}
		e.Metadata = m
	}
	if e.Time.IsZero() {
		e.Time, e.timeFilled = time.Now().UTC(), true
	}
	return e, nil
}

// CleanKey returns the key under which the store keeps an object uploaded
// as key: the built-in endpoint (versitygw's posix backend) resolves "."
// and ".." segments and drops empty ones and leading slashes, as a file
// path is joined (t/x/../b.txt is stored as t/b.txt, and
// .dedupfn/staging/../../t/c.txt as t/c.txt, no staged output at all).
// Every decision about an event (trigger, staging area, output key) is
// taken on that key. MinIO refuses such keys, so their events never come.
// A key that resolves outside its bucket is malformed: no store keeps it.
func CleanKey(key string) (string, error) {
	// As versitygw's utils.IsObjectNameValid and the posix backend's
	// filepath.Join: relative to the bucket.
	clean := path.Clean("./" + key)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return key, fmt.Errorf("%w: object key %q resolves outside its bucket", ErrMalformed, key)
	}
	return clean, nil
}

// MetaPrefix begins every user-metadata key dedupfn sets on what it
// writes. The built-in endpoint drops client-set keys with it; on other
// stores any uploader can set them, so the pipeline never decides from
// them whether an object is dedupfn's output (it asks the index).
const MetaPrefix = "dedupfn-"

// MetaOutputOf is the user-metadata key dedupfn sets on every object it
// writes; an event for such an object never triggers a function, which
// breaks self-trigger loops even when output bucket == input bucket.
const MetaOutputOf = "dedupfn-output-of"

// MetaInput is the user-metadata key naming the input (URL-escaped
// "bucket/key") an output was made from, so that an output key two
// inputs render alike is detected instead of silently overwritten.
const MetaInput = "dedupfn-input"
