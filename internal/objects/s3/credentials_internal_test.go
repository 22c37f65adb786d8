package s3

import (
	"errors"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/objects"
)

// TestClassify_CredentialsRefused: a store's answers that refuse the
// credentials wrap objects.ErrAccessDenied (and ErrPermanent), never
// ErrNotFound: the built-in endpoint answers an unknown access key with a
// 404 XAdminUserNotFound, which read as "objects: not found".
func TestClassify_CredentialsRefused(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
	}{
		{403, "AccessDenied"}, {403, "InvalidAccessKeyId"}, {403, "SignatureDoesNotMatch"}, {404, "XAdminUserNotFound"},
	} {
		err := translate("b", minio.ErrorResponse{StatusCode: tc.status, Code: tc.code, Message: "No user exists with the provided access key ID."})
		if !errors.Is(err, objects.ErrAccessDenied) || !errors.Is(err, objects.ErrPermanent) || errors.Is(err, objects.ErrNotFound) {
			t.Errorf("%d %s: %v, want ErrAccessDenied and ErrPermanent, not ErrNotFound", tc.status, tc.code, err)
		}
	}
	for _, code := range []string{"NoSuchKey", "InvalidObjectName", "SlowDown"} {
		if err := translate("b", minio.ErrorResponse{StatusCode: 404, Code: code}); errors.Is(err, objects.ErrAccessDenied) {
			t.Errorf("%s: %v wraps ErrAccessDenied", code, err)
		}
	}
}
