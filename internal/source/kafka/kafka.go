// Package kafka is the kafka: events source: MinIO (or any S3 store) publishes
// bucket notifications to a Kafka topic, and dedupfn replicas read it as one
// franz-go consumer group, so they share the partitions.
//
// URL: kafka://host:9092[,host2:9092]/topic?group=dedupfn
//
// Delivery is at-least-once and commits are in order: a record's offset is
// marked for commit only once the handler returned nil for every event in it
// and every earlier record of its partition is done. Records within a
// partition are handled concurrently (up to Options.Concurrency in total),
// so a slow function does not hold up the records behind it, but a failing
// record holds back the partition's commit and is retried with capped
// backoff until it succeeds: it is never skipped. Records that are not
// valid notifications can never succeed: they are logged, counted, reported
// to Options.OnMalformed and committed past. Records with no object-created
// or object-removed event in them (ACL changes, s3:TestEvent) are committed
// past silently.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dedupfn/dedupfn/internal/backoff"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/source"
)

// Defaults.
const (
	// DefaultGroup is the consumer group when the URL names none.
	DefaultGroup = "dedupfn"
	// DefaultCommitInterval is how often marked (fully handled) offsets are
	// committed; they are also committed when partitions are revoked and
	// when Run stops.
	DefaultCommitInterval = time.Second
	// DefaultRetryMin and DefaultRetryMax bound the backoff between
	// attempts of a record whose handler failed.
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = 30 * time.Second
	// commitTimeout bounds the final synchronous commits.
	commitTimeout = 10 * time.Second
	// logPayloadBytes is how much of a malformed payload is logged.
	logPayloadBytes = 200
	// errorLogEvery rate-limits repeated fetch error logs.
	errorLogEvery = 5 * time.Second
)

func init() { source.Register("kafka", Open) }

var _ source.Source = (*Source)(nil)

// Source consumes one topic as a member of a consumer group.
type Source struct {
	brokers []string
	topic   string
	group   string
	session time.Duration // consumer group session timeout; 0 = franz-go's default
	opts    source.Options
	log     *slog.Logger

	// CommitInterval, RetryMin and RetryMax default to the package
	// defaults; tests shorten them. Set before Run.
	CommitInterval     time.Duration
	RetryMin, RetryMax time.Duration

	malformed atomic.Uint64
	delivered atomic.Uint64

	life source.Lifecycle

	// Per-Run state.
	cl       *kgo.Client
	sem      chan struct{}
	pmu      sync.Mutex
	parts    map[topicPartition]*partition
	inflight sync.WaitGroup
}

type topicPartition struct {
	topic     string
	partition int32
}

// partition tracks the records of one assigned partition that were handed
// out and not yet marked, in offset order.
type partition struct {
	ctx    context.Context // cancelled when the partition is revoked or lost
	cancel context.CancelFunc
	wg     sync.WaitGroup // records in flight

	mu      sync.Mutex
	pending []*pendingRecord
}

type pendingRecord struct {
	r    *kgo.Record
	done bool
}

// Open parses a kafka: URL; it connects to nothing until Run.
func Open(_ context.Context, u *url.URL, opts source.Options) (source.Source, error) {
	s, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	opts = opts.WithDefaults()
	s.opts = opts
	s.log = opts.Logger.With("component", "source.kafka", "topic", s.topic, "group", s.group)
	return s, nil
}

