package s3server

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v3"
	"github.com/versity/versitygw/s3api/utils"
	"github.com/versity/versitygw/s3err"
)

// rejectInvalidNames answers 400 to a request whose bucket or key (in the
// path or in x-amz-copy-source) holds a NUL byte or is not UTF-8 once
// percent-decoded. S3 keys are UTF-8; the posix backend cannot store a NUL
// in a file name, and its error would otherwise reach the client as a 500
// (which clients, dedupfn's own among them, retry). It runs before
// authentication: a name no request could ever use is refused outright.
func rejectInvalidNames(ctx fiber.Ctx) error {
	if err := checkNames(ctx); err != nil {
		requestID, hostID := utils.EnsureRequestIDs(ctx)
		ctx.Response().Header.SetContentType(fiber.MIMEApplicationXML)
		return ctx.Status(err.HTTPStatusCode).Send(err.XMLBody(requestID, hostID))
	}
	return ctx.Next()
}

func checkNames(ctx fiber.Ctx) *s3err.APIError {
	path, err := url.PathUnescape(string(ctx.Request().URI().PathOriginal()))
	if err != nil {
		e := s3err.GetAPIError(s3err.ErrInvalidURI)
		return &e
	}
	if !validName(path) {
		return &s3err.APIError{
			Code:           "InvalidObjectName",
			Description:    "Bucket and object names must be UTF-8 without NUL characters.",
			HTTPStatusCode: http.StatusBadRequest,
		}
	}
	if src := ctx.Get("X-Amz-Copy-Source"); src != "" {
		if s, err := url.PathUnescape(src); err == nil && !validName(s) {
			return &s3err.APIError{
				Code:           "InvalidArgument",
				Description:    "x-amz-copy-source must name a UTF-8 bucket and key without NUL characters.",
				HTTPStatusCode: http.StatusBadRequest,
			}
		}
	}
	return nil
}

// validName reports whether s is UTF-8 without NUL bytes.
func validName(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
