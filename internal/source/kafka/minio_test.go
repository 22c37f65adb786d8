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
	m.Notify(t, bucket, m.ARN, notification.ObjectCreatedAll)

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

	col.mu.Lock()
	defer col.mu.Unlock()
	for _, ev := range col.evs {
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
	if len(col.evs) != len(objects) {
		t.Errorf("got %d events, want %d: %+v", len(col.evs), len(objects), col.evs)
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