func parseURL(u *url.URL) (*Source, error) {
	const want = "expected kafka://host:9092[,host2:9092]/topic?group=NAME[&session_timeout=10s]"
	if u.Scheme != "kafka" {
		return nil, fmt.Errorf("kafka: scheme %q, %s", u.Scheme, want)
	}
	if u.User != nil {
		return nil, fmt.Errorf("kafka: credentials in the URL are not supported, %s", want)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("kafka: missing broker address, %s", want)
	}
	var brokers []string
	for _, b := range strings.Split(u.Host, ",") {
		if b == "" || !strings.Contains(b, ":") {
			return nil, fmt.Errorf("kafka: broker %q must be host:port, %s", b, want)
		}
		brokers = append(brokers, b)
	}
	topic := strings.TrimPrefix(u.Path, "/")
	if topic == "" {
		return nil, fmt.Errorf("kafka: missing topic, %s", want)
	}
	if strings.Contains(topic, "/") {
		return nil, fmt.Errorf("kafka: topic %q must not contain '/', %s", topic, want)
	}
	q := u.Query()
	group := DefaultGroup
	var session time.Duration
	for k, v := range q {
		switch k {
		case "group":
			if v[0] == "" {
				return nil, fmt.Errorf("kafka: empty group, %s", want)
			}
			group = v[0]
		case "session_timeout":
			d, err := time.ParseDuration(v[0])
			if err != nil || d < time.Second {
				return nil, fmt.Errorf("kafka: session_timeout must be a duration >= 1s, got %q", v[0])
			}
			session = d
		default:
			return nil, fmt.Errorf("kafka: unknown parameter %q, %s", k, want)
		}
	}
	return &Source{
		brokers:        brokers,
		topic:          topic,
		group:          group,
		session:        session,
		CommitInterval: DefaultCommitInterval,
		RetryMin:       DefaultRetryMin,
		RetryMax:       DefaultRetryMax,
		life:           source.Lifecycle{Once: true},
	}, nil
}

// Brokers, Topic and Group report what the URL named.
func (s *Source) Brokers() []string { return append([]string(nil), s.brokers...) }

// Topic is the topic consumed.
func (s *Source) Topic() string { return s.topic }

// Group is the consumer group joined.
func (s *Source) Group() string { return s.group }

// Malformed is how many records could not be parsed and were committed past.
func (s *Source) Malformed() uint64 { return s.malformed.Load() }

// Delivered is how many events the handler accepted (returned nil for).
func (s *Source) Delivered() uint64 { return s.delivered.Load() }

// Run joins the group and delivers events until ctx is cancelled or Close
// is called; it then waits for in-flight handlers, commits what they
// finished, and leaves the group. It may be called once.
func (s *Source) Run(ctx context.Context, h source.Handler) error {
	ctx, end, err := s.life.Start(ctx)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer end()

	s.sem = make(chan struct{}, s.opts.Concurrency)
	s.parts = map[topicPartition]*partition{}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(s.brokers...),
		kgo.ConsumerGroup(s.group),
		kgo.ConsumeTopics(s.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(s.CommitInterval),
		kgo.AutoCommitCallback(s.onCommit),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
		kgo.WithLogger(kgoLogger{s.log}),
	}
	if s.session > 0 {
		// A crashed member's partitions move after this long; the
		// broker's group.min.session.timeout.ms bounds it from below.
		kopts = append(kopts, kgo.SessionTimeout(s.session), kgo.HeartbeatInterval(s.session/3))
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return fmt.Errorf("kafka: create client: %w", err)
	}
	s.cl = cl
	s.log.Info("consuming", "brokers", strings.Join(s.brokers, ","))

	var lastErrLog time.Time
poll:
	for {
		fetches := cl.PollRecords(ctx, s.opts.Concurrency)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if time.Since(lastErrLog) > errorLogEvery {
				lastErrLog = time.Now()
				s.log.Warn("fetch failed, retrying", "partition", p, "err", err)
			}
		})
		for _, r := range fetches.Records() {
			if !s.dispatch(ctx, h, r) {
				break poll
			}
		}
		// Every polled record is now tracked by its partition, so a
		// revoke can wait for it: let a pending rebalance proceed.
		cl.AllowRebalance()
	}

	s.inflight.Wait()
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		s.log.Warn("final commit failed; records since the last commit will be redelivered", "err", err)
	}
	ccancel()
	cl.CloseAllowingRebalance()
	s.log.Info("stopped")
	return nil
}

// dispatch starts handling r once a concurrency slot is free. It reports
// false if ctx ended first.
func (s *Source) dispatch(ctx context.Context, h source.Handler, r *kgo.Record) bool {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	tp := topicPartition{r.Topic, r.Partition}
	s.pmu.Lock()
	p := s.parts[tp]
	if p == nil {
		pctx, cancel := context.WithCancel(ctx)
		p = &partition{ctx: pctx, cancel: cancel}
		s.parts[tp] = p
	}
	s.pmu.Unlock()

	pr := &pendingRecord{r: r}
	p.mu.Lock()
	p.pending = append(p.pending, pr)
	p.mu.Unlock()
	p.wg.Add(1)
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		defer p.wg.Done()
		defer func() { <-s.sem }()
		if s.handle(ctx, p, r, h) {
			s.markDone(p, pr)
		}
	}()
	return true
}

