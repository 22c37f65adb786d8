package chaos

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// A two-stage chain under the chaos tests' faults (chaos_test.go):
// photos → stage1 → results → stage2 → labels on MinIO → Kafka → 3
// replicas built with fault injection, sharing CouchDB; both stages
// the chaos action, slower than their lease, each appending its executions to
// its own side file; MinIO publishes the events of results too, so every
// output reaches stage 2 both in-process and as MinIO's event.
const (
	chainChaosDistinct = 24
	chainChaosCopies   = 3
)

// TestChaos_ChainKills: a random replica is SIGKILLed every few seconds
// (and restarted) while 72 uploads of 24 contents go through both
// stages. Every upload ends with its final-stage output and one
// activation per stage; in each stage a content runs again only after an
// execution of it that never ended or that a killed replica ran, and
// executions of a content never overlap.
func TestChaos_ChainKills(t *testing.T) {
	c := harness.StartPeers(t, peers.MinIOOptions{})
	if err := c.MC.MakeBucket(t.Context(), "labels", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	c.MinIO.Notify(t, "results", c.MinIO.ARN, notification.ObjectCreatedAll, notification.ObjectRemovedAll)
	events := c.Kafka.URL(harness.Topic, "dedupfn") + "&session_timeout=6s"
	for i := range 3 {
		s := faultyReplica(t)
		s.Start(c.ReplicaArgs(i, events)...)
		c.Replicas = append(c.Replicas, s)
	}
	dir := t.TempDir()
	sides := map[string]string{"stage1": filepath.Join(dir, "stage1.log"), "stage2": filepath.Join(dir, "stage2.log")}
	for name, in := range map[string]string{"stage1": "photos", "stage2": "results"} {
		out := map[string]string{"stage1": "results", "stage2": "labels"}[name]
		harness.ChainFn(c.Replicas[0], name, in, out, sides[name], "", "--param", "ms=2500", "--lease", "2s")
	}
	for _, r := range c.Replicas[1:] {
		testutil.Eventually(t, 5*time.Second, "both stages visible on every replica", func() bool {
			l := r.CLI("fn", "list")
			return strings.Contains(l, "stage1") && strings.Contains(l, "stage2")
		})
	}

	var keys []string
	for i := range chainChaosDistinct {
		for copy := range chainChaosCopies {
			keys = append(keys, fmt.Sprintf("c%d/%03d", copy, i))
		}
	}
	k := startKiller(t, c, events)
	c.Uploads(keys, harness.ContentOf, nil)
	want := 2 * len(keys)
	testutil.EventuallyEvery(t, 8*time.Minute, harness.CLIPoll, fmt.Sprintf("%d activations", want), func() bool {
		st, ok := k.stats(c.Replicas[0])
		return ok && st.Events >= int64(want)
	})
	killed := k.stop()
	time.Sleep(3 * time.Second) // a straggler would show as an extra activation
	if len(killed) == 0 {
		t.Fatal("no replica was killed: this run proves nothing about crashes")
	}

	acts := c.Replicas[1].Activations()
	perStage := map[string]int{}
	for _, a := range acts {
		perStage[a.Function+" "+a.Event.Bucket+"/"+a.Event.Key]++
		if a.Decision == activation.Error {
			t.Errorf("%s %s: error %s (%s)", a.Function, a.Event.Key, a.Error, a.ErrorClass)
		}
	}
	for _, k := range keys {
		for _, sk := range []string{"stage1 photos/" + k, "stage2 results/" + k} {
			if perStage[sk] != 1 {
				t.Errorf("%s has %d activations, want exactly 1", sk, perStage[sk])
			}
		}
	}
	if len(acts) != want {
		t.Errorf("%d activations for %d uploads through 2 stages", len(acts), len(keys))
	}
	labels := harness.ObjectsIn(t, c.MC, "labels")
	for _, k := range keys {
		if w := string(harness.StageOut(harness.StageOut(harness.ContentOf(k)))); labels[k] != w {
			t.Errorf("labels/%s = %.20q…, want the final stage's output %.20q…", k, labels[k], w)
		}
	}
	for _, stage := range []string{"stage1", "stage2"} {
		byContent := harness.ReadExecutions(t, sides[stage])
		if len(byContent) != chainChaosDistinct {
			t.Errorf("%s executed %d contents, want %d", stage, len(byContent), chainChaosDistinct)
		}
		t.Logf("%s: %d contents, %d re-executions after a kill", stage, len(byContent), checkReruns(t, stage, byContent, killed))
	}
	t.Logf("%d replicas killed", len(killed))
}
