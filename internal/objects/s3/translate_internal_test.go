package s3

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/objects"
)

// TestPermanentStoreErrorsClassified: S3 answers that retrying cannot
// change wrap objects.ErrPermanent (a missing bucket too); missing objects stay ErrNotFound; 5xx,
// throttling and network errors wrap neither (transient).
func TestPermanentStoreErrorsClassified(t *testing.T) {
	resp := func(status int, code string) error {
		return minio.ErrorResponse{StatusCode: status, Code: code, Message: code}
	}
	tests := []struct {
		name string
		err  error
		want string // "notfound", "permanent" or "transient"
	}{
		{"NoSuchKey", resp(404, "NoSuchKey"), "notfound"},
		{"NoSuchBucket", resp(404, "NoSuchBucket"), "permanent"}, // issue 19 item 3: retrying cannot create it
		{"HeadNotFound", resp(404, ""), "notfound"},
		{"PreconditionFailed", resp(412, "PreconditionFailed"), "notfound"},
		{"AccessDenied", resp(403, "AccessDenied"), "permanent"},
		{"SignatureDoesNotMatch", resp(403, "SignatureDoesNotMatch"), "permanent"},
		{"InvalidAccessKeyId", resp(403, "InvalidAccessKeyId"), "permanent"},
		{"InvalidObjectName", resp(400, "InvalidObjectName"), "permanent"},
		{"XMinioInvalidObjectName", resp(400, "XMinioInvalidObjectName"), "permanent"},
		{"KeyTooLongError", resp(400, "KeyTooLongError"), "permanent"},
		{"InvalidObjectStateArchived", resp(403, "InvalidObjectState"), "permanent"},
		{"InvalidArgument", resp(400, "InvalidArgument"), "permanent"},
		{"MethodNotAllowed", resp(405, "MethodNotAllowed"), "permanent"},
		{"InvalidRange", resp(416, "InvalidRange"), "permanent"},
		{"HeadBadRequest", resp(400, ""), "permanent"},
		{"WrappedAccessDenied", fmt.Errorf("context: %w", resp(403, "AccessDenied")), "permanent"},
		{"InternalError", resp(500, "InternalError"), "transient"},
		{"NotImplementedStaysRetried", resp(501, "NotImplemented"), "transient"},
		{"BadGateway", resp(502, ""), "transient"},
		{"SlowDown503", resp(503, "SlowDown"), "transient"},
		{"SlowDownAs400", resp(400, "SlowDown"), "transient"},
		{"RequestTimeout400", resp(400, "RequestTimeout"), "transient"},
		{"RequestTimeout408", resp(408, ""), "transient"},
		{"TooManyRequests", resp(429, ""), "transient"},
		{"Conflict409", resp(409, "OperationAborted"), "transient"},
		{"ClockSkew", resp(403, "RequestTimeTooSkewed"), "transient"},
		{"ExpiredToken", resp(400, "ExpiredToken"), "transient"},
		{"ConnectionRefused", &url.Error{Op: "Get", URL: "http://127.0.0.1:1", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, "transient"},
		{"Deadline", context.DeadlineExceeded, "transient"},
		{"Canceled", context.Canceled, "transient"},
		{"Plain", errors.New("unexpected EOF"), "transient"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := translate("b", tc.err)
			got := "transient"
			switch {
			case errors.Is(err, objects.ErrNotFound) && errors.Is(err, objects.ErrPermanent):
				got = "both"
			case errors.Is(err, objects.ErrNotFound):
				got = "notfound"
			case errors.Is(err, objects.ErrPermanent):
				got = "permanent"
			}
			if got != tc.want {
				t.Errorf("translate(%v) = %v: %s, want %s", tc.err, err, got, tc.want)
			}
			if !errors.Is(err, tc.err) && err.Error() != tc.err.Error() {
				t.Errorf("translate(%v) = %v lost the original error", tc.err, err)
			}
		})
	}
}

// TestTrustedSHA256: only a full-object SHA-256 checksum becomes
// Info.SHA256; composite, malformed and other checksums never do.
func TestTrustedSHA256(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	want := hex.EncodeToString(sum[:])
	tests := []struct {
		name string
		oi   minio.ObjectInfo
		want string
	}{
		{"FullObject", minio.ObjectInfo{ChecksumSHA256: b64, ChecksumMode: "FULL_OBJECT"}, want},
		{"NoTypeSinglePart", minio.ObjectInfo{ChecksumSHA256: b64}, want},
		{"CompositeType", minio.ObjectInfo{ChecksumSHA256: b64, ChecksumMode: "COMPOSITE"}, ""},
		{"CompositeValue", minio.ObjectInfo{ChecksumSHA256: b64 + "-3"}, ""},
		{"CompositeValueFullType", minio.ObjectInfo{ChecksumSHA256: b64 + "-3", ChecksumMode: "FULL_OBJECT"}, ""},
		{"NotBase64", minio.ObjectInfo{ChecksumSHA256: "not base64!", ChecksumMode: "FULL_OBJECT"}, ""},
		{"WrongLength", minio.ObjectInfo{ChecksumSHA256: base64.StdEncoding.EncodeToString(sum[:16]), ChecksumMode: "FULL_OBJECT"}, ""},
		{"OnlyCRC", minio.ObjectInfo{ChecksumCRC32C: "AAAAAA==", ChecksumMode: "FULL_OBJECT"}, ""},
		{"ETagOnly", minio.ObjectInfo{ETag: hex.EncodeToString(sum[:16])}, ""},
		{"MetadataOnly", minio.ObjectInfo{UserMetadata: map[string]string{"X-Amz-Meta-Sha256": want}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := toInfo("b", tc.oi).SHA256; got != tc.want {
				t.Errorf("SHA256 = %q, want %q", got, tc.want)
			}
		})
	}
}
