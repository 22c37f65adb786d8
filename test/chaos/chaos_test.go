package chaos

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// The chaos tests prove the guarantee under faults by counting executions:
// MinIO → Kafka → 3 replicas (built with fault injection) → pouchdb-server;
// a process function slower than its lease that appends "start" and "end"
// lines to a side file; output uploads slower than the lease; a tenth of
// lease renewals failing; 300 uploads of 100 distinct contents.

const (
	chaosDistinct = 100
	chaosCopies   = 3
	chaosFaults   = "renew-fail=0.1,put-delay=2500ms"
)

// TestChaos_NoKills: with renewals failing and slow outputs but no
// crashes, every content executes exactly once.
func TestChaos_NoKills(t *testing.T) {
	execs := runChaos(t, false)
	total := 0
	for content, es := range execs.byContent {
		total += len(es)
		if len(es) != 1 {
			t.Errorf("content %s executed %d times, want 1", content, len(es))
		}
	}
	if total != chaosDistinct || len(execs.byContent) != chaosDistinct {
		t.Fatalf("%d executions of %d contents, want exactly %d", total, len(execs.byContent), chaosDistinct)
	}
}

// TestChaos_Kills: a random replica is SIGKILLed every few seconds (and
// restarted). A content runs again only after an execution of it that
// never ended, or that a killed replica ran (killed between the end of
// the function and the commit of its result); executions never overlap.
func TestChaos_Kills(t *testing.T) {
	execs := runChaos(t, true)
	if len(execs.killed) == 0 {
		t.Fatal("no replica was killed: this run proves nothing about crashes")
	}
	reruns := checkReruns(t, "", execs.byContent, execs.killed)
	t.Logf("%d replicas killed, %d contents, %d re-executions after a kill", len(execs.killed), len(execs.byContent), reruns)
}

// checkReruns checks the executions of each content (of what, a stage's
// name or "" for the one function): one runs again only after an
// execution of it that never ended, or that a killed replica ran, and
// never while the one before runs. It returns how many ran again.
func checkReruns(t *testing.T, what string, byContent map[string][]*harness.Execution, killed map[int]bool) int {
	t.Helper()
	if what != "" {
		what += ", "
	}
	reruns := 0
	for content, es := range byContent {
		for i := 1; i < len(es); i++ {
			prev := es[i-1]
			reruns++
			switch {
			case prev.End >= 0 && prev.End > es[i].Start:
				t.Errorf("%scontent %s: execution %d started while execution %d (pid %d) was still running", what, content, i, i-1, prev.Pid)
			case prev.End >= 0 && !killed[prev.Ppid] && !killed[prev.Gppid]:
				t.Errorf("%scontent %s: ran again after execution %d (pid %d, parents %d %d) ended on a replica that was not killed (killed: %v)",
					what, content, i-1, prev.Pid, prev.Ppid, prev.Gppid, killed)
			}
		}
	}
	return reruns
}

type chaosResult struct {
	byContent map[string][]*harness.Execution
	killed    map[int]bool // pids of SIGKILLed replicas
}

func runChaos(t *testing.T, kills bool) chaosResult {
	c := harness.StartPeers(t, peers.MinIOOptions{})
	events := c.Kafka.URL(harness.Topic, "dedupfn") + "&session_timeout=6s"
	for i := range 3 {
		s := faultyReplica(t)
		s.Start(c.ReplicaArgs(i, events)...)
		c.Replicas = append(c.Replicas, s)
	}
	side := filepath.Join(t.TempDir(), "executions.log")
	c.Replicas[0].CLI("fn", "deploy", "chaos", "--exec", harness.ChaosAction, "--bucket", "photos", "--output-bucket", "results",
		"--param", "log="+side, "--param", "ms=2500", "--lease", "2s",
		"--memory", "1536") // RLIMIT_AS: a Go runtime reserves ~1 GiB of address space at start
	for _, r := range c.Replicas[1:] {
		testutil.Eventually(t, 5*time.Second, "function visible on every replica", func() bool {
			return strings.Contains(r.CLI("fn", "list"), "chaos")
		})
	}

	var keys []string
	for i := range chaosDistinct {
		for copy := range chaosCopies {
			keys = append(keys, fmt.Sprintf("c%d/%03d", copy, i))
		}
	}
	var k *killer
	if kills {
		k = startKiller(t, c, events)
	}
	c.Uploads(keys, harness.ContentOf, nil)
	testutil.EventuallyEvery(t, 6*time.Minute, harness.CLIPoll, fmt.Sprintf("%d activations", len(keys)), func() bool {
		st, ok := k.stats(c.Replicas[0])
		return ok && st.Events >= int64(len(keys))
	})
	killed := k.stop()
	time.Sleep(2 * time.Second) // a straggler would show as an extra activation

	acts := c.Replicas[1].Activations()
	perKey := map[string]int{}
	for _, a := range acts {
		perKey[a.Event.Key]++
		if a.Decision == activation.Error {
			t.Errorf("%s: error %s (%s)", a.Event.Key, a.Error, a.ErrorClass)
		}
	}
	for _, k := range keys {
		if perKey[k] != 1 {
			t.Errorf("%s has %d activations, want exactly 1", k, perKey[k])
		}
	}
	if len(acts) != len(keys) {
		t.Errorf("%d activations for %d uploads", len(acts), len(keys))
	}
	outs := c.Outputs()
	for _, k := range keys {
		if !outs[k] {
			t.Errorf("%s has no output", k)
		}
	}
	return chaosResult{byContent: harness.ReadExecutions(t, side), killed: killed}
}

// faultyReplica is a replica built with fault injection, injecting
// chaosFaults; not started.
func faultyReplica(t *testing.T) *harness.Server {
	s := harness.NewServer(t, t.TempDir())
	s.Bin, s.Env = harness.Faulty, []string{"DEDUPFN_FAULTS=" + chaosFaults}
	return s
}

