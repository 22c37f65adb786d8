package peers

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/testutil"
)

// KafkaPartitions is how many partitions StartKafka gives each topic.
const KafkaPartitions = 4

// Kafka is a running Kafka-protocol broker (kfake in its own process) on
// a fixed 127.0.0.1 port. Topics, records and committed consumer-group
// offsets are persisted in a data directory, so Restart loses nothing.
type Kafka struct {
	// Addr is the broker's host:port, for seed brokers and
	// MINIO_NOTIFY_KAFKA_BROKERS.
	Addr string

	bin, dataDir, logDir string
	topics               []string
	mu                   sync.Mutex
	runs                 int
	p                    *proc
}

// StartKafka builds test/peers/kafkabroker and starts it with topics
// created (KafkaPartitions each). It is stopped when the test ends.
func StartKafka(tb testing.TB, topics ...string) *Kafka {
	tb.Helper()
	dir := tb.TempDir()
	k := &Kafka{
		Addr:    testutil.FreeAddr(tb),
		bin:     goBuild(tb, testutil.RepoRoot(tb), "test/peers/kafkabroker"),
		dataDir: filepath.Join(dir, "data"),
		logDir:  dir,
		topics:  topics,
	}
	k.Start(tb)
	tb.Cleanup(func() { k.Stop() })
	return k
}

// URL is the kafka: events URL for topic and group.
func (k *Kafka) URL(topic, group string) string {
	return fmt.Sprintf("kafka://%s/%s?group=%s", k.Addr, topic, group)
}

// Start starts the broker if it is not running and waits until it is ready.
func (k *Kafka) Start(tb testing.TB) {
	tb.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.p != nil && k.p.running() {
		return
	}
	_, port, _ := strings.Cut(k.Addr, ":")
	if _, err := strconv.Atoi(port); err != nil {
		tb.Fatalf("kafkabroker: bad address %q", k.Addr)
	}
	args := []string{"-port", port, "-partitions", strconv.Itoa(KafkaPartitions), "-data-dir", k.dataDir}
	if len(k.topics) > 0 {
		args = append(args, "-topics", strings.Join(k.topics, ","))
	}
	// The previous run may hold the port for a moment after exiting.
	deadline := time.Now().Add(10 * time.Second)
	for {
		k.runs++
		logPath := filepath.Join(k.logDir, fmt.Sprintf("kafkabroker-%d.log", k.runs))
		p := start(tb, "kafkabroker", exec.Command(k.bin, args...), logPath)
		if waitReady(p, 15*time.Second) {
			k.p = p
			break
		}
		p.stop(true)
		if time.Now().After(deadline) {
			tb.Fatalf("kafkabroker did not start on %s:\n%s", k.Addr, p.logTail(4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	testutil.WaitTCP(tb, k.Addr, 10*time.Second)
}

// waitReady waits for the broker to print "ready"; false if it exits or
// timeout passes first (e.g. the port is still held by the previous run).
func waitReady(p *proc, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.logTail(1<<16), "ready ") {
			return true
		}
		if !p.running() {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Stop stops the broker cleanly (it persists its state). Safe to call twice.
func (k *Kafka) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.p.stop(false)
}

// Restart stops the broker and starts it again on the same port with the
// same data: clients see connections drop and come back.
func (k *Kafka) Restart(tb testing.TB) {
	tb.Helper()
	k.Stop()
	k.Start(tb)
}

// Log returns the broker's output so far.
func (k *Kafka) Log() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.p == nil {
		return ""
	}
	return k.p.logTail(1 << 20)
}
