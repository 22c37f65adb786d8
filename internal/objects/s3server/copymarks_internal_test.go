package s3server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/versity/versitygw/backend"
	"github.com/versity/versitygw/s3response"

	"github.com/dedupfn/dedupfn/internal/event"
)

// marksBackend copies an object carrying dedupfn's marks (directive
// COPY), then fails the rewrite that would drop them; it records deletes.
type marksBackend struct {
	backend.BackendUnsupported
	deleted []string
}

func (b *marksBackend) CopyObject(_ context.Context, in s3response.CopyObjectInput) (s3response.CopyObjectOutput, error) {
	if in.MetadataDirective == types.MetadataDirectiveReplace {
		return s3response.CopyObjectOutput{}, errors.New("disk full")
	}
	return s3response.CopyObjectOutput{}, nil
}

func (b *marksBackend) HeadObject(context.Context, *s3.HeadObjectInput) (*s3.HeadObjectOutput, error) {
	return &s3.HeadObjectOutput{Metadata: map[string]string{event.MetaOutputOf: "fn@v1", "mine": "1"}}, nil
}

func (b *marksBackend) DeleteObject(_ context.Context, in *s3.DeleteObjectInput) (*s3.DeleteObjectOutput, error) {
	b.deleted = append(b.deleted, *in.Bucket+"/"+*in.Key)
	return &s3.DeleteObjectOutput{}, nil
}

// Review of issue 17 (F): a client's COPY-directive copy of dedupfn's
// output whose marks cannot be dropped must not stay in the store as
// dedupfn's output (which would trigger nothing). On the parent commit the
// copy failed with a 500 but the destination stayed, marks and all
// ("deleted [], want [dst/k]").
func TestCopyObject_DestinationDeletedWhenMarksCannotBeDropped(t *testing.T) {
	b := &marksBackend{}
	p := &publishing{Backend: b, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	bucket, key, src := "dst", "k", "out/output.bin"
	_, err := p.CopyObject(t.Context(), s3response.CopyObjectInput{Bucket: &bucket, Key: &key, CopySource: &src})
	if err == nil {
		t.Fatal("copy succeeded although its marks could not be dropped")
	}
	if len(b.deleted) != 1 || b.deleted[0] != "dst/k" {
		t.Fatalf("deleted %v, want [dst/k]: the copy keeps dedupfn-output-of", b.deleted)
	}
}
