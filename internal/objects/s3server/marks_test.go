package s3server_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/objects/objectstest"
)

// Issue 17 item 20: a client of the endpoint cannot set dedupfn's own
// metadata (x-amz-meta-dedupfn-*) on a PUT, a multipart upload or a copy,
// so no upload can pass for dedupfn's output and skip its event; the
// store's own in-process writes (dedupfn's outputs) keep it.
func TestClientCannotSetDedupfnMetadata(t *testing.T) {
	rec := &recorder{}
	st := openStore(t, rec)
	ctx := t.Context()
	b := objectstest.NewBucket(t, st)
	marks := map[string]string{event.MetaOutputOf: "upper@v1", event.MetaInput: "in%2Fx.txt", "Dedupfn-Other": "1", "keep": "yes"}

	if _, err := st.Client.Put(ctx, b, "put", strings.NewReader("put"), 3, objects.PutOptions{Metadata: marks}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client.Put(ctx, b, "multipart", strings.NewReader("multipart"), -1, objects.PutOptions{Metadata: marks}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client.Copy(ctx, objects.Info{Bucket: b, Key: "put"}, b, "copy-replace", objects.PutOptions{Metadata: marks}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, b, "ours", strings.NewReader("ours"), 4, objects.PutOptions{Metadata: marks, ContentType: "text/x-ours"}); err != nil {
		t.Fatal(err)
	}
	// A client's copy of dedupfn's output, metadata directive COPY.
	if _, err := st.Client.Minio().CopyObject(ctx, minio.CopyDestOptions{Bucket: b, Object: "copy-copy"}, minio.CopySrcOptions{Bucket: b, Object: "ours"}); err != nil {
		t.Fatal(err)
	}

	for _, key := range []string{"put", "multipart", "copy-replace", "copy-copy"} {
		info, err := st.Stat(ctx, b, key)
		if err != nil {
			t.Fatalf("stat %s: %v", key, err)
		}
		for k := range info.Metadata {
			if strings.HasPrefix(k, "dedupfn-") {
				t.Errorf("%s: a client set %s=%q", key, k, info.Metadata[k])
			}
		}
		if info.Metadata["keep"] != "yes" {
			t.Errorf("%s: other metadata lost: %v", key, info.Metadata)
		}
		if !slices.ContainsFunc(rec.events(), func(ev event.Event) bool { return ev.Key == key }) {
			t.Errorf("%s: no event published: a client's object must trigger", key)
		}
	}
	if info, err := st.Stat(ctx, b, "copy-copy"); err != nil || info.ContentType != "text/x-ours" {
		t.Errorf("copy-copy: content type %q (%v), want the source's text/x-ours", info.ContentType, err)
	}
	ours, err := st.Stat(ctx, b, "ours")
	if err != nil || ours.Metadata[event.MetaOutputOf] != "upper@v1" {
		t.Fatalf("dedupfn's own output lost its marks: %v, %v", ours.Metadata, err)
	}
	// A hit's copy of it, in process, with the marks: ours too.
	if _, err := st.Copy(ctx, ours, b, "ours-copy", objects.PutOptions{Metadata: marks}); err != nil {
		t.Fatal(err)
	}
	if c, err := st.Stat(ctx, b, "ours-copy"); err != nil || c.Metadata[event.MetaOutputOf] != "upper@v1" || c.SHA256 != ours.SHA256 {
		t.Fatalf("dedupfn's copy of its output: %+v, %v", c, err)
	}
	for _, key := range []string{"ours", "ours-copy"} {
		if slices.ContainsFunc(rec.events(), func(ev event.Event) bool { return ev.Key == key }) {
			t.Errorf("dedupfn's own output %s published an event", key)
		}
	}
}

// The info an in-process Put or Copy returns, made from the write itself
// without reading the object back, is what a Stat of it finds.
func TestWriteInfoIsTheStoredObjects(t *testing.T) {
	st := openStore(t, &recorder{})
	ctx := t.Context()
	b := objectstest.NewBucket(t, st)
	opts := objects.PutOptions{ContentType: "text/x-out", Metadata: map[string]string{event.MetaOutputOf: "fn@v1", "Other": "x"}}
	put, err := st.Put(ctx, b, "put", strings.NewReader("some output"), 11, opts)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := st.Copy(ctx, put, b, "copy", opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []objects.Info{put, cp} {
		got, err := st.Stat(ctx, b, w.Key)
		if err != nil {
			t.Fatal(err)
		}
		if w.ETag != got.ETag || w.Size != got.Size || w.SHA256 != got.SHA256 || w.ContentType != got.ContentType ||
			!w.Modified.Equal(got.Modified) || w.Metadata[event.MetaOutputOf] != got.Metadata[event.MetaOutputOf] || w.Metadata["other"] != got.Metadata["other"] {
			t.Errorf("%s: the write returned %+v, Stat finds %+v", w.Key, w, got)
		}
	}
}
