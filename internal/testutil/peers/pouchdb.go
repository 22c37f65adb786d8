package peers

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/testutil"
)

// CouchDB is a running CouchDB-API server: pouchdb-server, in memory.
type CouchDB struct {
	// Addr is host:port.
	Addr string
	p    *proc
}

// StartCouchDB starts pouchdb-server (installed by scripts/peers/pouchdb.sh,
// or $DEDUPFN_POUCHDB) in memory on a free port and waits until it
// answers. Skipped locally when missing, fatal under CI. Stopped when the
// test ends.
func StartCouchDB(tb testing.TB) *CouchDB {
	tb.Helper()
	bin := testutil.Tool(tb, "DEDUPFN_POUCHDB", filepath.Join("pouchdb", "node_modules", ".bin", "pouchdb-server"))
	node, err := exec.LookPath("node")
	if err != nil {
		testutil.Missing(tb, "node is not on PATH")
	}
	c := &CouchDB{Addr: testutil.FreeAddr(tb)}
	host, port, _ := strings.Cut(c.Addr, ":")
	dir := tb.TempDir()
	cmd := exec.Command(node, bin, "--in-memory", "--host", host, "--port", port)
	cmd.Dir = dir // pouchdb-server writes its config and log files here
	c.p = start(tb, "pouchdb-server", cmd, filepath.Join(dir, "pouchdb-server.log"))
	tb.Cleanup(func() { c.p.stop(false) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + c.Addr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		if time.Now().After(deadline) || !c.p.running() {
			tb.Fatalf("pouchdb-server did not start on %s:\n%s", c.Addr, c.p.logTail(4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URL is the couchdb: index URL of database db.
func (c *CouchDB) URL(db string) string {
	return fmt.Sprintf("couchdb://%s/%s", c.Addr, db)
}
