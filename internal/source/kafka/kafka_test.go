package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/source"
	"github.com/dedupfn/dedupfn/internal/source/kafka"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

const topic = "minio-events"

func TestOpen_URL(t *testing.T) {
	tests := []struct {
		name, url string
		brokers   []string
		topic     string
		group     string
		err       string
	}{
		{name: "Default group", url: "kafka://k1:9092/events", brokers: []string{"k1:9092"}, topic: "events", group: "dedupfn"},
		{name: "Several brokers", url: "kafka://k1:9092,k2:9093/events?group=g1", brokers: []string{"k1:9092", "k2:9093"}, topic: "events", group: "g1"},
		{name: "SessionTimeout", url: "kafka://k1:9092/events?session_timeout=6s", brokers: []string{"k1:9092"}, topic: "events", group: "dedupfn"},
		{name: "BadSessionTimeout", url: "kafka://k1:9092/events?session_timeout=5ms", err: `kafka: session_timeout must be a duration >= 1s, got "5ms"`},
		{name: "MissingTopic", url: "kafka://k1:9092", err: "kafka: missing topic, expected kafka://host:9092[,host2:9092]/topic?group=NAME"},
		{name: "MissingTopicSlash", url: "kafka://k1:9092/", err: "kafka: missing topic"},
		{name: "NoPort", url: "kafka://k1/events", err: `kafka: broker "k1" must be host:port`},
		{name: "NoHost", url: "kafka:///events", err: "kafka: missing broker address"},
		{name: "EmptyGroup", url: "kafka://k1:9092/events?group=", err: "kafka: empty group"},
		{name: "UnknownParam", url: "kafka://k1:9092/events?grp=x", err: `kafka: unknown parameter "grp"`},
		{name: "NestedTopic", url: "kafka://k1:9092/a/b", err: `kafka: topic "a/b" must not contain '/'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := source.Open(t.Context(), tt.url, source.Options{})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Open(%q) error = %v, want it to contain %q", tt.url, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			s := src.(*kafka.Source)
			if fmt.Sprint(s.Brokers()) != fmt.Sprint(tt.brokers) || s.Topic() != tt.topic || s.Group() != tt.group {
				t.Errorf("got brokers %v topic %q group %q", s.Brokers(), s.Topic(), s.Group())
			}
		})
	}
}

// newCluster starts an in-process kfake broker with topic (partitions
// partitions) and returns it with its address.
func newCluster(t *testing.T, partitions int32, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

// minioPayload is a notification shaped like what MinIO's Kafka target sends.
func minioPayload(name, bucket, key string, size int64) []byte {
	return fmt.Appendf(nil, `{"EventName":%q,"Key":%q,"Records":[{"eventVersion":"2.0","eventSource":"minio:s3",`+
		`"eventTime":"2025-11-25T21:14:03.512Z","eventName":%q,"s3":{"s3SchemaVersion":"1.0","configurationId":"Config",`+
		`"bucket":{"name":%q,"arn":"arn:aws:s3:::%s"},"object":{"key":%q,"size":%d,"eTag":"etag-%s","sequencer":"SEQ%s"}}}]}`,
		name, bucket+"/"+key, name, bucket, bucket, url.QueryEscape(key), size, key, key)
}

// produce writes payloads to topic, each keyed by its index so that they
// spread over partitions, and waits for the broker to acknowledge them.
func produce(t *testing.T, addr string, payloads ...[]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var rs []*kgo.Record
	for i, p := range payloads {
		rs = append(rs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: p})
	}
	if err := cl.ProduceSync(t.Context(), rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// collector is a Handler that records every delivered event.
type collector struct {
	mu   sync.Mutex
	evs  []event.Event
	keys map[string]int
	// fail, when set, is consulted first; a non-nil error fails the call.
	fail func(ctx context.Context, ev event.Event) error
}

func newCollector() *collector { return &collector{keys: map[string]int{}} }

func (c *collector) handle(ctx context.Context, ev event.Event) error {
	if c.fail != nil {
		if err := c.fail(ctx, ev); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evs = append(c.evs, ev)
	c.keys[ev.Key]++
	return nil
}

func (c *collector) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys[key]
}

func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys)
}

func (c *collector) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.evs)
}

// run opens a source for the broker and group and runs it until the test
// ends or stop is called; stop returns Run's error.
func run(t *testing.T, addr, group string, h source.Handler, opts source.Options) (*kafka.Source, func() error) {
	t.Helper()
	src, err := source.Open(t.Context(), fmt.Sprintf("kafka://%s/%s?group=%s", addr, topic, group), opts)
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*kafka.Source)
	s.RetryMin, s.RetryMax = 10*time.Millisecond, 200*time.Millisecond
	s.CommitInterval = 100 * time.Millisecond
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background(), h) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			select {
			case runErr = <-errc:
			case <-time.After(30 * time.Second):
				runErr = errors.New("Run did not return after Close")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, stop
}

// committed returns the group's committed offset for partition p, or -1.
func committed(c *kfake.Cluster, group string, p int32) int64 {
	g := c.GroupInfo(group)
	if g == nil {
		return -1
	}
	if pc, ok := g.Commits[topic][p]; ok {
		return pc.Offset
	}
	return -1
}

func TestSource_DeliversDecodedKeys(t *testing.T) {
	c, addr := newCluster(t, 3)
	keys := []string{"plain.txt", "with space.jpg", "dir/sub/file+plus.png", "Zürich 日本.txt"}
	var payloads [][]byte
	for i, k := range keys {
		payloads = append(payloads, minioPayload("s3:ObjectCreated:Put", "images", k, int64(100+i)))
	}
	// A delete is an event too (issue 20); an ACL change and a test event
	// are acknowledged without one.
	payloads = append(payloads,
		minioPayload("s3:ObjectRemoved:Delete", "images", "gone dir/../gone.txt", 0),
		minioPayload("s3:ObjectAcl:Put", "images", "acl.txt", 1),
		[]byte(`{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"images"}`),
		[]byte(`this is not an event`),
	)
	produce(t, addr, payloads...)

	col := newCollector()
	var mu sync.Mutex
	var bad [][]byte
	opts := source.Options{OnMalformed: func(_ context.Context, payload []byte, err error) {
		if !errors.Is(err, event.ErrMalformed) {
			t.Errorf("OnMalformed error does not wrap ErrMalformed: %v", err)
		}
		mu.Lock()
		bad = append(bad, payload)
		mu.Unlock()
	}}
	s, stop := run(t, addr, "g-decode", col.handle, opts)
	testutil.Eventually(t, 20*time.Second, "5 events delivered", func() bool { return col.total() >= len(keys)+1 })
	// Everything, including the malformed, ACL and test records, is
	// committed: wait for the commits to cover every record.
	testutil.Eventually(t, 20*time.Second, "all offsets committed", func() bool {
		var sum int64
		for p := int32(0); p < 3; p++ {
			if o := committed(c, "g-decode", p); o > 0 {
				sum += o
			}
		}
		return sum == int64(len(payloads))
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if n := col.count(k); n != 1 {
			t.Errorf("key %q delivered %d times, want 1", k, n)
		}
		for _, ev := range col.evs {
			if ev.Key == k && (ev.Size != int64(100+i) || ev.ETag != "etag-"+k || ev.Bucket != "images" || ev.Source != "kafka") {
				t.Errorf("event %+v", ev)
			}
		}
	}
	if n := col.count("gone.txt"); n != 1 {
		t.Errorf("removed key gone.txt delivered %d times, want 1", n)
	}
	for _, ev := range col.evs {
		if ev.Removed() != (ev.Key == "gone.txt") || (ev.Removed() && (ev.Name != "s3:ObjectRemoved:Delete" || ev.Bucket != "images" || ev.Source != "kafka")) {
			t.Errorf("event %+v", ev)
		}
	}
	if col.total() != len(keys)+1 {
		t.Errorf("delivered %d events, want %d: %+v", col.total(), len(keys)+1, col.evs)
	}
	if s.Malformed() != 1 || len(bad) != 1 || string(bad[0]) != "this is not an event" {
		t.Errorf("malformed = %d, reported %q; want 1", s.Malformed(), bad)
	}
}

// A record whose handler has not returned is not committed, nor is any
// later record of its partition; a new member of the group gets them.
func TestSource_CommitOnlyAfterSuccess(t *testing.T) {
	c, addr := newCluster(t, 1)
	produce(t, addr,
		minioPayload("s3:ObjectCreated:Put", "b", "first", 1),
		minioPayload("s3:ObjectCreated:Put", "b", "stuck", 1),
		minioPayload("s3:ObjectCreated:Put", "b", "third", 1),
	)
	const group = "g-commit"
	col1 := newCollector()
	inStuck := make(chan struct{}, 1)
	col1.fail = func(ctx context.Context, ev event.Event) error {
		if ev.Key == "stuck" {
			inStuck <- struct{}{}
			<-ctx.Done() // the consumer dies mid-function
			return ctx.Err()
		}
		return nil
	}
	_, stop1 := run(t, addr, group, col1.handle, source.Options{Concurrency: 4})
	<-inStuck
	testutil.Eventually(t, 10*time.Second, "first and third handled", func() bool {
		return col1.count("first") == 1 && col1.count("third") == 1
	})
	testutil.Eventually(t, 10*time.Second, "commit of first", func() bool { return committed(c, group, 0) == 1 })
	time.Sleep(500 * time.Millisecond) // several commit intervals
	if o := committed(c, group, 0); o != 1 {
		t.Fatalf("committed offset = %d while record 1 is in the handler, want 1", o)
	}
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	if o := committed(c, group, 0); o != 1 {
		t.Fatalf("committed offset after close = %d, want 1", o)
	}

	col2 := newCollector()
	_, stop2 := run(t, addr, group, col2.handle, source.Options{})
	testutil.Eventually(t, 20*time.Second, "stuck and third redelivered", func() bool {
		return col2.count("stuck") == 1 && col2.count("third") == 1
	})
	testutil.Eventually(t, 10*time.Second, "all committed", func() bool { return committed(c, group, 0) == 3 })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if col2.count("first") != 0 {
		t.Errorf("committed record redelivered")
	}
}

func TestSource_HandlerErrorRedelivered(t *testing.T) {
	c, addr := newCluster(t, 1)
	produce(t, addr,
		minioPayload("s3:ObjectCreated:Put", "b", "flaky", 1),
		minioPayload("s3:ObjectCreated:Put", "b", "ok", 1),
	)
	col := newCollector()
	var mu sync.Mutex
	attempts := 0
	col.fail = func(_ context.Context, ev event.Event) error {
		if ev.Key != "flaky" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts <= 3 {
			return fmt.Errorf("index unavailable (attempt %d)", attempts)
		}
		return nil
	}
	_, stop := run(t, addr, "g-retry", col.handle, source.Options{})
	testutil.Eventually(t, 20*time.Second, "flaky delivered", func() bool { return col.count("flaky") == 1 })
	testutil.Eventually(t, 10*time.Second, "both committed", func() bool { return committed(c, "g-retry", 0) == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts != 4 || col.count("ok") != 1 {
		t.Errorf("attempts = %d (want 4), ok delivered %d times (want 1)", attempts, col.count("ok"))
	}
}

func TestSource_GroupSplitsPartitions(t *testing.T) {
	c, addr := newCluster(t, 4)
	const group = "g-split"
	col1, col2 := newCollector(), newCollector()
	run(t, addr, group, col1.handle, source.Options{})
	run(t, addr, group, col2.handle, source.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := c.WaitGroupStable(ctx, group, 2); err != nil {
		t.Fatalf("group not stable with 2 members: %v", err)
	}
	const n = 200
	var payloads [][]byte
	for i := range n {
		payloads = append(payloads, minioPayload("s3:ObjectCreated:Put", "b", fmt.Sprintf("obj-%03d", i), int64(i)))
	}
	produce(t, addr, payloads...)
	testutil.Eventually(t, 30*time.Second, "all events", func() bool { return col1.distinct()+col2.distinct() >= n })
	time.Sleep(300 * time.Millisecond) // let any duplicate show up
	if col1.total() == 0 || col2.total() == 0 {
		t.Errorf("one member did all the work: %d and %d events", col1.total(), col2.total())
	}
	for i := range n {
		k := fmt.Sprintf("obj-%03d", i)
		if got := col1.count(k) + col2.count(k); got != 1 {
			t.Errorf("%s delivered %d times, want exactly 1", k, got)
		}
	}
}

// After one member leaves, the other takes over its partitions from the
// committed offsets: nothing lost, nothing handled twice.
func TestSource_RebalanceOnLeave(t *testing.T) {
	c, addr := newCluster(t, 4)
	const group = "g-leave"
	col1, col2 := newCollector(), newCollector()
	_, stop1 := run(t, addr, group, col1.handle, source.Options{})
	run(t, addr, group, col2.handle, source.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := c.WaitGroupStable(ctx, group, 2); err != nil {
		t.Fatal(err)
	}
	batch := func(from, to int) (ps [][]byte) {
		for i := from; i < to; i++ {
			ps = append(ps, minioPayload("s3:ObjectCreated:Put", "b", fmt.Sprintf("obj-%03d", i), 1))
		}
		return ps
	}
	produce(t, addr, batch(0, 100)...)
	testutil.Eventually(t, 30*time.Second, "first batch", func() bool { return col1.distinct()+col2.distinct() == 100 })
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	produce(t, addr, batch(100, 200)...)
	testutil.Eventually(t, 30*time.Second, "second batch", func() bool { return col1.distinct()+col2.distinct() == 200 })
	time.Sleep(300 * time.Millisecond)
	for i := range 200 {
		k := fmt.Sprintf("obj-%03d", i)
		if got := col1.count(k) + col2.count(k); got != 1 {
			t.Errorf("%s delivered %d times, want exactly 1", k, got)
		}
	}
}

// The broker goes away mid-stream and comes back on the same port with
// its data (kfake persists to a data dir): the consumer reconnects and
// every event is delivered. Redelivery of records whose commit was lost
// with the restart is allowed (at-least-once); loss is not.
func TestSource_BrokerRestart(t *testing.T) {
	dir := t.TempDir()
	port := func() int {
		_, p, _ := strings.Cut(testutil.FreeAddr(t), ":")
		n, _ := strconv.Atoi(p)
		return n
	}()
	opts := []kfake.Opt{kfake.Ports(port), kfake.DataDir(dir)}
	c1, addr := newCluster(t, 2, opts...)
	col := newCollector()
	run(t, addr, "g-restart", col.handle, source.Options{})
	batch := func(from, to int) (ps [][]byte) {
		for i := from; i < to; i++ {
			ps = append(ps, minioPayload("s3:ObjectCreated:Put", "b", fmt.Sprintf("obj-%03d", i), 1))
		}
		return ps
	}
	produce(t, addr, batch(0, 50)...)
	testutil.Eventually(t, 20*time.Second, "first batch", func() bool { return col.distinct() == 50 })
	c1.Close()
	time.Sleep(time.Second) // the consumer sees the broker gone
	c2, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("restart broker: %v", err)
	}
	t.Cleanup(c2.Close)
	produce(t, addr, batch(50, 100)...)
	testutil.Eventually(t, 60*time.Second, "second batch after restart", func() bool { return col.distinct() == 100 })
	for i := range 100 {
		if k := fmt.Sprintf("obj-%03d", i); col.count(k) < 1 {
			t.Errorf("%s lost", k)
		}
	}
}

func TestSource_CloseTwice(t *testing.T) {
	c, addr := newCluster(t, 1)
	s, stop := run(t, addr, "g-close", newCollector().handle, source.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := c.WaitGroupStable(ctx, "g-close", 1); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Run(t.Context(), newCollector().handle); err == nil {
		t.Fatal("Run after Close succeeded")
	}
	// Closing a never-run source is fine too.
	src, err := source.Open(t.Context(), "kafka://"+addr+"/"+topic, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}
