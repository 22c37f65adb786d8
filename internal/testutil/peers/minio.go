package peers

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/dedupfn/dedupfn/internal/testutil"
)

// MinIO root credentials used by StartMinIO.
const (
	MinIOAccessKey = "dedupfn-admin"
	MinIOSecretKey = "dedupfn-secret-key"
)

// MinIOOptions configures StartMinIO.
type MinIOOptions struct {
	// KafkaBrokers, when set, enables a Kafka notification target
	// publishing to KafkaTopic (comma-separated host:port list).
	KafkaBrokers string
	KafkaTopic   string
	// WebhookEndpoint, when set, enables a webhook notification target
	// posting to this URL with "Authorization: Bearer <WebhookToken>".
	WebhookEndpoint string
	WebhookToken    string
	// NoQueueDir makes MinIO drop events it cannot deliver (as it does by
	// default) instead of keeping them on disk: for reconciler tests.
	NoQueueDir bool
	// ID names the notification targets; the bucket-notification ARNs are
	// arn:minio:sqs::<ID>:kafka and arn:minio:sqs::<ID>:webhook. Default
	// "dedupfn".
	ID string
}

// MinIO is a running MinIO server with its data in a temp directory.
type MinIO struct {
	// Endpoint is host:port (plain HTTP).
	Endpoint             string
	AccessKey, SecretKey string
	// ARN is the Kafka notification target's ARN, when Kafka is set.
	ARN string
	// WebhookARN is the webhook target's ARN, when a webhook is set.
	WebhookARN string

	bin, dataDir, logDir string
	env                  []string
	mu                   sync.Mutex
	runs                 int
	p                    *proc
}

// StartMinIO starts the MinIO binary installed by scripts/peers/minio.sh
// (or $DEDUPFN_MINIO) on a free port and waits until it is live. Skipped
// locally when the binary is missing, fatal under CI. It is stopped when
// the test ends.
func StartMinIO(tb testing.TB, opts MinIOOptions) *MinIO {
	tb.Helper()
	bin := testutil.Tool(tb, "DEDUPFN_MINIO", filepath.Join("bin", "minio"))
	dir := tb.TempDir()
	m := &MinIO{
		Endpoint:  testutil.FreeAddr(tb),
		AccessKey: MinIOAccessKey,
		SecretKey: MinIOSecretKey,
		bin:       bin,
		dataDir:   filepath.Join(dir, "data"),
		logDir:    dir,
	}
	m.env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"HOME="+dir,
	)
	id := opts.ID
	if id == "" {
		id = "dedupfn"
	}
	if opts.WebhookEndpoint != "" {
		m.WebhookARN = fmt.Sprintf("arn:minio:sqs::%s:webhook", id)
		m.env = append(m.env,
			"MINIO_NOTIFY_WEBHOOK_ENABLE_"+id+"=on",
			"MINIO_NOTIFY_WEBHOOK_ENDPOINT_"+id+"="+opts.WebhookEndpoint,
			"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_"+id+"="+opts.WebhookToken,
			"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_"+id+"="+filepath.Join(dir, "webhook-queue-"+id),
		)
	}
	if opts.KafkaBrokers != "" {
		if opts.KafkaTopic == "" {
			tb.Fatal("peers: MinIOOptions.KafkaTopic is required with KafkaBrokers")
		}
		m.ARN = fmt.Sprintf("arn:minio:sqs::%s:kafka", id)
		m.env = append(m.env,
			"MINIO_NOTIFY_KAFKA_ENABLE_"+id+"=on",
			"MINIO_NOTIFY_KAFKA_BROKERS_"+id+"="+opts.KafkaBrokers,
			"MINIO_NOTIFY_KAFKA_TOPIC_"+id+"="+opts.KafkaTopic,
		)
		if !opts.NoQueueDir {
			// Queue events on disk while the broker is unreachable
			// instead of dropping them.
			m.env = append(m.env, "MINIO_NOTIFY_KAFKA_QUEUE_DIR_"+id+"="+filepath.Join(dir, "queue-"+id))
		}
	}
	m.Start(tb)
	tb.Cleanup(m.Stop)
	return m
}

// Start starts the server if it is not running and waits until
// /minio/health/live answers 200.
func (m *MinIO) Start(tb testing.TB) {
	tb.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.p != nil && m.p.running() {
		return
	}
	m.runs++
	cmd := exec.Command(m.bin, "server", m.dataDir,
		"--address", m.Endpoint,
		"--console-address", testutil.FreeAddr(tb),
		"--certs-dir", filepath.Join(m.logDir, "certs"),
		"--quiet")
	cmd.Env = m.env
	m.p = start(tb, "minio", cmd, filepath.Join(m.logDir, fmt.Sprintf("minio-%d.log", m.runs)))
	url := "http://" + m.Endpoint + "/minio/health/live"
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if !m.p.running() {
			tb.Fatalf("minio exited during start:\n%s", m.p.logTail(4000))
		}
		if time.Now().After(deadline) {
			tb.Fatalf("minio not live at %s after 60s (last error %v):\n%s", url, err, m.p.logTail(4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the server. Safe to call twice.
func (m *MinIO) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.p.stop(false)
}

// Restart stops the server and starts it again with the same data.
func (m *MinIO) Restart(tb testing.TB) {
	tb.Helper()
	m.Stop()
	m.Start(tb)
}

// URL is the s3: objects URL for this server.
func (m *MinIO) URL() string {
	return fmt.Sprintf("s3://%s:%s@%s?tls=false", m.AccessKey, m.SecretKey, m.Endpoint)
}

// Client returns a minio-go client for the server.
func (m *MinIO) Client(tb testing.TB) *minio.Client {
	tb.Helper()
	c, err := minio.New(m.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""),
		Secure: false,
	})
	if err != nil {
		tb.Fatalf("minio client: %v", err)
	}
	return c
}

// Log returns the server's output of the current run so far.
func (m *MinIO) Log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.p == nil {
		return ""
	}
	return m.p.logTail(1 << 20)
}

// Notify sends bucket's events of the given types to the notification
// target arn (m.ARN or m.WebhookARN). MinIO registers its targets in the
// background once it answers requests, so a target not registered yet
// ("destination ARN does not exist") is waited for, up to 30 s.
func (m *MinIO) Notify(tb testing.TB, bucket, arn string, events ...notification.EventType) {
	tb.Helper()
	a, err := notification.NewArnFromString(arn)
	if err != nil {
		tb.Fatal(err)
	}
	q := notification.NewConfig(a)
	q.AddEvents(events...)
	var cfg notification.Configuration
	cfg.AddQueue(q)
	mc := m.Client(tb)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := mc.SetBucketNotification(tb.Context(), bucket, cfg)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("set bucket notification of %s to %s: %v\n%s", bucket, arn, err, m.Log())
		}
	}
}
