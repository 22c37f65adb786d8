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
	// A delete is posted too, and acknowledged without an event.
	if err := mc.RemoveObject(ctx, "images", "a.txt", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "3 events posted by MinIO", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.evs) >= len(keys)
	})
	time.Sleep(500 * time.Millisecond) // the delete's post
	f.mu.Lock()
	defer f.mu.Unlock()
	got := map[string]int64{}
	for _, ev := range f.evs {
		got[ev.Key] = ev.Size
	}
	for _, k := range keys {
		if got[k] != int64(len(k)) {
			t.Errorf("key %q: size %d, events %+v", k, got[k], f.evs)
		}
	}
	if len(f.evs) != len(keys) {
		t.Errorf("got %d events, want %d", len(f.evs), len(keys))
	}
}