// handle delivers the events of r until all succeed (true), or until the
// run stops or the partition is taken away (false: not done, the next
// owner gets the record again).
func (s *Source) handle(ctx context.Context, p *partition, r *kgo.Record, h source.Handler) bool {
	evs, err := event.Parse(r.Value)
	if err != nil {
		n := s.malformed.Add(1)
		raw := r.Value
		if len(raw) > logPayloadBytes {
			raw = raw[:logPayloadBytes]
		}
		s.log.Error("malformed record skipped", "partition", r.Partition, "offset", r.Offset,
			"err", err, "payload", string(raw), "malformed_total", n)
		if s.opts.OnMalformed != nil {
			s.opts.OnMalformed(ctx, r.Value, fmt.Errorf("kafka: %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err))
		}
		return true
	}
	done := make([]bool, len(evs))
	for attempt := 1; ; attempt++ {
		var failed error
		for i, ev := range evs {
			if done[i] {
				continue
			}
			if ctx.Err() != nil || p.ctx.Err() != nil {
				return false
			}
			ev.Source = "kafka"
			if err := h(ctx, ev); err != nil {
				failed = err
				break
			}
			done[i] = true
			s.delivered.Add(1)
		}
		if failed == nil {
			return true
		}
		delay := backoff.Delay(attempt, s.RetryMin, s.RetryMax)
		s.log.Warn("handler failed, retrying record", "partition", r.Partition, "offset", r.Offset,
			"attempt", attempt, "retry_in", delay, "err", failed)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		case <-p.ctx.Done():
			t.Stop()
			return false
		}
	}
}

// markDone records pr as done and marks for commit the last record of the
// done prefix of the partition.
func (s *Source) markDone(p *partition, pr *pendingRecord) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr.done = true
	var last *kgo.Record
	for len(p.pending) > 0 && p.pending[0].done {
		last = p.pending[0].r
		p.pending[0] = nil
		p.pending = p.pending[1:]
	}
	if last != nil {
		s.cl.MarkCommitRecords(last)
	}
}

// release stops retries on the given partitions, waits for their in-flight
// handlers, and forgets them. With BlockRebalanceOnPoll the poll loop is
// not dispatching while this runs.
func (s *Source) release(assigned map[string][]int32) {
	var ps []*partition
	s.pmu.Lock()
	for topic, parts := range assigned {
		for _, n := range parts {
			tp := topicPartition{topic, n}
			if p := s.parts[tp]; p != nil {
				ps = append(ps, p)
				delete(s.parts, tp)
			}
		}
	}
	s.pmu.Unlock()
	for _, p := range ps {
		p.cancel()
	}
	for _, p := range ps {
		p.wg.Wait()
	}
}

// onRevoked finishes the work on partitions moving to another member and
// commits it, so the new owner starts right after it.
func (s *Source) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	s.release(revoked)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		s.log.Warn("commit on revoke failed; the new owner will redeliver", "err", err)
	}
	if len(revoked) > 0 {
		s.log.Info("partitions revoked", "partitions", revoked)
	}
}

// onAssigned logs the partitions this member was given, so an operator
// (and the chaos test) can see a rebalance complete.
func (s *Source) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	if len(assigned) > 0 {
		s.log.Info("partitions assigned", "partitions", assigned)
	}
}

// onLost drops partitions the group took away without a clean revoke
// (session expired, broker restarted): a commit cannot succeed any more.
func (s *Source) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.release(lost)
	if len(lost) > 0 {
		s.log.Warn("partitions lost; uncommitted records will be redelivered", "partitions", lost)
	}
}

func (s *Source) onCommit(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("offset commit failed, will retry", "err", err)
	}
}

// Close stops Run (if running) and waits for it. Safe to call twice.
func (s *Source) Close() error {
	s.life.Close()
	return nil
}

// kgoLogger sends franz-go's logs to slog; its chatty info level becomes debug.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var l slog.Level
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	default:
		l = slog.LevelDebug
	}
	k.l.Log(context.Background(), l, "kgo: "+msg, keyvals...)
}
