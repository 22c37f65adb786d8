package webhook_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/dedupfn/dedupfn/internal/source/webhook"
	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// A real MinIO server's webhook target posts to the source, with the
// bearer token it was configured with.
func TestMinIOWebhook(t *testing.T) {
	f := newFixture(t, true)
	m := peers.StartMinIO(t, peers.MinIOOptions{
		WebhookEndpoint: f.srv.URL + webhook.Path,
		WebhookToken:    token,
	})
	ctx := t.Context()
	mc := m.Client(t)
	if err := mc.MakeBucket(ctx, "images", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Notify(t, "images", m.WebhookARN, notification.ObjectCreatedAll, notification.ObjectRemovedAll)
	keys := []string{"a.txt", "two words.txt", "dir/ü+1.txt"}
	for _, k := range keys {
		if _, err := mc.PutObject(ctx, "images", k, bytes.NewReader([]byte(k)), int64(len(k)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A delete is posted too, as an object-removed event (issue 20); a
	// delete of a key that never was (MinIO's ObjectRemoved:NoOP) is not.
	if err := mc.RemoveObject(ctx, "images", "a.txt", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := mc.RemoveObject(ctx, "images", "never-there.txt", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "4 events posted by MinIO", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.evs) >= len(keys)+1
	})
	time.Sleep(500 * time.Millisecond) // the no-op delete's post
	f.mu.Lock()
	defer f.mu.Unlock()
	got := map[string]int64{}
	var removed []string
	for _, ev := range f.evs {
		if ev.Removed() {
			removed = append(removed, ev.Name+" "+ev.Key)
			continue
		}
		got[ev.Key] = ev.Size
	}
	for _, k := range keys {
		if got[k] != int64(len(k)) {
			t.Errorf("key %q: size %d, events %+v", k, got[k], f.evs)
		}
	}
	if len(removed) != 1 || removed[0] != "s3:ObjectRemoved:Delete a.txt" {
		t.Errorf("removed events %q, want [s3:ObjectRemoved:Delete a.txt]", removed)
	}
	if len(f.evs) != len(keys)+1 {
		t.Errorf("got %d events, want %d", len(f.evs), len(keys)+1)
	}
}