// killer SIGKILLs a random replica of a cluster every few seconds, six
// times, and starts it again each time.
type killer struct {
	mu     sync.Mutex // guards the replicas while one is restarted
	killed map[int]bool
	done   chan struct{}
	wg     sync.WaitGroup
}

func startKiller(t *testing.T, c *harness.Cluster, events string) *killer {
	k := &killer{killed: map[int]bool{}, done: make(chan struct{})}
	k.wg.Go(func() {
		for n := 0; n < 6; n++ {
			select {
			case <-k.done:
				return
			case <-time.After(3 * time.Second):
			}
			k.mu.Lock()
			victim := c.Replicas[rand.IntN(len(c.Replicas))]
			k.killed[victim.Cmd.Process.Pid] = true
			victim.Kill()
			time.Sleep(500 * time.Millisecond)
			logged := victim.LogLen()
			victim.Start(c.ReplicaArgs(indexOf(c.Replicas, victim), events)...)
			k.mu.Unlock()
			// Kill again only once the group has settled with the new
			// member: kills faster than rebalances test Kafka, not us.
			testutil.Eventually(t, 60*time.Second, "the restarted replica to get partitions", func() bool {
				return strings.Contains(victim.LogSince(logged), "partitions assigned")
			})
		}
	})
	return k
}

// stats is s's stats, never while the killer restarts a replica; a nil
// killer kills nothing.
func (k *killer) stats(s *harness.Server) (activation.Stats, bool) {
	if k != nil {
		k.mu.Lock()
		defer k.mu.Unlock()
	}
	return s.TryStats()
}

// stop stops the killer and returns the pids of the replicas it killed.
func (k *killer) stop() map[int]bool {
	if k == nil {
		return map[int]bool{}
	}
	close(k.done)
	k.wg.Wait()
	return k.killed
}

func indexOf(ss []*harness.Server, s *harness.Server) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}

// TestChaos_SpoolBudget (issue 17): a disk budget far smaller than the
// work in flight. 16 events at once, each a 5 MiB input and a 10 MiB
// output, share a 24 MiB --spool-budget (room for one run's input and
// output and another's input); one more upload, 9 MiB in and 18 MiB out,
// can never fit. Every upload ends within its function's timeout: each
// content that fits delivers its output and executes exactly once
// (counted from the side file; every start has its end), and the one that
// cannot fit is a dead letter of class config naming --spool-budget. On
// f13dda0 the event that could not fit waited forever.
func TestChaos_SpoolBudget(t *testing.T) {
	const (
		distinct, copies = 16, 2
		size, bigSize    = 5 << 20, 9 << 20
		timeout          = 20 * time.Second
	)
	s := harness.StartServer(t, t.TempDir(), "--create-bucket", "photos", "--create-bucket", "results",
		"--spool-budget", fmt.Sprint(24<<20), "--concurrency", "16", "--runs", "2", "--inline-limit", fmt.Sprint(10<<20))
	side := filepath.Join(t.TempDir(), "executions.log")
	s.CLI("fn", "deploy", "spool", "--exec", harness.ChaosAction, "--bucket", "photos", "--output-bucket", "results",
		"--param", "log="+side, "--param", "ms=200", "--param", "repeat=2",
		"--timeout", timeout.String(), "--max-attempts", "1", "--memory", "1536")

	bodies := map[string][]byte{"big/000": bytes.Repeat([]byte("too big for the budget "), bigSize/23)}
	for i := range distinct {
		body := bytes.Repeat([]byte(fmt.Sprintf("content %03d ", i)), size/12)
		for c := range copies {
			bodies[fmt.Sprintf("c%d/%03d", c, i)] = body
		}
	}
	mc := s.MinIO()
	start := time.Now()
	var wg sync.WaitGroup
	for key, body := range bodies {
		wg.Go(func() {
			if _, err := mc.PutObject(t.Context(), "photos", key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s.WaitEvents(int64(len(bodies)), 3*time.Minute)
	t.Logf("%d uploads ended %s after the first", len(bodies), time.Since(start))

	acts := s.Activations()
	if len(acts) != len(bodies) {
		t.Errorf("%d activations for %d uploads", len(acts), len(bodies))
	}
	for _, a := range acts {
		if d := time.Duration(a.Timings.InvokeMS * float64(time.Millisecond)); d > timeout {
			t.Errorf("%s: the run took %s, past its timeout of %s", a.Event.Key, d, timeout)
		}
		if a.Event.Key == "big/000" {
			if a.Decision != activation.Error || !a.DeadLetter || a.ErrorClass != "config" || !strings.Contains(a.Error, "--spool-budget") {
				t.Errorf("%s: %s (dead letter %v, class %q) %q; want a config dead letter naming --spool-budget", a.Event.Key, a.Decision, a.DeadLetter, a.ErrorClass, a.Error)
			}
			continue
		}
		if a.Decision == activation.Error || a.Output == nil || a.Output.Size != 2*int64(len(bodies[a.Event.Key])) {
			t.Errorf("%s: %s with output %+v, error %q (%s); want its 10 MiB output", a.Event.Key, a.Decision, a.Output, a.Error, a.ErrorClass)
		}
	}
	execs := harness.ReadExecutions(t, side)
	for content, es := range execs {
		if len(es) != 1 {
			t.Errorf("content %s executed %d times, want 1", content, len(es))
		}
		for i, e := range es {
			if e.End < 0 {
				t.Errorf("content %s: execution %d (pid %d) never ended", content, i, e.Pid)
			}
		}
	}
	if len(execs) != distinct+1 {
		t.Errorf("%d contents executed, want %d", len(execs), distinct+1)
	}
}
