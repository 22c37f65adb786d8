package e2e

import (
	"testing"

	_ "github.com/dedupfn/dedupfn/internal/index/postgres"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
	"github.com/dedupfn/dedupfn/internal/testutil/peers"
)

// TestClusterPostgres is TestCluster with the replicas sharing a
// PostgreSQL index instead of CouchDB: real MinIO → Kafka → 3 replicas,
// 200 uploads of which half are duplicates, one replica SIGKILLed midway.
// Every content runs once, except the victim's interrupted runs, which
// are taken over exactly once after their lease.
func TestClusterPostgres(t *testing.T) {
	t.Parallel()
	c := harness.StartPeersIndex(t, peers.MinIOOptions{}, func(c *harness.Cluster) {
		pg := peers.StartPostgres(t)
		c.IndexURL = pg.CreateDB(t, "dedupfn")
	})
	for i := range 3 {
		c.Replicas = append(c.Replicas, harness.StartServer(t, t.TempDir(), c.ReplicaArgs(i, c.Kafka.URL(harness.Topic, "dedupfn"))...))
	}
	clusterKillTest(t, c)
}
