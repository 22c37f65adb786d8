package kafka_test

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/source"
	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// The real chain: a real MinIO server publishes bucket notifications to a
// Kafka-protocol broker in another process, and the kafka source reads
// them as a consumer group.
func TestMinIOToKafka(t *testing.T) {
	const (
		bucket = "images"
		group  = "g-minio"
	)
	k := peers.StartKafka(t, topic)
	m := peers.StartMinIO(t, peers.MinIOOptions{KafkaBrokers: k.Addr, KafkaTopic: topic, ID: "dedupfn"})
	ctx := t.Context()
	mc := m.Client(t)
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	m.Notify(t, bucket, m.ARN, notification.ObjectCreatedAll, notification.ObjectRemovedAll)

	col := newCollector()
	run(t, k.Addr, group, col.handle, source.Options{})

	objects := map[string][]byte{
		"cat.jpg":               []byte("meow"),
		"holiday photo 1.jpg":   []byte("sun and sea"),
		"dir/Zürich+plus 2.bin": bytes.Repeat([]byte{7}, 5000),
	}
	for key, data := range objects {
		info, err := mc.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
			ContentType:  "application/octet-stream",
			UserMetadata: map[string]string{"Color": "red"},
		})
		if err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
		sum := md5.Sum(data)
		if info.ETag != hex.EncodeToString(sum[:]) {
			t.Fatalf("put %q: etag %q", key, info.ETag)
		}
	}
	testutil.Eventually(t, 60*time.Second, "3 events from MinIO through Kafka", func() bool { return col.distinct() == len(objects) })

	removedEvents(t, m, mc, col)

	col.mu.Lock()
	defer col.mu.Unlock()
	for _, ev := range col.evs {
		if ev.Removed() {
			continue // checked by removedEvents
		}
		data, ok := objects[ev.Key]
		if !ok {
			t.Errorf("unexpected key %q (not decoded?)", ev.Key)
			continue
		}
		sum := md5.Sum(data)
		if ev.Bucket != bucket || ev.Size != int64(len(data)) || ev.ETag != hex.EncodeToString(sum[:]) ||
			ev.Source != "kafka" || ev.Sequencer == "" || ev.Time.IsZero() || ev.Metadata["color"] != "red" {
			t.Errorf("event for %q = %+v", ev.Key, ev)
		}
		if !time.Now().After(ev.Time) || time.Since(ev.Time) > 5*time.Minute {
			t.Errorf("event time %v not recent", ev.Time)
		}
	}
	if len(col.evs) != len(objects)+3 {
		t.Errorf("got %d events, want %d created and 3 removed: %+v", len(col.evs), len(objects), col.evs)
	}
}

// removedEvents deletes objects in MinIO and checks that their
// object-removed events (issue 20) come through Kafka as the source parses
// them: a delete, a delete marker in a versioned bucket and each key of a
// multi-delete, named and with the key decoded, no size and no etag. A
// delete of a key that never was (MinIO's ObjectRemoved:NoOP) gives none.
func removedEvents(t *testing.T, m *peers.MinIO, mc *minio.Client, col *collector) {
	t.Helper()
	ctx := t.Context()
	if err := mc.MakeBucket(ctx, "versioned", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := mc.EnableVersioning(ctx, "versioned"); err != nil {
		t.Fatal(err)
	}
	m.Notify(t, "versioned", m.ARN, notification.ObjectRemovedAll)
	put, err := mc.PutObject(ctx, "versioned", "v 1.txt", bytes.NewReader([]byte("v")), 1, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.RemoveObject(ctx, "images", "cat.jpg", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := mc.RemoveObject(ctx, "images", "never-there.jpg", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := mc.RemoveObject(ctx, "versioned", "v 1.txt", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	keys := make(chan minio.ObjectInfo, 1)
	keys <- minio.ObjectInfo{Key: "holiday photo 1.jpg"}
	close(keys)
	for e := range mc.RemoveObjects(ctx, "images", keys, minio.RemoveObjectsOptions{}) {
		t.Fatalf("multi-delete: %v", e.Err)
	}
	want := map[string]string{
		"images/cat.jpg":             "s3:ObjectRemoved:Delete",
		"images/holiday photo 1.jpg": "s3:ObjectRemoved:Delete",
		"versioned/v 1.txt":          "s3:ObjectRemoved:DeleteMarkerCreated",
	}
	removed := func() map[string]event.Event {
		col.mu.Lock()
		defer col.mu.Unlock()
		got := map[string]event.Event{}
		for _, ev := range col.evs {
			if ev.Removed() {
				got[ev.Bucket+"/"+ev.Key] = ev
			}
		}
		return got
	}
	testutil.Eventually(t, 60*time.Second, "3 removed events from MinIO through Kafka", func() bool { return len(removed()) >= len(want) })
	time.Sleep(500 * time.Millisecond) // a NoOP's event, if it were delivered
	got := removed()
	for k, name := range want {
		ev, ok := got[k]
		if !ok || ev.Name != name || ev.Source != "kafka" || ev.Size != 0 || ev.ETag != "" || !ev.HasTime() || ev.Sequencer == "" {
			t.Errorf("removed event for %s = %+v, want %s", k, ev, name)
		}
	}
	if ev := got["versioned/v 1.txt"]; ev.VersionID == "" || ev.VersionID == put.VersionID {
		t.Errorf("delete marker event version %q, want the marker's own (not the object's %q)", ev.VersionID, put.VersionID)
	}
	if len(got) != len(want) {
		t.Errorf("removed events %+v, want only %v", got, want)
	}
}

// The broker process (test/peers/kafkabroker, as MinIO and other replicas
// use it) is restarted mid-stream: the consumer reconnects and every event
// produced before, during and after the restart is delivered.
func TestSource_BrokerProcessRestart(t *testing.T) {
	k := peers.StartKafka(t, topic)
	col := newCollector()
	run(t, k.Addr, "g-proc-restart", col.handle, source.Options{})
	batch := func(from, to int) (ps [][]byte) {
		for i := from; i < to; i++ {
			ps = append(ps, minioPayload("s3:ObjectCreated:Put", "b", fmt.Sprintf("obj-%03d", i), 1))
		}
		return ps
	}
	produce(t, k.Addr, batch(0, 30)...)
	testutil.Eventually(t, 30*time.Second, "first batch", func() bool { return col.distinct() == 30 })
	k.Restart(t)
	produce(t, k.Addr, batch(30, 60)...)
	testutil.Eventually(t, 60*time.Second, "second batch after restart", func() bool { return col.distinct() == 60 })
	for i := range 60 {
		if key := fmt.Sprintf("obj-%03d", i); col.count(key) < 1 {
			t.Errorf("%s lost", key)
		}
	}
}
